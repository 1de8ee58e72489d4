"""The training configuration: one JSON-serialisable record, stored in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import InterpolantError

__all__ = ["TrainConfig", "RESUME_FREE"]

# Settings that may change between a run and its resumption without breaking exactness.
RESUME_FREE = {"steps", "progress", "log_every", "checkpoint_every", "keep_checkpoints",
               "fsdp"}  # fsdp: checkpoints hold the full tensors either way


@dataclass
class TrainConfig:
    """Every knob of :class:`interpolant.training.Trainer`.

    ``batch_size`` is per rank. ``lr`` is reached by linear warm-up over ``warmup`` steps and
    then held. ``ema_halflife`` is in samples (see :mod:`.ema`); give it or ``ema_decay``.
    ``ema_sigma_rels`` (e.g. ``(0.05, 0.10)``) tracks EDM2's power-function EMAs of those
    relative widths and ``ema_snapshot_every`` (steps) saves their snapshots for post-hoc EMA
    (:mod:`.power_ema`; the run needs a ``run_dir``).
    ``label_dropout`` is the probability of replacing a label by ``NULL_LABEL`` (CFG training,
    Ho & Salimans 2022). ``clip_grad=None`` disables clipping. ``density``/``weight``/
    ``coupling`` may be callables; the JSON record then holds their ``repr``. ``fsdp``: under
    torchrun, shard parameters, gradients and optimizer state over the ranks (:mod:`.fsdp`).
    """

    target: str = "eps"
    density: Any = "uniform"
    weight: Any = "uniform"
    coupling: Any = "independent"
    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup: int = 0
    ema_decay: float | None = None
    ema_halflife: float | None = None
    ema_rampup: float | None = None
    ema_sigma_rels: tuple[float, ...] | None = None
    ema_snapshot_every: int | None = None
    label_dropout: float = 0.1
    num_classes: int | None = None
    clip_grad: float | None = 1.0
    bf16: bool = False
    fsdp: bool = False
    seed: int = 0
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    log_every: int = 100
    progress: bool = True

    def __post_init__(self) -> None:
        positive = {"steps": self.steps, "batch_size": self.batch_size,
                    "log_every": self.log_every, "keep_checkpoints": self.keep_checkpoints}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise InterpolantError(f"{name} must be a positive int, got {value!r}")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise InterpolantError(
                f"checkpoint_every must be positive or None, got {self.checkpoint_every}")
        if not self.lr > 0:
            raise InterpolantError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.label_dropout <= 1.0:
            raise InterpolantError(f"label_dropout must lie in [0, 1], got {self.label_dropout}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise InterpolantError(f"clip_grad must be positive or None, got {self.clip_grad}")
        if self.warmup < 0:
            raise InterpolantError(f"warmup must be >= 0, got {self.warmup}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.ema_sigma_rels is not None:
            from .power_ema import sigma_rel_to_gamma

            self.ema_sigma_rels = tuple(float(s) for s in self.ema_sigma_rels)
            for s in self.ema_sigma_rels:
                sigma_rel_to_gamma(s)  # validates
        if self.fsdp and self.ema_sigma_rels is not None:
            raise InterpolantError("fsdp does not shard the power-function EMAs "
                                   "(ema_sigma_rels) yet; train them without fsdp")
        if self.ema_snapshot_every is not None and (self.ema_sigma_rels is None or not (
                isinstance(self.ema_snapshot_every, int) and self.ema_snapshot_every >= 1)):
            raise InterpolantError("ema_snapshot_every must be a positive number of steps and "
                                   "needs ema_sigma_rels (e.g. (0.05, 0.10)), got "
                                   f"{self.ema_snapshot_every!r} with ema_sigma_rels="
                                   f"{self.ema_sigma_rels!r}")

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based): linear warm-up, then constant."""
        if self.warmup == 0:
            return self.lr
        return self.lr * min(1.0, (step + 1) / self.warmup)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("density", "weight", "coupling"):
            if not isinstance(out[key], str):
                out[key] = repr(out[key])
        out["betas"] = list(self.betas)
        if self.ema_sigma_rels is not None:
            out["ema_sigma_rels"] = list(self.ema_sigma_rels)
        return out

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def check_resumable(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume a run whose settings changed in a way that breaks exactness."""
    diff = sorted(k for k in current if k not in RESUME_FREE and saved.get(k) != current[k])
    if diff:
        detail = ", ".join(f"{k}: saved {saved.get(k)!r}, now {current[k]!r}" for k in diff)
        raise InterpolantError(f"cannot resume: settings differ from the checkpoint ({detail})")
