"""Compilation and reduced precision, and :func:`accelerate`, which applies every method.

- :func:`compile_network`: ``torch.compile`` of the network. Compilation happens at the first
  call; if ``torch.compile`` is missing or that call fails (no C++ compiler, an unsupported
  operation) the wrapper warns once and runs the plain network from then on.
- :class:`CastNetwork`: bf16 (or fp16) inference: a copy of the network in that dtype; inputs
  are cast down and outputs back up to the caller's dtype (DESIGN.md: model outputs in low
  precision are upcast before they enter an update).
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..models.embeddings import label_index, labels_from_cond
from ..network import call_network, takes_cond
from ._wrap import Wrapper, network_of, rewrap
from .cache import BlockCacheDiT, DeepCacheUNet, EncoderPropagationUNet
from .eda import reconstruct
from .quantize import check_bits, fake_quantize, quantize_int8

CACHES = ("deepcache", "block", "encoder")


class CompiledNetwork(Wrapper):
    """``torch.compile(net)`` with the plain ``net`` as fallback (see the module docstring).
    Other attributes (``forward_cached``, ``levels``, ...) are the plain network's."""

    def __init__(self, net: nn.Module, **compile_options: Any) -> None:
        super().__init__()
        self.net = net
        self.failed: str | None = None
        try:
            self._compiled = torch.compile(net, **compile_options)
        except Exception as err:  # noqa: BLE001 - any failure means: run the plain network
            self._fail(err)

    def _fail(self, err: Exception) -> None:
        self.failed = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        warnings.warn(f"torch.compile is unavailable for this network ({self.failed}); "
                      "running it uncompiled", RuntimeWarning, stacklevel=3)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed is None:
            _check_labels(self.net, args, kwargs)
            try:
                return self._compiled(*args, **kwargs)
            except Exception as err:  # noqa: BLE001
                self._fail(err)
        return self.net(*args, **kwargs)


