"""azr-jax: Absolute Zero Reasoner in JAX/Flax (model, sampler, sandbox, self-play)."""

__version__ = "0.1.0"
