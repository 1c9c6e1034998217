"""Mesh construction, logical-axis rules, and sharded forward passes on 8 fake CPU devices."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import hf_models
from azr_jax.hf.load import load_hf
from azr_jax.model import api
from sharding.mesh import make_mesh, resolve_axis_sizes
from sharding.params import init_sharded, shard_params, tree_shardings
from sharding.rules import ShardingRules

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (fake) devices")


def test_resolve_axis_sizes():
    assert resolve_axis_sizes((1, -1, 1), 8) == (1, 8, 1)
    assert resolve_axis_sizes((2, -1, 2), 8) == (2, 2, 2)
    assert resolve_axis_sizes((-1, 1, 1), 1) == (1, 1, 1)
    with pytest.raises(ValueError, match="needs 16 devices but 8 are available"):
        resolve_axis_sizes((2, 4, 2), 8)
    with pytest.raises(ValueError, match="at most one mesh axis may be -1"):
        resolve_axis_sizes((-1, -1, 1), 8)
    with pytest.raises(ValueError, match="fixed axes use 3 devices, which does not divide the 8"):
        resolve_axis_sizes((3, -1, 1), 8)
    with pytest.raises(ValueError, match="must be positive or -1"):
        resolve_axis_sizes((0, -1, 1), 8)


def test_rules_drop_non_divisible_axes():
    rules = ShardingRules(make_mesh(1, 2, 4))
    assert rules.spec(("layers", "embed", "heads", "head_dim"), (3, 64, 8, 16)) == P(None, "fsdp", "tensor")
    # 9 heads (SmolLM2) do not split 4 ways: replicated on that dim, the rest still sharded
    assert rules.spec(("layers", "embed", "heads", "head_dim"), (3, 64, 9, 16)) == P(None, "fsdp")
    assert rules.spec(("batch", "seq"), (8, 5)) == P("fsdp")  # data=1 is not a real split
    assert ShardingRules(make_mesh(2, 2, 2)).spec(("batch", "seq"), (8, 5)) == P(("data", "fsdp"))
    assert ShardingRules(make_mesh(2, 2, 2)).spec(("batch", "seq"), (2, 5)) == P("data")
    with pytest.raises(KeyError, match="no sharding rule for logical axis 'bogus'"):
        rules.spec(("bogus",))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("qwen"))
    hf_models.build("qwen2_untied", d)
    return d


@pytest.fixture(scope="module")
def reference(tiny_dir):
    cfg, params = load_hf(tiny_dir, rules=ShardingRules(make_mesh(1, 1, 1, devices=jax.devices()[:1])))
    rows = [
        np.random.default_rng(i).integers(3, cfg.vocab_size, n).tolist()
        for i, n in enumerate((3, 9, 5, 12, 1, 7, 10, 4))
    ]
    tokens, mask = hf_models.left_pad(rows)
    logits = jax.jit(lambda p, t, m: api.apply(cfg, p, t, api.positions_from_mask(m), m)[0])(
        params, tokens, mask
    )
    return tokens, mask, np.asarray(logits)


MESHES = {
    "data8": ((8, 1, 1), {"layers/q_proj": P(), "embed": P(), "lm_head": P()}),
    "fsdp8": (
        (1, 8, 1),
        {
            "layers/q_proj": P(None, "fsdp"),
            "embed": P(None, "fsdp"),
            "layers/down_proj": P(None, None, "fsdp"),
            "lm_head": P("fsdp"),
        },
    ),
    "fsdp2_tensor4": (
        (1, 2, 4),
        {
            "layers/q_proj": P(None, "fsdp", "tensor"),
            "layers/k_proj": P(None, "fsdp", "tensor"),
            "layers/o_proj": P(None, "tensor", None, "fsdp"),
            "layers/gate_proj": P(None, "fsdp", "tensor"),
            "embed": P("tensor", "fsdp"),
            "lm_head": P("fsdp", "tensor"),
            "layers/q_bias": P(None, "tensor"),
            "final_norm": P(),
        },
    ),
    "data2_fsdp2_tensor2": (
        (2, 2, 2),
        {
            "layers/q_proj": P(None, "fsdp", "tensor"),
            "layers/down_proj": P(None, "tensor", "fsdp"),
            "embed": P("tensor", "fsdp"),
        },
    ),
}


def _get(tree, path):
    for k in path.split("/"):
        tree = tree[k]
    return tree


@pytest.mark.parametrize("name", sorted(MESHES))
def test_sharded_load_and_forward_match_one_device(name, tiny_dir, reference):
    (data, fsdp, tensor), expected = MESHES[name]
    mesh = make_mesh(data, fsdp, tensor)
    rules = ShardingRules(mesh)
    cfg, params = load_hf(tiny_dir, rules=rules)
    for path, spec in expected.items():
        arr = _get(params, path)
        assert isinstance(arr.sharding, NamedSharding) and arr.sharding.mesh.shape == mesh.shape
        assert arr.sharding.spec == spec, (path, arr.sharding.spec)
        n_shards = len(
            {
                tuple((s.start, s.stop) for s in idx)
                for idx in arr.sharding.devices_indices_map(arr.shape).values()
            }
        )
        want = int(np.prod([mesh.shape[a] for e in spec if e for a in ((e,) if isinstance(e, str) else e)]))
        assert n_shards == want, (path, n_shards, want)  # really distributed, not replicated
    tokens, mask, ref_logits = reference
    batch = rules.sharding(("batch", "seq"), tokens.shape)
    fn = jax.jit(
        lambda p, t, m: api.apply(cfg, p, t, api.positions_from_mask(m), m, rules=rules)[0],
        in_shardings=(tree_shardings(params, api.logical_axes(cfg), rules), batch, batch),
    )
    logits = fn(params, tokens, mask)
    valid = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(logits)[valid], ref_logits[valid], atol=2e-5, rtol=0)


@pytest.mark.slow  # ~7 s: an 8-device init
def test_init_sharded_and_shard_params_place_params(tiny_dir):
    cfg, host_params = load_hf(tiny_dir)
    rules = ShardingRules(make_mesh(1, 2, 4))
    axes = api.logical_axes(cfg)
    placed = shard_params(host_params, axes, rules)
    assert placed["layers"]["up_proj"].sharding.spec == P(None, "fsdp", "tensor")
    fresh = init_sharded(lambda: api.init_params(cfg, seed=1), api.abstract_params(cfg), axes, rules)
    assert fresh["layers"]["v_proj"].sharding.spec == P(None, "fsdp", "tensor")
    assert fresh["embed"].sharding.spec == P("tensor", "fsdp")
    # the sharded init computes the same numbers as the plain one (jit may round the normal
    # sampler's last bit differently)
    np.testing.assert_allclose(
        np.asarray(fresh["layers"]["v_proj"]),
        np.asarray(api.init_params(cfg, seed=1)["layers"]["v_proj"]),
        rtol=1e-6,
        atol=0,
    )
