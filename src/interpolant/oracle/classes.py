"""The class-conditional side of a Gaussian mixture (``labels=``): class priors, restricted
mixtures, the exact noise-aware classifier ``p(c | x_t) = sum_{k: labels[k] = c} r_k(x_t)``
and the per-sample class masks that make the denoiser answer for ``p(x0 | c)``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..labels import NULL_LABEL
from ..paths import GaussianPath


class ClassConditional:
    """Methods of :class:`~interpolant.oracle.GaussianMixture` about its classes."""

    @property
    def num_classes(self) -> int | None:
        """``C`` for a class-conditional mixture (labels ``0 .. C-1``), else ``None``."""
        return None if self.labels is None else int(self.labels.max()) + 1

    def _labelled(self) -> Tensor:
        if self.labels is None:
            raise InterpolantError(
                "this mixture has no classes; build it with GaussianMixture(..., labels=...)"
            )
        return self.labels

    def class_log_prior(self) -> Tensor:
        """``log p(c) = log sum_{k: labels[k] = c} w_k``, shape ``(C,)``."""
        labels = self._labelled()
        prior = torch.zeros(self.num_classes, dtype=torch.float64)  # type: ignore[arg-type]
        return torch.log(prior.index_add_(0, labels, self.weights))

    def restrict(self, label: int) -> Any:
        """``p(x0 | c = label)``: class ``label``'s components, renormalised (no labels)."""
        own = self._labelled()
        keep = own == int(label)
        if not keep.any():
            raise InterpolantError(f"no component has label {label}; classes: 0..{int(own.max())}")
        return type(self)(self.means[keep], self.covs[keep], self.weights[keep])

    def class_log_posterior(self, x: Tensor, t: float | Tensor, path: GaussianPath) -> Tensor:
        """The exact noise-aware classifier ``log p(c | x_t = x)``, shape ``(n, C)``:
        ``logsumexp_{k: labels[k] = c} log w_k N(x; alpha mu_k, alpha^2 S_k + sigma^2 I)``
        minus ``log p_t(x)``."""
        labels = self._labelled()
        log_joint, _, _ = self._components(x, path.alpha(t), path.sigma(t))
        per_class = torch.stack(
            [torch.logsumexp(log_joint[:, labels == c], dim=1) for c in range(self.num_classes)], 1
        )
        return (per_class - torch.logsumexp(log_joint, dim=1, keepdim=True)).to(x.dtype)

    def classifier(self, path: GaussianPath) -> _ExactClassifier:
        """``classifier(x, t) -> log p(c | x_t)`` (``t`` of shape ``(n,)``): the exact
        noise-aware classifier of classifier guidance (Dhariwal & Nichol 2021) on ``path``."""
        self._labelled()
        return _ExactClassifier(self, path)

    def _class_mask(self, cond: Any, n: int) -> Tensor | None:
        """``(n, K)`` log-weights turning ``w_k`` into ``w_k / p(c_n)`` on class ``c_n`` and 0
        elsewhere (``-inf`` in logs); ``None`` (no change) for ``cond=None``; rows with
        ``NULL_LABEL`` unchanged."""
        if cond is None:
            return None
        labels = cond.get("labels") if isinstance(cond, Mapping) else cond
        if (not isinstance(labels, Tensor) or labels.shape != (n,)
                or labels.is_floating_point() or labels.dtype == torch.bool):
            got = (f"{labels.dtype} of shape {tuple(labels.shape)}" if isinstance(labels, Tensor)
                   else type(labels).__name__)
            raise InterpolantError(
                f"cond must be None or int64 class labels of shape ({n},), got {got}"
            )
        labels = labels.to("cpu", torch.int64)
        null = labels == NULL_LABEL
        if bool(null.all()):
            return None
        own = self._labelled()
        last = int(own.max())
        bad = ~null & ((labels < 0) | (labels > last))
        if bad.any():
            raise InterpolantError(
                f"label {int(labels[bad][0])} is outside this mixture's classes "
                f"0..{last} (NULL_LABEL = {NULL_LABEL} means no label)"
            )
        log_prior = self.class_log_prior()[labels.clamp(min=0)]
        mask = torch.where(labels[:, None] == own[None], -log_prior[:, None], -math.inf)
        return torch.where(null[:, None], 0.0, mask)


class _ExactClassifier:
    """``classifier(x, t) -> log p(c | x_t = x)`` for a class-conditional mixture on a path."""

    def __init__(self, gmm: ClassConditional, path: GaussianPath) -> None:
        self.gmm, self.path = gmm, path

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        return self.gmm.class_log_posterior(x, t.to(torch.float64), self.path)


def check_labels(labels: Any, k: int) -> Tensor:
    """Component labels: ``k`` integers covering ``0 .. C-1``."""
    if not isinstance(labels, Tensor):
        labels = torch.as_tensor(labels)
    if labels.shape != (k,) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise InterpolantError(f"labels must be {k} integers (one class per component)")
    labels = labels.to("cpu", torch.int64)
    present = torch.unique(labels)
    if present.min() < 0 or present.numel() != int(present.max()) + 1:
        raise InterpolantError(
            f"labels must cover the classes 0..C-1 without gaps, got {present.tolist()}"
        )
    return labels
