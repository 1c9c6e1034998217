"""The sampler's jitted programs on abstract inputs: what a call of given shapes compiles,
lowered without weights or devices (`jax.ShapeDtypeStruct` leaves), e.g. to compile for a TPU
topology from a CPU host and read its memory and flops.

`lower_programs(cfg, plan, rows=..., prompt_len=..., gen_len=...)` returns the lowered
programs by name: "prefill" and "decode" for the static engine (one chunk of `plan.slots`
rows), "continuous" for the continuous engine (a queue of `rows` rows in `plan.slots` slots).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.model import api
from azr_jax.model.config import ModelConfig
from azr_jax.sampling import continuous, loop
from azr_jax.sampling.batching import pow2, prompt_width
from azr_jax.sampling.ops import SamplingMode
from azr_jax.sampling.plan import DecodePlan
from sharding.rules import ShardingRules


def _struct(
    shape: tuple[int, ...],
    dtype: Any,
    rules: ShardingRules | None,
    names: tuple[str | None, ...] | None = None,
) -> jax.ShapeDtypeStruct:
    """An abstract array, batch-sharded (or replicated, `names` None) on the rules' mesh."""
    sharding = None
    if rules is not None and rules.mesh is not None:
        sharding = rules.sharding(names, shape) if names else rules.replicated()
    return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)


def lower_programs(
    cfg: ModelConfig,
    plan: DecodePlan,
    *,
    rows: int,
    prompt_len: int,
    gen_len: int,
    rules: ShardingRules | None = None,
    params: Any = None,
    mode: SamplingMode = SamplingMode(),
    stop_ids: tuple[int, ...] = (),
    pad_id: int = 0,
    group: int = 1,
) -> dict[str, jax.stages.Lowered]:
    """Lower the programs a sampler call runs under `plan` (`plan.make_plan`) for `rows` rows
    of prompts up to `prompt_len` tokens (a prompt bucket) and `gen_len` new tokens (a
    generation bucket). `params`: abstract params with their shardings (default: unsharded
    `api.abstract_params(cfg)`). `group`: rows per prompt (continuous engine; 1 = all distinct).
    """
    params = api.abstract_params(cfg) if params is None else params
    decode_params = jax.eval_shape(api.unstack_layers, params) if plan.unstack_layers else params
    key = _struct((), jax.random.key(0).dtype, rules)
    scalar = _struct((), jnp.float32, rules)
    if plan.engine == "continuous":
        return {
            "continuous": _lower_continuous(
                cfg,
                plan,
                rows,
                prompt_len,
                gen_len,
                rules,
                params,
                decode_params,
                key,
                scalar,
                mode,
                stop_ids,
                pad_id,
                group,
            )
        }
    B, P, N = plan.slots, prompt_len, gen_len
    spec = loop.ProgramSpec(
        cfg=cfg, rules=rules, gen_len=N, mode=mode, stop_ids=stop_ids, pad_id=pad_id, plan=plan
    )
    rope = (_struct((P + N, cfg.head_dim), jnp.float32, rules),) * 2
    batch = lambda shape: _struct(shape, jnp.int32, rules, ("batch",) + (None,) * (len(shape) - 1))
    args = (params, batch((B, P)), batch((B, P)), batch((B,)), batch((B,)), key, scalar, scalar, rope)
    prefill = loop.prefill.lower(*args, spec=spec)
    state = jax.eval_shape(lambda *a: loop.prefill(*a, spec=spec), *args)
    decode = loop.decode.lower(decode_params, state, scalar, scalar, rope, spec=spec)
    return {"prefill": prefill, "decode": decode}


def _lower_continuous(
    cfg,
    plan,
    rows,
    prompt_len,
    gen_len,
    rules,
    params,
    decode_params,
    key,
    scalar,
    mode,
    stop_ids,
    pad_id,
    group,
) -> jax.stages.Lowered:
    Ps = prompt_width(prompt_len, plan.page_size, plan.prefill_chunk)
    R, U = pow2(rows), pow2(-(-rows // group))
    shapes = continuous.Shapes(queue=R, prompts=U, prompt_len=Ps, gen_len=gen_len, group=pow2(group))
    spec = continuous.ProgramSpec(
        cfg=cfg, rules=rules, plan=plan, shapes=shapes, mode=mode, stop_ids=stop_ids, pad_id=pad_id
    )
    i32 = lambda *shape: _struct(shape, np.int32, rules)
    queue = continuous.Queue(i32(R), i32(R), i32(R), i32(), i32(U, Ps), i32(U), i32(U))
    rope = (_struct((Ps + gen_len, cfg.head_dim), jnp.float32, rules),) * 2
    return continuous.generate.lower(params, decode_params, queue, key, scalar, scalar, rope, spec=spec)
