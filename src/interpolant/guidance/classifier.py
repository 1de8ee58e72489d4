"""Classifier guidance with a noise-aware classifier.

Dhariwal & Nichol (2021), "Diffusion Models Beat GANs on Image Synthesis": a classifier
``p_phi(c | x_t, t)`` trained on noisy samples steers an (unconditional) model by

    score_g = score + s grad_x log p_phi(c | x_t, t),     i.e.   eps_g = eps - s sigma grad,
    x0_g = x0 + s (sigma^2 / alpha) grad,

(every target shifts by the linear part of its map from the score). With the exact classifier
and ``s = 1``, Bayes' rule makes ``score_g`` the exact class-conditional score.

:class:`NoiseAwareClassifier` is a small MLP over ``(x, t)`` and :func:`train_classifier`
trains it with cross-entropy on ``x_t = alpha x0 + sigma eps`` of any Gaussian path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..labels import NULL_LABEL
from ..paths import GaussianPath
from .base import Guided, check_callable, check_scale, labels_of

__all__ = ["ClassifierGuidance", "NoiseAwareClassifier", "train_classifier", "class_grad"]

Classifier = Callable[[Tensor, Tensor], Tensor]


def class_grad(classifier: Classifier, x: Tensor, t: Tensor | float, labels: Tensor) -> Tensor:
    """``grad_x log softmax(classifier(x, t))[label]`` per sample; 0 for ``NULL_LABEL`` rows.

    ``classifier(x, t)`` gets ``t`` of shape ``(B,)`` in the dtype of ``x`` and returns logits
    ``(B, C)``. Autograd runs even inside ``torch.inference_mode`` / ``no_grad``."""
    null = labels == NULL_LABEL
    with torch.inference_mode(False), torch.enable_grad():
        xr = x.detach().clone().requires_grad_(True)
        tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device) if isinstance(
            t, float) else t.detach().clone().to(x.dtype)
        logits = classifier(xr, tt)
        if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] != x.shape[0]:
            raise InterpolantError("the classifier must return logits of shape (B, num_classes)")
        if bool((labels[~null] >= logits.shape[1]).any()) or bool((labels[~null] < 0).any()):
            raise InterpolantError(
                f"a label lies outside the classifier's classes 0..{logits.shape[1] - 1}"
            )
        picked = torch.log_softmax(logits, dim=1).gather(1, labels.clamp(min=0)[:, None])
        (grad,) = torch.autograd.grad(picked.sum(), xr)
    grad = grad.detach().to(x.dtype)
    return grad.masked_fill(null.view(-1, *([1] * (x.ndim - 1))).to(grad.device), 0.0)


class ClassifierGuidance(Guided):
    """``score + s grad log p(c | x_t, t)`` (Dhariwal & Nichol 2021) as a denoiser.

    Args:
        den: the model to guide; called with ``cond=None`` (unconditional), or with the
            labels when ``conditional=True`` (guiding a conditional model, as ADM did).
        classifier: ``classifier(x, t) -> logits (B, C)``, noise-aware, on ``den.path``.
        scale: ``s``; ``s = 1`` with the exact classifier gives the conditional denoiser.
    """

    method = "classifier guidance"

    def __init__(self, den: Any, classifier: Classifier, scale: float = 1.0, *,
                 conditional: bool = False) -> None:
        super().__init__(den=den)
        self.den, self.classifier = den, check_callable(classifier, "classifier")
        self.scale, self.conditional = check_scale(scale), bool(conditional)

    def _guide(self, x: Tensor, t: Tensor | float, cond: Any, target: str) -> Tensor:
        labels = labels_of(cond, x.shape[0], self.method)
        out = self._eval(self.den, x, t, cond if self.conditional else None, target)
        grad = class_grad(self.classifier, x, t, labels)
        return out + self._shift(self.scale * grad, target, x, t)


class NoiseAwareClassifier(nn.Module):
    """``logits = MLP([x, sin(2^j pi t), cos(2^j pi t)])``: a classifier of noisy samples.

    ``x`` of any shape ``(B, ...)`` is flattened to ``dim`` features; ``t`` is ``(B,)``.
    """

    def __init__(self, dim: int, num_classes: int, hidden: int = 128, depth: int = 2,
                 frequencies: int = 6) -> None:
        super().__init__()
        if dim < 1 or num_classes < 2 or depth < 1:
            raise InterpolantError("need dim >= 1, num_classes >= 2 and depth >= 1")
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(frequencies))
        layers: list[nn.Module] = [nn.Linear(dim + 2 * frequencies, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, num_classes))
        self.num_classes = num_classes

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        phase = t[:, None].to(self.freqs.dtype) * self.freqs
        h = torch.cat([x.flatten(1), phase.sin().to(x.dtype), phase.cos().to(x.dtype)], 1)
        return self.net(h)


def train_classifier(
    classifier: nn.Module,
    data: Tensor,
    labels: Tensor,
    path: GaussianPath,
    *,
    steps: int = 1000,
    batch_size: int = 256,
    lr: float = 2e-3,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Train a noise-aware classifier: minimise ``E CE(classifier(x_t, t), c)`` with
    ``t ~ U(t_min, 1)``, ``x_t = alpha(t) x0 + sigma(t) eps`` on ``path`` (Dhariwal & Nichol
    2021, Sec. 4). Returns the loss of every step."""
    if data.shape[0] != labels.shape[0] or data.shape[0] == 0:
        raise InterpolantError("data and labels must be non-empty and of the same length")
    params = list(classifier.parameters())
    dtype = params[0].dtype if params else data.dtype
    data, labels = data.to(dtype), labels.long()
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=generator)
        x0, y = data[idx.to(data.device)], labels[idx.to(labels.device)]
        t = path.t_min + (1 - path.t_min) * torch.rand(batch_size, generator=generator,
                                                       dtype=dtype)
        noise = torch.randn(x0.shape, generator=generator, dtype=dtype).to(x0.device)
        t = t.to(x0.device)
        loss = nn.functional.cross_entropy(classifier(path.sample(x0, t, noise), t), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
