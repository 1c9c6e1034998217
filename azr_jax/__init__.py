"""azr-jax: Absolute Zero Reasoner in JAX/Flax (model, sampler, sandbox, self-play)."""

from sharding.platforms import skip_absent_tpu as _skip_absent_tpu

__version__ = "0.1.0"

_skip_absent_tpu()  # before any JAX backend starts (see sharding/platforms.py)
