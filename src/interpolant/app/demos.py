"""The named demos of ``interpolant demo NAME``.

``digits`` (the default, what ``make demo`` runs) trains one class-conditional U-Net and shows
what it can do: solvers, guidance, restorations, edits. A capability that needs a model of its
own (a few-step student, a token model, a two-sided interpolant) has its own named demo, each
under ten minutes on two CPU cores, writing ``runs/demo-NAME/report/index.html``.

Each entry maps a name to ``"module:function"`` and a one-line description. The function is
called as ``function(out: Path, quick: bool, threads: int | None)`` and returns the path of the
report page it wrote; ``quick`` is a seconds-long smoke version used by the tests. Modules are
imported only when their demo runs, so listing the demos stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from ..errors import unknown_name

DEFAULT = "digits"

DEMOS: dict[str, tuple[str, str]] = {
    "digits": ("interpolant.app.workflows:digits_demo",
               "class-conditional U-Net on the 8x8 digits: solvers, guidance, restorations, "
               "edits"),
    "interpolant": ("interpolant.app.interpolant_demo:interpolant_demo",
                    "stochastic interpolants: data-dependent inpainting and super-resolution "
                    "against the Gaussian base; straightness per coupling"),
    "text": ("interpolant.app.token_report:text_demo",
             "masked diffusion on Python's documentation: samplers, bits per character, "
             "perplexity, diversity"),
    "fewstep": ("interpolant.app.demo_fewstep:fewstep_demo",
                "few-step students (cd, ct, pd, reflow, mmd, mlcm) of a digits teacher: "
                "Digits-FD at 1, 2, 4 NFE beside the teacher at 5, 10, 20"),
}


def default_out(name: str) -> Path:
    """Where demo ``name`` writes by default: ``runs/demo`` for the default demo, else
    ``runs/demo-NAME``."""
    return Path("runs/demo") if name == DEFAULT else Path(f"runs/demo-{name}")


def get(name: str) -> Callable[..., Path]:
    """The function of demo ``name``, or a clear error listing the demos."""
    if name not in DEMOS:
        raise unknown_name("demo", name, sorted(DEMOS))
    module, function = DEMOS[name][0].split(":")
    return getattr(importlib.import_module(module), function)


def describe() -> str:
    """One line per demo: ``NAME  description``."""
    width = max(len(n) for n in DEMOS)
    return "\n".join(f"{n:<{width}}  {d}" for n, (_, d) in DEMOS.items())
