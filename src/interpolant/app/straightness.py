"""The straightness page of ``interpolant demo interpolant``: how straight the flow from
``N(0, I)`` to a 2-D mixture is under each coupling of data and noise.

For each coupling of :mod:`interpolant.training.couplings` (independent; minibatch OT, Tong et
al. 2023 / Pooladian et al. 2023) an MLP learns the velocity of the linear interpolant on pairs
drawn from that coupling (the trainer's ``coupling``); for ``mtc`` the noise end comes from an
encoder learned with the velocity (Lee et al. 2023, :mod:`interpolant.interpolants.mtc`) and
sampling starts from ``N(0, I)``. The page reports

* the curvature ``S = E int |x_1 - x_0 - u(x_t)|^2 dt`` on pairs of the same coupling and the
  kinetic energy ``E int |u|^2 dt`` (Lee et al. 2023; :mod:`interpolant.processes.curvature`),
  next to the exact independent flow's (:class:`~interpolant.interpolants.TwoSidedMixture`);
* the sliced Wasserstein distance of Euler samples at 1, 2, 4 and 8 NFE to the data (a
  straighter flow needs fewer steps);
* a picture of trajectories per coupling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import metrics, models, paths, plots, solvers
from ..interpolants import (GaussianEncoder, Interpolant, InterpolantModel, MTCObjective,
                           TwoSidedMixture)
from ..oracle import GaussianMixture
from ..processes.curvature import curvature, kinetic_energy
from ..training import TrainConfig, Trainer, couplings
from . import report

COUPLINGS = ("independent", "ot", "mtc")
BATCH = 256
NFES = (1, 2, 4, 8)


def _pairs(p0: GaussianMixture, coupling: str, encoder: GaussianEncoder | None = None):
    """Pairs ``(x_0, x_1)`` drawn as the trainer draws them: a batch of data and of noise,
    coupled within chunks of the training batch size (or through MTC's ``encoder``)."""
    couple = couplings.OT(chunk=BATCH) if coupling == "ot" else couplings.get(
        "independent" if coupling == "mtc" else coupling)

    def draw(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x0 = p0.sample(n, generator).float()
        noise = couple(x0, torch.randn(x0.shape, generator=generator))
        if encoder is None:
            return x0, noise
        with torch.no_grad():
            return x0, encoder.sample(x0, noise)
    return draw


def train_flow(p0: GaussianMixture, coupling: str, steps: int, seed: int = 0
               ) -> tuple[InterpolantModel, GaussianEncoder | None]:
    """An MLP velocity of the linear interpolant trained on ``coupling``'s pairs (and, for
    ``mtc``, the encoder learned with it)."""
    torch.manual_seed(seed)
    net = models.build("mlp", dim=2, hidden=128, depth=3)
    data = p0.sample(8192, torch.Generator().manual_seed(seed)).float()
    encoder = GaussianEncoder(2, hidden=64) if coupling == "mtc" else None
    config = TrainConfig(target="velocity", coupling="independent" if encoder else coupling,
                         steps=steps, batch_size=BATCH, lr=2e-3, warmup=20, label_dropout=0.0,
                         progress=False, log_every=steps, seed=seed)
    objective = MTCObjective(encoder, Interpolant.linear()) if encoder is not None else None
    Trainer(net, paths.Linear(), data, None, config, objective=objective).run()
    net.eval()
    return InterpolantModel(net, Interpolant.linear()), encoder


def _field(model: Any):
    def velocity(x: Tensor, t: float) -> Tensor:
        with torch.no_grad():
            return model(x, t)
    return velocity


def _trajectories(model: Any, x1: Tensor, file: Path, title: str) -> Path:
    states = [x1]
    with torch.no_grad():
        for state in solvers.trajectory(model, x1, solver="heun", steps=16, grid="uniform",
                                        t_start=1.0, t_end=0.0):
            states.append(state.x)
    path = torch.stack(states).numpy()  # (steps + 1, n, 2)
    figure, axes = plots.new_figure(3.6, 3.6)
    for i in range(path.shape[1]):
        axes.plot(path[:, i, 0], path[:, i, 1], lw=0.7, color="#1a73e8", alpha=0.6)
    axes.scatter(path[0, :, 0], path[0, :, 1], s=5, color="#9aa0a6", label="noise")
    axes.scatter(path[-1, :, 0], path[-1, :, 1], s=5, color="#d93025", label="data")
    axes.set_title(title)
    axes.legend(loc="lower right", fontsize=7)
    return plots.save_figure(figure, file)


def straightness_page(out: Path, quick: bool = False) -> report.Section:
    """Train one flow per coupling and measure it (seconds with ``quick``)."""
    p0 = GaussianMixture.preset("aniso2d")
    path = Interpolant.linear()
    steps, n = (30, 256) if quick else (800, 2048)
    gen = torch.Generator().manual_seed(1)
    x1 = torch.randn(n, 2, generator=gen)
    truth = p0.sample(n, gen).float()
    exact = TwoSidedMixture(p0, GaussianMixture(torch.zeros(1, 2, dtype=torch.float64),
                                                torch.eye(2, dtype=torch.float64)[None]), path)
    exact_u = lambda x, t: exact.velocity(x.double(), t).float()  # noqa: E731
    rows = [{"coupling": "independent (exact field)",
             "curvature": curvature(exact_u, _pairs(p0, "independent"), path, n=n),
             "kinetic_energy": kinetic_energy(exact_u, _pairs(p0, "independent"), path, n=n)}]
    pictures = []
    for coupling in COUPLINGS:
        model, encoder = train_flow(p0, coupling, steps)
        pairs = _pairs(p0, coupling, encoder)
        row = {"coupling": coupling, "curvature": curvature(_field(model), pairs, path, n=n),
               "kinetic_energy": kinetic_energy(_field(model), pairs, path, n=n)}
        for nfe in NFES:
            with torch.no_grad():
                x = solvers.sample(model, x1, solver="euler", steps=nfe, grid="uniform",
                                   t_start=1.0, t_end=0.0)
            row[f"sw2_nfe{nfe}"] = metrics.sliced_wasserstein(x, truth)
        rows.append(row)
        pictures.append(report.Picture(_trajectories(
            model, x1[:60], out / "pages" / f"straightness_{coupling}.png", coupling),
            f"{coupling}: heun trajectories, noise (grey) to data (red)"))
    return report.Section(
        "Trajectory straightness per coupling (2-D mixture)",
        paragraphs=["Curvature S = E int |x1 - x0 - u(x_t)|^2 dt on the coupling's own pairs "
                    "(0 for straight, non-crossing paths), kinetic energy E int |u|^2 dt, and "
                    "the sliced W2 of Euler samples to the data at 1, 2, 4, 8 NFE (lower is "
                    f"better). Minibatch OT couples within batches of {BATCH}; MTC learns an encoder "
                    "q(x1 | x0) with the velocity (beta = 1) and samples from N(0, I)."],
        images=pictures, tables=[report.Table(rows, "straightness and few-step quality")])
