"""Power-function EMA and post-hoc EMA reconstruction (Karras et al. 2024, EDM2, sec. 3, App. C).

An EMA whose decay after ``t`` training samples is ``beta(t) = (1 - delta / t)^(gamma + 1)``
(``delta`` samples per step) averages the weights ``theta(tau)`` of the whole run with the
profile ``p_t(tau) = (gamma + 1) tau^gamma / t^(gamma + 1)`` on ``0 < tau < t``: its width grows
with training, and its *relative* standard deviation is constant,

    sigma_rel = sqrt(gamma + 1) / ((gamma + 2) sqrt(gamma + 3)),

inverted by the largest real root of ``gamma^3 + 7 gamma^2 + (16 - s^-2) gamma + 12 - s^-2``
(``sigma_rel = 0.05`` gives ``gamma = 16.97``, ``0.10`` gives ``6.94``).

Post-hoc EMA: training tracks two such EMAs (``sigma_rel`` 0.05 and 0.10) and saves snapshots of
both every few steps. Any other profile ``p_{t, gamma}`` is then approximated by the least
squares combination ``sum_i c_i p_{t_i, gamma_i}`` of the snapshots' profiles in ``L2(0, inf)``:
``A c = b`` with ``A_ij = <p_i, p_j>``, ``b_i = <p_i, p_out>`` and, for ``t_a <= t_b``,

    <p_{t_a, g_a}, p_{t_b, g_b}> = (g_a + 1)(g_b + 1) (t_a / t_b)^g_b / ((g_a + g_b + 1) t_b);

the reconstructed weights are ``sum_i c_i theta_i``. The length of the EMA is thus chosen after
training. Snapshots live in ``<run_dir>/ema_snapshots/`` as safetensors files holding every
tracked EMA and, in their metadata, the samples seen and the ``sigma_rel`` values.
"""

from __future__ import annotations

import copy
import json
import math
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from ..errors import InterpolantError

__all__ = ["PowerEMA", "sigma_rel_to_gamma", "gamma_to_sigma_rel", "posthoc_coefficients",
           "save_snapshot", "load_snapshots", "posthoc_ema", "SIGMA_REL_MAX"]

SIGMA_REL_MAX = 1.0 / (2.0 * math.sqrt(3.0))  # gamma = 0: the uniform average of the run


def gamma_to_sigma_rel(gamma: float) -> float:
    """``sqrt(gamma + 1) / ((gamma + 2) sqrt(gamma + 3))``."""
    return math.sqrt(gamma + 1) / ((gamma + 2) * math.sqrt(gamma + 3))


def sigma_rel_to_gamma(sigma_rel: float) -> float:
    """The exponent ``gamma >= 0`` of the power-function profile of relative width ``sigma_rel``."""
    if isinstance(sigma_rel, bool) or not (isinstance(sigma_rel, (int, float))
                                           and 0 < sigma_rel <= SIGMA_REL_MAX):
        raise InterpolantError(f"sigma_rel must lie in (0, {SIGMA_REL_MAX:.4f}] (the uniform "
                               f"average of the run), got {sigma_rel!r}")
    s2 = sigma_rel ** -2
    roots = np.roots([1.0, 7.0, 16.0 - s2, 12.0 - s2])
    return float(max(r.real for r in roots if abs(r.imag) < 1e-9))


class PowerEMA:
    """Power-function EMAs of ``model``, one per ``sigma_rel``; :attr:`models` are the averages."""

    def __init__(self, model: nn.Module, sigma_rels: Sequence[float] = (0.05, 0.10)) -> None:
        if len(sigma_rels) == 0:
            raise InterpolantError("PowerEMA needs at least one sigma_rel, e.g. (0.05, 0.10)")
        self.sigma_rels = tuple(float(s) for s in sigma_rels)
        self.gammas = tuple(sigma_rel_to_gamma(s) for s in self.sigma_rels)
        self.models = []
        for _ in self.sigma_rels:
            ema = copy.deepcopy(model).eval()
            for p in ema.parameters():
                p.requires_grad_(False)
                if p.dtype in (torch.float16, torch.bfloat16):
                    p.data = p.data.float()
            self.models.append(ema)

    @torch.no_grad()
    def update(self, model: nn.Module, batch_samples: int, samples_seen: int) -> None:
        """Blend in ``model`` with ``beta = (1 - batch_samples / samples_seen)^(gamma + 1)``."""
        for gamma, ema in zip(self.gammas, self.models):
            beta = (1.0 - batch_samples / samples_seen) ** (gamma + 1.0)
            for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                e.lerp_(p.detach().to(e.dtype), 1.0 - beta)
            for e, b in zip(ema.buffers(), model.buffers(), strict=True):
                e.copy_(b)

    def state_dict(self) -> dict[str, Tensor]:
        """Every average's state under ``<index>.<name>``."""
        return {f"{i}.{k}": v for i, ema in enumerate(self.models)
                for k, v in ema.state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for i, ema in enumerate(self.models):
            ema.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items()
                                 if k.split(".", 1)[0] == str(i)})