def _check_labels(net: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """The label check a compiled graph skips (``models.embeddings.label_index``), run eagerly
    on the call's ``cond`` so that bad labels still get the clear error."""
    k = getattr(net, "num_classes", None)
    cond = args[2] if len(args) > 2 else kwargs.get("cond")
    if not (isinstance(k, int) and cond is not None and args and isinstance(args[0], Tensor)):
        return
    try:
        labels = labels_from_cond(cond, args[0].shape[0], k)
    except InterpolantError:  # not class labels: the network judges its own condition
        return
    label_index(labels, k)


def compile_network(net: nn.Module, **compile_options: Any) -> CompiledNetwork:
    """``torch.compile`` with a fallback (``compile_options`` go to ``torch.compile``)."""
    return CompiledNetwork(net, **compile_options)


class CastNetwork:
    """Run ``net`` in ``dtype`` (a copy; the caller's network is left as it is)."""

    def __init__(self, net: nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        if dtype not in (torch.bfloat16, torch.float16, torch.float32, torch.float64):
            raise InterpolantError(f"dtype must be a floating torch dtype, got {dtype!r}")
        self.net = copy.deepcopy(net).to(dtype)
        self.dtype = dtype
        self._with_cond = takes_cond(net)

    def __call__(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        out = call_network(self.net, self._with_cond, x.to(self.dtype), t.to(self.dtype), cond)
        return out.to(x.dtype)

    def __getattr__(self, name: str) -> Any:  # the network's attributes (config, levels, ...)
        inner = self.__dict__.get("net")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


def accelerate(
    denoiser: Any,
    cache: str | None = None,
    interval: int = 3,
    quantize: str | None = None,
    compile: bool = False,
    dtype: torch.dtype | None = None,
    calibration: list | None = None,
    **cache_options: Any,
) -> Any:
    """A denoiser running the network of ``denoiser`` accelerated; the original is unchanged.

    Args:
        cache: ``"deepcache"`` (U-Net, :class:`DeepCacheUNet`), ``"encoder"`` (U-Net,
            Faster Diffusion, :class:`EncoderPropagationUNet`), ``"block"`` (DiT,
            :class:`BlockCacheDiT`) or ``None``; ``interval`` and ``cache_options`` (``level``,
            ``blocks``, ``full_calls``) go to the wrapper.
        quantize: ``"int8"`` (real int8 kernels, :func:`quantize_int8`), ``"fake<bits>"`` (e.g.
            ``"fake8"``: weights rounded to that many bits), ``"fake<bits>a"`` (weights and
            activations) or with ``t`` (``"fake4t"``, ``"fake4at"``: the temporal layers kept
            exact); ``a`` and ``t`` need ``calibration``, see :func:`calibration_inputs`;
            ``"eda<bits>"``: EDA-DM (:func:`~interpolant.acceleration.eda.reconstruct`,
            weights and activations, with ``calibration`` from :func:`eda_calibration`).
        compile: ``torch.compile`` with a fallback (:func:`compile_network`).
        dtype: run the network in this dtype (e.g. ``torch.bfloat16``).
    Order: quantize, cast, compile, then cache (caching keeps state, so it stays outermost).
    """
    net = network_of(denoiser)
    if not isinstance(net, nn.Module):
        raise InterpolantError("acceleration needs the denoiser's network to be an nn.Module")
    if cache is not None and cache not in CACHES:
        raise InterpolantError(f"unknown cache {cache!r}; choose one of: {', '.join(CACHES)}")
    if quantize is not None:
        net = _quantized(net, quantize, calibration)
    cast = None
    if dtype is not None:
        cast = CastNetwork(net, dtype)
        net = cast.net
    if compile:
        net = compile_network(net)
    if cache == "deepcache":
        net = DeepCacheUNet(net, interval, **cache_options)
    elif cache == "block":
        net = BlockCacheDiT(net, interval, **cache_options)
    elif cache == "encoder":
        net = EncoderPropagationUNet(net, interval, **cache_options)
    if cast is not None:
        cast.net = net
        return rewrap(denoiser, cast)
    return rewrap(denoiser, net)


def quantization(mode: Any) -> tuple[int | None, bool, bool]:
    """``(bits, activations, time_aware)`` of a ``quantize`` mode of :func:`accelerate`:
    ``"int8"`` (the int8 kernels, ``bits`` None) or ``"fake<bits>"`` followed by ``a``
    (activations too) and/or ``t`` (time-aware, TFMQ-DM); refuses a mode with no kernels or an
    unknown one."""
    text = str(mode)
    if text == "int8":
        return None, False, False
    flags = text[4:].lstrip("0123456789")
    digits = text[4:len(text) - len(flags)]
    if text.startswith("fake") and digits and flags in ("", "a", "t", "at"):
        return check_bits(int(digits)), "a" in flags, "t" in flags
    if text.startswith("eda") and text[3:].isdigit():
        return check_bits(int(text[3:])), True, False
    if text.startswith("int") and text[3:].isdigit():
        raise InterpolantError(
            f"no {text} kernels: PyTorch's CPU kernels are int8 only; use quantize='int8', or "
            f"quantize='fake{text[3:]}' to study {text[3:]}-bit accuracy"
        )
    raise InterpolantError(f"unknown quantization {mode!r}; use 'int8', 'fake<bits>', "
                           "'fake<bits>a' (activations too), 'fake<bits>t' (time-aware) or "
                           "'eda<bits>' (EDA-DM), e.g. 'fake8', 'fake4a', 'fake4at', 'eda4'")


def _quantized(net: nn.Module, mode: str, calibration: list | None) -> nn.Module:
    bits, activations, time_aware = quantization(mode)
    if bits is None:
        return quantize_int8(net)
    if mode.startswith("eda"):
        return reconstruct(net, bits, calibration or [])
    return fake_quantize(net, bits, activations=activations, calibration=calibration,
                         time_aware=time_aware)
