"""AZR on Qwen2.5-Coder-7B (paper hyper-parameters, azr_method.md §5.3).

  azr-jax train --config=configs/qwen2_5_coder_7b.py:<topology> --workdir=DIR \
      --config.model.hf_path=/path/to/Qwen2.5-Coder-7B

<topology>: one of cpu, 1xH100, 8xH100, v4-32, v5e-64, v5p-128, v6e-8, v6e-64, v6e-256
(default 8xH100; the TPU slices this model fits: README, "Compiling for a TPU slice").
"""

from azr_jax.defaults import paper_model_config


def get_config(topology: str = ""):
    return paper_model_config(
        topology, preset="qwen2.5-coder-7b", seed_batch_factor=4, reject_multiple_functions=True
    )
