"""Orbax checkpoints: params, optimizer state, and a JSON blob of everything else.

One layout serves both the trainer (params + opt_state + state: step, RNG, buffers, metrics
position, config) and `azr-jax convert` (params + model config only), so a training run
directory converts to HF format directly. Saves are asynchronous (the train loop continues
while arrays are written), keep the last N, and are atomic: orbax only exposes a step after
its commit marker is written, so a kill mid-save leaves the previous step as the latest.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from azr_jax import rundir
from azr_jax.model.config import ModelConfig

log = logging.getLogger(__name__)

ITEMS = ("params", "opt_state", "state", "model_config")


def model_config_to_json(cfg: ModelConfig) -> dict[str, Any]:
    return {"hf_config": cfg.to_hf_dict(torch_dtype=cfg.param_dtype), "dtype": cfg.dtype,
            "param_dtype": cfg.param_dtype, "remat": cfg.remat}


def model_config_from_json(blob: dict[str, Any], **overrides: Any) -> ModelConfig:
    kw = {"dtype": blob["dtype"], "param_dtype": blob["param_dtype"], "remat": blob["remat"]}
    kw.update(overrides)
    return ModelConfig.from_hf_dict(blob["hf_config"], source="checkpoint model_config", **kw)


class Checkpointer:
    """Thin wrapper over `ocp.CheckpointManager` with our item names."""

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int | None = 3,
                 save_every: int = 1, async_save: bool = True):
        self.directory = rundir.resolve(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, save_interval_steps=max(1, save_every),
            enable_async_checkpointing=async_save, create=True)
        self._mngr = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)

    def latest_step(self) -> int | None:
        return self._mngr.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._mngr.all_steps())

    def save(self, step: int, *, params: Any, model_config: ModelConfig,
             opt_state: Any = None, state: dict[str, Any] | None = None, force: bool = False) -> bool:
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

    def restore(self, step: int | None = None, *, params_target: Any,
                opt_state_target: Any = None, with_state: bool = True) -> dict[str, Any]:
        """Restore into the given abstract targets (ShapeDtypeStructs carrying shardings, so
        every array lands directly where the current mesh wants it)."""
        step = self._step(step)
        args: dict[str, Any] = {"params": ocp.args.StandardRestore(params_target)}
        if opt_state_target is not None:
            args["opt_state"] = ocp.args.StandardRestore(opt_state_target)
        if with_state:
            args["state"] = ocp.args.JsonRestore()
        out = self._mngr.restore(step, args=ocp.args.Composite(**args))
        result = {k: out[k] for k in args}
        result["step"] = step
        return result

    def _step(self, step: int | None) -> int:
        if step is None:
            step = self.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint found in {self.directory}")
        if step not in self.all_steps():
            raise FileNotFoundError(
                f"checkpoint step {step} not in {self.directory} (have {self.all_steps()})")
        return step

    def wait(self) -> None:
        self._mngr.wait_until_finished()

    def close(self) -> None:
        self._mngr.wait_until_finished()
        self._mngr.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def abstract_with_shardings(tree: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying target shardings: what `restore` places arrays by."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        tree, shardings)


def is_checkpoint_dir(path: str | os.PathLike) -> bool:
    """A directory written by `Checkpointer` (step subdirectories holding our items); local or
    remote (`gs://`)."""
    root = epath.Path(os.fspath(path))
    if not root.is_dir():
        return False
    return any(sub.name.isdigit() and (sub / "params").is_dir() for sub in root.iterdir())
