"""The training loop: AdamW, EMA, clipping, bf16 autocast, CFG label dropout, checkpoints.

One step (``s`` counts from 0; ``G = world_size * batch_size``):

1. indices: the ``s mod E``-th slice of size ``G`` of a permutation of the data drawn from
   ``(seed, epoch = s div E)``, ``E = N div G`` steps per epoch (the last partial batch of an
   epoch is dropped); rank ``r`` takes its slice. Data order is a pure function of
   ``(seed, step)``, so it resumes exactly;
2. ``t``, noise and the label-dropout mask for the global batch from the trainer's generator
   (seeded with ``seed``, saved in checkpoints), sliced per rank; then the coupling;
3. labels dropped with probability ``label_dropout`` are replaced by ``NULL_LABEL``;
4. loss (:class:`Objective`, or the trainer's ``objective``), backward, global gradient norm
   (clipped to ``clip_grad``);
   a non-finite loss or gradient raises :class:`InterpolantError` naming the step, before the
   optimizer step and before any checkpoint: nothing poisoned is saved;
5. AdamW step with the warm-up learning rate, EMA update.

Exact resume: a checkpoint holds model, EMA, AdamW state, the trainer's generator and torch's
global RNG (for dropout inside the model), so ``N`` steps, checkpoint, ``N`` more is bitwise
the run of ``2N`` steps on CPU. Resuming takes the newest checkpoint that verifies
(``resumed_from``; ``skipped`` says why newer ones were passed over) and cuts
``metrics.jsonl`` back to its step, so steps logged after it and before a kill are not
logged twice. The progress line shows the CPU threads in use (``torch.get_num_threads()``),
and every logged record holds them as ``threads``.

Custom objectives: ``Trainer(..., objective=obj)`` replaces the built-in
``Objective(path, target, density, weight)`` of the config by any callable
``obj(net, x0, noise, t, cond) -> scalar loss``. Times come from ``obj.sample_time(n, generator)``
when it has one, else from the config's density. If ``obj`` is an :class:`torch.nn.Module`
(e.g. EDM2's learned uncertainty weighting), its parameters are optimised by the same AdamW
with the network's (their gradients are averaged over ranks under DDP and clipped with the
network's), and its ``state_dict`` is saved in every checkpoint (``objective.safetensors``) and
restored on resume, so exact resume still holds.

Post-hoc EMA (EDM2): ``ema_sigma_rels`` tracks power-function EMAs (saved in checkpoints as
``power_ema``), and every ``ema_snapshot_every`` steps and at the end their snapshot goes to
``run_dir/ema_snapshots/``; :func:`~.power_ema.posthoc_ema` rebuilds any ``sigma_rel`` from
them. Without a classic EMA, ``TrainResult.ema_model`` (and the checkpoint's ``ema``) is the
first power EMA.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..errors import InterpolantError
from ..labels import NULL_LABEL
from ..paths import GaussianPath
from . import couplings, distributed, events, fsdp
from .checkpoint import newest_valid, save_checkpoint, step_dirs
from .config import TrainConfig, check_resumable
from .inputs import check_data as _check_data
from .ema import EMA
from .objectives import Objective
from .power_ema import PowerEMA, save_snapshot

LossFn = Callable[..., Tensor]

__all__ = ["Trainer", "TrainResult"]


@dataclass
class TrainResult:
    """The trained model, its EMA copy (or ``None``) and the logged metrics."""

    model: nn.Module
    ema_model: nn.Module | None
    history: list[dict[str, float]] = field(default_factory=list)
    step: int = 0


class Trainer:
    """``Trainer(model, path, data, labels=None, config=TrainConfig(...), run_dir=None,
    resume=False, objective=None)``.

    ``run_dir`` receives ``checkpoints/`` and ``metrics.jsonl``; ``resume=True`` continues from
    its latest checkpoint (if any). Use :meth:`step` for one step, :meth:`run` for the loop.
    ``objective``: a callable ``(net, x0, noise, t, cond) -> scalar loss`` used instead of the
    config's ``Objective(path, target, density, weight)``; it may expose
    ``sample_time(n, generator)`` (else the config's density draws ``t``), and if it is an
    ``nn.Module`` its parameters are trained and checkpointed with the network's.
    """

    def __init__(self, model: nn.Module, path: GaussianPath, data: Tensor,
                 labels: Tensor | None = None, config: TrainConfig | None = None,
                 run_dir: str | Path | None = None, resume: bool = False,
                 objective: LossFn | None = None) -> None:
        self.config = cfg = config or TrainConfig()
        model_classes = getattr(model, "config", {}).get("num_classes") if isinstance(
            getattr(model, "config", None), dict) else None
        num_classes = cfg.num_classes if cfg.num_classes is not None else model_classes
        self.data, self.labels = _check_data(data, labels, num_classes)
        builtin = Objective(path, cfg.target, cfg.density, cfg.weight)
        if objective is not None and not callable(objective):
            raise InterpolantError("objective must be a callable (net, x0, noise, t, cond) -> "
                                   f"loss, got {type(objective).__name__}")
        self.path = path
        self.objective: LossFn = builtin if objective is None else objective
        self.times = objective if callable(getattr(objective, "sample_time", None)) else builtin
        self.loss_module = objective if isinstance(objective, nn.Module) else None
        self.coupling = couplings.get(cfg.coupling)
        distributed.setup()
        self.rank, self.world = distributed.rank_world()
        self.global_batch = cfg.batch_size * self.world
        if self.data.shape[0] < self.global_batch:
            raise InterpolantError(f"{self.data.shape[0]} samples cannot fill one batch of "
                                   f"{self.global_batch} ({self.world} x {cfg.batch_size})")
        self.module = model
        self.device = distributed.device_for_rank(model)
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
        if dtype is not None and self.data.dtype != dtype:
            self.data = self.data.to(dtype)
        has_ema = cfg.ema_decay is not None or cfg.ema_halflife is not None
        self.ema = EMA(model, cfg.ema_decay, cfg.ema_halflife, cfg.ema_rampup) if has_ema else None
        # FSDP shards the model in place and its EMA alike (before the optimizer sees it)
        self.net = distributed.wrap(model, cfg.fsdp, [self.ema.model] if self.ema else [])
        self.params = list(model.parameters())
        if self.loss_module is not None:
            self.loss_module.to(self.device)
            self.params += list(self.loss_module.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, betas=cfg.betas,
                                           weight_decay=cfg.weight_decay)
        self.power_ema = PowerEMA(model, cfg.ema_sigma_rels) if cfg.ema_sigma_rels else None
        if cfg.ema_snapshot_every is not None and run_dir is None:
            raise InterpolantError("ema_snapshot_every saves post-hoc EMA snapshots into the "
                                   "run directory; give run_dir")
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.step_count = 0
        self.history: list[dict[str, float]] = []
        self.resumed_from: Path | None = None
        self.skipped: list[str] = []
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.events = events.EventLog(self.run_dir) if self.run_dir is not None else None
        if self.run_dir is not None:
            if resume:
                self._resume()
            elif step_dirs(self.ckpt_dir):  # type: ignore[arg-type]
                raise InterpolantError(f"{self.run_dir} already holds checkpoints; pass "
                                       "resume=True to continue it, or choose another run_dir")

    # -- state ----------------------------------------------------------------------
    @property
    def ckpt_dir(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoints"

    def _resume(self) -> None:
        ckpt, self.skipped = newest_valid(self.ckpt_dir)  # type: ignore[arg-type]
        if ckpt is None:
            self._cut_log(0)
            return
        check_resumable(ckpt.config.get("train", {}), self.config.to_json())
        fsdp.load_full(self.module, ckpt.tensors["model"])  # load_state_dict, sharded if FSDP
        saved_loss = ckpt.tensors.get("objective")
        if (saved_loss is None) != (self.loss_module is None):
            have = "holds" if saved_loss is not None else "lacks"
            raise InterpolantError(f"cannot resume: checkpoint {ckpt.path} {have} the state of a "
                                   "trained objective but this run "
                                   f"{'has none' if self.loss_module is None else 'has one'}; "
                                   "pass the same objective as the run that saved it")
        if self.loss_module is not None:
            self.loss_module.load_state_dict(saved_loss)
        if self.power_ema is not None:
            if "power_ema" not in ckpt.tensors:
                raise InterpolantError(f"cannot resume: checkpoint {ckpt.path} holds no power "
                                       "EMA; resume without ema_sigma_rels")
            self.power_ema.load_state_dict(ckpt.tensors["power_ema"])
        if self.ema is not None:
            fsdp.load_full(self.ema.model, ckpt.tensors["ema"])
        fsdp.load_full(self.optimizer, ckpt.optimizer_state())
        self.generator.set_state(ckpt.tensors["rng"]["generator"])
        torch.set_rng_state(ckpt.tensors["rng"]["torch"])
        self.step_count = ckpt.step
        self.resumed_from = ckpt.path
        self._cut_log(ckpt.step)

    def _cut_log(self, step: int) -> None:
        """Keep the records of ``metrics.jsonl`` up to ``step`` (the resumed checkpoint's);
        later ones (and a line cut short by a kill) are logged again as training goes on."""
        log = self.run_dir / "metrics.jsonl"  # type: ignore[operator]
        if self.rank != 0 or not log.is_file():
            return
        kept = []
        for line in log.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record[
                    "step"] <= step:
                kept.append(line + "\n")
        tmp = log.with_name(f".{log.name}.tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, log)

    def save(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0; no-op without ``run_dir``)."""
        path = None
        if self.ckpt_dir is not None:  # FSDP: full tensors gathered on every rank
            model, ema, optimizer = map(fsdp.gathered, (self.module, self._ema_model(),
                                                        self.optimizer))
        if self.ckpt_dir is not None and self.rank == 0:
            config = {"train": self.config.to_json(), "path": repr(self.path),
                      "objective": repr(self.objective),
                      "model": getattr(self.module, "config", None), "world_size": self.world,
                      "arch": getattr(self.module, "arch", None),
                      "data_shape": list(self.data.shape[1:])}
            rng = {"generator": self.generator.get_state(), "torch": torch.get_rng_state()}
            extra = None if self.power_ema is None else {"power_ema":
                                                         self.power_ema.state_dict()}
            path = save_checkpoint(self.ckpt_dir, self.step_count, model,
                                   ema=ema, extra=extra,
                                   optimizer=optimizer, rng=rng, config=config,
                                   objective=self.loss_module,
                                   keep=self.config.keep_checkpoints)
        distributed.barrier()
        return path

    # -- one step -------------------------------------------------------------------
    def batch_indices(self, step: int) -> Tensor:
        """This rank's data indices at ``step`` (a pure function of seed and step)."""
        per_epoch = self.data.shape[0] // self.global_batch
        epoch, j = divmod(step, per_epoch)
        g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.data.shape[0], generator=g)
        lo = j * self.global_batch + self.rank * self.config.batch_size
        return perm[lo: lo + self.config.batch_size]

    def step(self) -> dict[str, float]:
        """One optimisation step; returns ``{step, loss, grad_norm, lr}``."""
        cfg, s, g = self.config, self.step_count, self.generator
        idx = self.batch_indices(s)
        x0 = self.data[idx].to(self.device)
        mine = slice(self.rank * cfg.batch_size, (self.rank + 1) * cfg.batch_size)
        t = self.times.sample_time(self.global_batch, g)[mine]
        noise = torch.randn((self.global_batch, *x0.shape[1:]), generator=g,
                            dtype=x0.dtype)[mine].to(self.device)
        drop = torch.rand(self.global_batch, generator=g)[mine] < cfg.label_dropout
        noise = self.coupling(x0, noise)
        cond = None
        if self.labels is not None:
            cond = torch.where(drop, NULL_LABEL, self.labels[idx]).to(self.device)
        lr = cfg.lr_at(s)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = self.objective(self.net, x0, noise, t.to(self.device), cond)
        loss.backward()
        if self.loss_module is not None:  # DDP averages only the network's gradients
            for p in self.loss_module.parameters():
                if p.grad is not None:
                    p.grad.copy_(distributed.all_mean(p.grad))
        params = [p for p in self.params if p.grad is not None]
        max_norm = cfg.clip_grad if cfg.clip_grad is not None else float("inf")
        grad_norm = fsdp.scalar(torch.nn.utils.clip_grad_norm_(params, max_norm))
        mean_loss = distributed.all_mean(loss.detach())
        if not (torch.isfinite(mean_loss) and torch.isfinite(grad_norm)):
            raise InterpolantError(
                f"non-finite {'loss' if not torch.isfinite(mean_loss) else 'gradient'} at step "
                f"{s + 1} (loss {float(mean_loss)}, grad norm {float(grad_norm)}); training "
                "stopped, the last checkpoint is untouched (lower lr, enable clip_grad or bf16 "
                "off, check the data)")
        self.optimizer.step()
        self.step_count += 1
        if self.ema is not None:
            self.ema.update(self.module, self.global_batch, self.step_count * self.global_batch)
        if self.power_ema is not None:
            self.power_ema.update(self.module, self.global_batch,
                                  self.step_count * self.global_batch)
        return {"step": self.step_count, "loss": float(mean_loss),
                "grad_norm": float(grad_norm), "lr": lr}

    # -- the loop -------------------------------------------------------------------
    def _log(self, record: dict[str, float]) -> None:
        self.history.append(record)
        if self.run_dir is not None and self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            self.events.write(record)  # type: ignore[union-attr]  # TensorBoard, if installed

    def run(self) -> TrainResult:
        """Train until ``config.steps``; checkpoint every ``checkpoint_every`` and at the end."""
        cfg = self.config
        threads, wait = torch.get_num_threads(), os.environ.get("OMP_WAIT_POLICY")
        bar = tqdm(total=cfg.steps, initial=self.step_count, unit="step",
                   desc=f"train ({threads} thread{'s' if threads > 1 else ''}"
                        f"{f', {wait.lower()} wait' if wait else ''})",
                   disable=not cfg.progress or self.rank != 0)
        self.net.train()
        tick, tick_step = time.perf_counter(), self.step_count
        while self.step_count < cfg.steps:
            record = self.step()
            bar.update(1)
            s = self.step_count
            if s % cfg.log_every == 0 or s == cfg.steps:
                now = time.perf_counter()
                record["samples_per_s"] = (s - tick_step) * self.global_batch / max(now - tick,
                                                                                   1e-9)
                tick, tick_step = now, s
                record["threads"] = threads
                self._log(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
            every = cfg.ema_snapshot_every
            if every and (s % every == 0 or s == cfg.steps) and self.rank == 0:
                save_snapshot(self.run_dir / "ema_snapshots",  # type: ignore[operator]
                              s * self.global_batch, self.power_ema)  # type: ignore[arg-type]
            if cfg.checkpoint_every and s % cfg.checkpoint_every == 0 and s < cfg.steps:
                self.save()
        bar.close()
        if self.events is not None:
            self.events.close()
        if self.run_dir is not None:
            self.save()
        return TrainResult(self.module, self._ema_model(), self.history, self.step_count)

    def _ema_model(self) -> nn.Module | None:
        if self.ema is not None:
            return self.ema.model
        return None if self.power_ema is None else self.power_ema.models[0]
