"""A random-initialised 2-layer model with the SmolLM2 tokenizer: fast end-to-end tests.

The policy writes noise, so proposals are invalid and answers wrong: that exercises every
failure path of the step (parsing, rewards of -1, empty groups) in seconds. Tests that need
valid tasks script the generator instead.
"""

from azr_jax.defaults import apply_topology, base_config


def get_config(topology: str = "cpu"):
    c = apply_topology(base_config(), topology)
    c.model.init = "random"
    c.model.hf_path = ""
    c.model.tokenizer_path = "embedded:smollm2-135m"
    c.model.template = "chat"
    c.model.random_dims.update(
        dict(
            architecture="llama",
            vocab_size=0,
            hidden_size=64,
            intermediate_size=128,
            num_layers=2,
            num_heads=4,
            num_kv_heads=2,
            head_dim=16,
            tie_word_embeddings=True,
        )
    )
    c.total_steps = 4
    c.azr.batch_size = 2
    c.azr.num_references = 1
    c.azr.learnability_samples = 2
    c.azr.num_inputs = 4
    c.azr.prompt_flavour = "compact"
    c.azr.max_prompt_tokens = 1024
    c.azr.max_response_tokens = 24
    c.sampler.prompt_buckets = (512, 1024)
    c.sampler.gen_buckets = (24,)
    c.sampler.max_batch = 32
    c.optim.learning_rate = 1e-4
    c.train.micro_batch_size = 4
    c.train.logit_chunk = 128
    c.sandbox.timeout_s = 5.0
    c.checkpoint.every = 1
    c.checkpoint.keep = 2
    return c