def _p_dot_p(t_a: np.ndarray, g_a: np.ndarray, t_b: np.ndarray, g_b: np.ndarray) -> np.ndarray:
    """``<p_{t_a, g_a}, p_{t_b, g_b}>`` in L2 (broadcast), the formula of the module docstring."""
    exponent = np.where(t_a < t_b, g_b, -g_a)
    return ((g_a + 1) * (g_b + 1) * (t_a / t_b) ** exponent
            / ((g_a + g_b + 1) * np.maximum(t_a, t_b)))


def posthoc_coefficients(in_t: Sequence[float], in_gamma: Sequence[float],
                         out_t: float, out_gamma: float) -> np.ndarray:
    """Least-squares ``c`` with ``sum_i c_i p_{in_t_i, in_gamma_i} ~ p_{out_t, out_gamma}``."""
    t = np.asarray(in_t, dtype=np.float64)[:, None]
    g = np.asarray(in_gamma, dtype=np.float64)[:, None]
    a = _p_dot_p(t, g, t.T, g.T)
    b = _p_dot_p(t, g, np.float64(out_t), np.float64(out_gamma))
    return np.linalg.lstsq(a, b, rcond=None)[0][:, 0]


def save_snapshot(folder: str | os.PathLike[str], samples: int, ema: PowerEMA) -> Path:
    """Write ``snapshot_<samples>.safetensors`` (atomically) with every average of ``ema``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone().contiguous() for k, v in ema.state_dict().items()}
    meta = {"samples": str(int(samples)), "sigma_rels": json.dumps(ema.sigma_rels)}
    final = folder / f"snapshot_{int(samples):012d}.safetensors"
    tmp = folder / f".tmp-{final.name}-{uuid.uuid4().hex}"
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, final)
    return final


def load_snapshots(folder: str | os.PathLike[str]) -> list[tuple[int, float, dict[str, Tensor]]]:
    """``(samples, sigma_rel, state)`` of every average in every snapshot under ``folder``."""
    out = []
    for path in sorted(Path(folder).glob("snapshot_*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if "samples" not in meta or "sigma_rels" not in meta:
                raise InterpolantError(f"{path} is not a post-hoc EMA snapshot (no metadata)")
            state = {k: f.get_tensor(k) for k in f.keys()}
        for i, sigma_rel in enumerate(json.loads(meta["sigma_rels"])):
            part = {k.split(".", 1)[1]: v for k, v in state.items()
                    if k.split(".", 1)[0] == str(i)}
            out.append((int(meta["samples"]), float(sigma_rel), part))
    return out


def posthoc_ema(model: nn.Module, folder: str | os.PathLike[str], sigma_rel: float,
                samples: int | None = None) -> nn.Module:
    """A copy of ``model`` holding the post-hoc EMA of width ``sigma_rel`` at ``samples``
    (default: the last snapshot), reconstructed from the snapshots under ``folder`` (a run
    directory or its ``ema_snapshots/``). Buffers come from the last snapshot."""
    folder = Path(folder)
    if (folder / "ema_snapshots").is_dir():
        folder = folder / "ema_snapshots"
    snaps = load_snapshots(folder) if folder.is_dir() else []
    if not snaps:
        raise InterpolantError(f"no post-hoc EMA snapshots in {folder}; train with "
                               "ema_sigma_rels=(0.05, 0.10) and ema_snapshot_every=N (steps)")
    gamma = sigma_rel_to_gamma(sigma_rel)
    out_t = max(s for s, _, _ in snaps) if samples is None else samples
    coef = posthoc_coefficients([s for s, _, _ in snaps],
                                [sigma_rel_to_gamma(r) for _, r, _ in snaps], out_t, gamma)
    result = copy.deepcopy(model)
    last = max(snaps, key=lambda s: s[0])[2]
    names = {n for n, _ in result.named_parameters()}
    state = {k: v.clone() for k, v in last.items() if k not in names}
    for name, p in result.named_parameters():
        acc = torch.zeros_like(p, dtype=torch.float64)
        for c, (_, _, snap) in zip(coef, snaps):
            acc += float(c) * snap[name].to(torch.float64)
        state[name] = acc.to(p.dtype)
    result.load_state_dict(state)
    return result
