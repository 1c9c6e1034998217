"""Orbax checkpoints: params, optimizer state, and a JSON blob of everything else.

One layout serves both the trainer (params + opt_state + state: step, RNG, buffers, metrics
position, config) and `azr-jax convert` (params + model config only), so a training run
directory converts to HF format directly. Saves are asynchronous (the train loop continues
while arrays are written), keep the last N, and are atomic: orbax only exposes a step after
its commit marker is written, so a kill mid-save leaves the previous step as the latest.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from azr_jax import rundir
from azr_jax.model.config import ModelConfig

log = logging.getLogger(__name__)

ARRAY_ITEMS = ("params", "opt_state")
JSON_ITEMS = ("state", "model_config")
MIN_SAVE_CONCURRENT_BYTES = 256 << 20


def host_save_bytes(tree: Any) -> int:
    """`Checkpointer(save_concurrent_bytes=...)` for arrays held in host memory: room for the
    largest array of `tree` (orbax writes an array whole) or 256 MiB, whichever is larger.
    `tree` may be abstract (ShapeDtypeStructs)."""
    largest = max((math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)), default=0)
    return max(largest, MIN_SAVE_CONCURRENT_BYTES)


def model_config_to_json(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "hf_config": cfg.to_hf_dict(torch_dtype=cfg.param_dtype),
        "dtype": cfg.dtype,
        "param_dtype": cfg.param_dtype,
        "remat": cfg.remat,
    }


def model_config_from_json(blob: dict[str, Any], **overrides: Any) -> ModelConfig:
    kw = {"dtype": blob["dtype"], "param_dtype": blob["param_dtype"], "remat": blob["remat"]}
    kw.update(overrides)
    return ModelConfig.from_hf_dict(blob["hf_config"], source="checkpoint model_config", **kw)


class Checkpointer:
    """Thin wrapper over `ocp.CheckpointManager` with our item names."""

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        max_to_keep: int | None = 3,
        save_every: int = 1,
        async_save: bool = True,
        save_concurrent_bytes: int | None = None,
    ):
        """`save_concurrent_bytes` bounds the array bytes each array item has in flight while
        a save writes (orbax's own default, tens of GB, when None). Every array being written
        holds a serialised copy, so where the arrays live in this process's memory (the CPU
        backend) an unbounded save doubles the train state's footprint while it runs; the
        bound must be at least the largest array."""
        self.directory = rundir.resolve(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            save_interval_steps=max(1, save_every),
            enable_async_checkpointing=async_save,
            create=True,
        )
        registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
        bound = {} if save_concurrent_bytes is None else {"save_concurrent_gb": save_concurrent_bytes / 1e9}
        for name in ARRAY_ITEMS:
            handler = ocp.StandardCheckpointHandler(**bound)
            registry.add(name, ocp.args.StandardSave, handler)
            registry.add(name, ocp.args.StandardRestore, handler)
        for name in JSON_ITEMS:
            handler = ocp.JsonCheckpointHandler()
            registry.add(name, ocp.args.JsonSave, handler)
            registry.add(name, ocp.args.JsonRestore, handler)
        self._mngr = ocp.CheckpointManager(self.directory, options=options, handler_registry=registry)

    def latest_step(self) -> int | None:
        return self._mngr.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._mngr.all_steps())

    def save(
        self,
        step: int,
        *,
        params: Any,
        model_config: ModelConfig,
        opt_state: Any = None,
        state: dict[str, Any] | None = None,
        force: bool = False,
    ) -> bool:
        """Queue a save; returns False when `save_every` says this step is skipped."""
        args: dict[str, Any] = {
            "params": ocp.args.StandardSave(params),
            "model_config": ocp.args.JsonSave(model_config_to_json(model_config)),
        }
        if opt_state is not None:
            args["opt_state"] = ocp.args.StandardSave(opt_state)
        if state is not None:
            args["state"] = ocp.args.JsonSave(state)
        saved = self._mngr.save(step, args=ocp.args.Composite(**args), force=force)
        if saved:
            log.info("checkpoint step %d -> %s (async)", step, self.directory)
        return saved

    def restore_model_config(self, step: int | None = None, **overrides: Any) -> ModelConfig:
        step = self._step(step)
        out = self._mngr.restore(step, args=ocp.args.Composite(model_config=ocp.args.JsonRestore()))
        return model_config_from_json(out["model_config"], **overrides)

    def restore(
        self,
        step: int | None = None,
        *,
        params_target: Any,
        opt_state_target: Any = None,
        with_state: bool = True,
    ) -> dict[str, Any]:
        """Restore into the given abstract targets (ShapeDtypeStructs carrying shardings, so
        every array lands directly where the current mesh wants it).

        Items are read one by one, so a failure names the step, the item and its directory
        (`CheckpointError`); a state blob whose step disagrees with its directory is one too.
        """
        step = self._step(step)
        args: dict[str, Any] = {"params": ocp.args.StandardRestore(params_target)}
        if opt_state_target is not None:
            args["opt_state"] = ocp.args.StandardRestore(opt_state_target)
        if with_state:
            args["state"] = ocp.args.JsonRestore()
        result: dict[str, Any] = {}
        for name, arg in args.items():
            where = rundir.join(self.directory, str(step), name, *(("metadata",) if name == "state" else ()))
            try:
                result[name] = self._mngr.restore(step, args=ocp.args.Composite(**{name: arg}))[name]
            except Exception as e:  # orbax/tensorstore/json errors of a damaged item
                raise CheckpointError(
                    f"checkpoint step {step}: {name} ({where}) is unreadable: {_one_line(e)}"
                ) from e
        state = result.get("state")
        if state is not None and (not isinstance(state, dict) or state.get("step") != step):
            got = state.get("step") if isinstance(state, dict) else state
            where = rundir.join(self.directory, str(step), "state")
            raise CheckpointError(f"checkpoint step {step}: state ({where}) records step {got!r}")
        result["step"] = step
        return result

    def restore_latest_good(self, **kwargs: Any) -> dict[str, Any]:
        """`restore` of the newest step that reads back whole. A damaged newer step is moved
        aside (renamed `<step>.broken-<time>`, which orbax ignores, so the run saves that step
        again later) with one warning line naming it and why."""
        steps = sorted(self.all_steps(), reverse=True)
        if not steps:
            raise FileNotFoundError(f"no checkpoint found in {self.directory}")
        broken = []
        for step in steps:
            try:
                return self.restore(step, **kwargs)
            except CheckpointError as e:
                moved = self._move_aside(step)
                log.warning("%s; moved it to %s, falling back to the previous step", e, moved)
                broken.append(step)
        raise CheckpointError(
            f"no readable checkpoint in {self.directory} (damaged steps {broken}, moved aside)"
        )

    def _move_aside(self, step: int) -> str:
        src = epath.Path(rundir.join(self.directory, str(step)))
        dst = epath.Path(rundir.join(self.directory, f"{step}.broken-{time.strftime('%Y%m%d-%H%M%S')}"))
        if jax.process_index() == 0:  # one shared directory: the primary host renames it
            src.rename(dst)
        self._mngr.reload()
        return os.fspath(dst)

    def _step(self, step: int | None) -> int:
        if step is None:
            step = self.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint found in {self.directory}")
        if step not in self.all_steps():
            raise FileNotFoundError(
                f"checkpoint step {step} not in {self.directory} (have {self.all_steps()})"
            )
        return step

    def wait(self) -> None:
        self._mngr.wait_until_finished()

    def close(self) -> None:
        self._mngr.wait_until_finished()
        self._mngr.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class CheckpointError(ValueError):
    """A checkpoint step that cannot be read back (names step, item and directory)."""


def _one_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    return f"{type(e).__name__}: {text[:300]}"


def abstract_with_shardings(tree: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying target shardings: what `restore` places arrays by."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def is_checkpoint_dir(path: str | os.PathLike) -> bool:
    """A directory written by `Checkpointer` (step subdirectories holding our items); local or
    remote (`gs://`)."""
    root = epath.Path(os.fspath(path))
    if not root.is_dir():
        return False
    return any(sub.name.isdigit() and (sub / "params").is_dir() for sub in root.iterdir())
