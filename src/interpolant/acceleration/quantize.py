"""Post-training quantization with time-step-aware calibration.

- :func:`fake_quantize`: the accuracy study. Weights of every ``Linear`` and ``Conv`` layer are
  rounded to ``bits``-bit symmetric integers and back, per output channel:
  ``w_q = clamp(round(w / s), -Q, Q) s`` with ``Q = 2^(bits-1) - 1``, ``s = max|w_c| / Q``
  (computed in float64, so 32 bits is the identity to float precision). With
  ``activations=True`` the inputs of those layers are rounded the same way, per tensor, with
  ranges observed on calibration inputs.
- :func:`calibration_inputs`: the network inputs met along a sampling run of the plain model,
  a few samples from every call (PTQ4DM, Shang et al. CVPR 2023; Q-Diffusion, Li et al. ICCV
  2023: calibrate on inputs drawn across the whole trajectory, since activation ranges change
  with the time step; a range observed at one ``t`` clips the others).
- time-feature-aware quantization (TFMQ-DM, Huang et al. CVPR 2024): the layers that see only
  the time (and label), never ``x`` (the time embedding and every block's projection of it),
  make the "temporal features"; their inputs take one value per sampling time, so rounding
  them distorts every step alike and cannot be calibrated away. :func:`temporal_layers` finds
  them (their inputs are bitwise equal for two different ``x`` at the same ``t``), and
  ``fake_quantize(..., time_aware=True)`` keeps them in full precision (their outputs could be
  cached per time step of the grid, TFMQ's finite-set view, at no cost), so the temporal
  features are exact.
- :func:`quantize_int8`: real int8 kernels on the CPU: PyTorch's dynamic quantization of the
  ``Linear`` layers (weights int8 per tensor, activations quantized per batch at run time;
  convolutions have no dynamic int8 kernel and stay in float).
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..network import call_network, takes_cond
from ..solvers import sample
from ._wrap import network_of, rewrap

LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
Calibration = list[tuple[Tensor, Tensor, Any]]


def check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 32:
        raise InterpolantError(f"fake quantization takes 2 to 32 bits, got {bits!r}")
    return bits


def round_to_bits(x: Tensor, bits: int, per_channel: bool = False,
                  amax: Tensor | None = None) -> Tensor:
    """``clamp(round(x / s), -Q, Q) s`` (formula of the module docstring), in float64, returned
    in the dtype of ``x``. ``amax``: the range (default ``max|x|``, per channel of dim 0)."""
    x64 = x.double()
    q = 2 ** (bits - 1) - 1
    if amax is None:
        dims = tuple(range(1, x.ndim)) if per_channel and x.ndim > 1 else tuple(range(x.ndim))
        amax = x64.abs().amax(dim=dims, keepdim=True)
    scale = torch.where(amax > 0, amax.double() / q, torch.ones_like(amax, dtype=torch.float64))
    return (torch.round(x64 / scale).clamp(-q, q) * scale).to(x.dtype)


def calibration_inputs(denoiser: Any, x_start: Tensor, per_call: int = 16,
                       **sample_kwargs: Any) -> Calibration:
    """``(x, t, cond)`` network inputs of a plain sampling run from ``x_start`` (arguments of
    :func:`interpolant.sample` in ``sample_kwargs``), the first ``per_call`` samples of every
    call: calibration data spread over the whole trajectory."""
    net = network_of(denoiser)
    with_cond = takes_cond(net)
    seen: Calibration = []

    def record(x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        c = cond[:per_call] if isinstance(cond, Tensor) else cond
        seen.append((x[:per_call].detach().clone(), t[:per_call].detach().clone(), c))
        return call_network(net, with_cond, x, t, cond)

    with torch.no_grad():
        sample(rewrap(denoiser, record), x_start, **sample_kwargs)
    return seen


def temporal_layers(net: nn.Module, x: Tensor, t: Tensor, cond: Any = None) -> list[str]:
    """Names of the ``Linear``/``Conv`` layers of ``net`` whose inputs depend on the time (and
    ``cond``) only: bitwise equal inputs for ``x`` and a perturbed ``x`` at the same ``t``."""
    seen: list[dict[str, Tensor]] = [{}, {}]
    named = [(n, m) for n, m in net.named_modules() if isinstance(m, LAYERS)]
    with_cond = takes_cond(net)
    for k, xk in enumerate((x, x + torch.randn(x.shape, generator=torch.Generator()
                                               .manual_seed(0), dtype=x.dtype).to(x.device))):
        handles = [m.register_forward_pre_hook(
            lambda module, args, name=n, store=seen[k]: store.setdefault(name, args[0].clone()))
            for n, m in named]
        try:
            with torch.no_grad():
                call_network(net, with_cond, xk, t, cond)
        finally:
            for h in handles:
                h.remove()
    return [n for n, _ in named
            if n in seen[0] and n in seen[1] and torch.equal(seen[0][n], seen[1][n])]


def fake_quantize(net: nn.Module, bits: int = 8, *, activations: bool = False,
                  calibration: Calibration | None = None, per_channel: bool = True,
                  time_aware: bool = False) -> nn.Module:
    """A copy of ``net`` with fake-quantized weights (and layer inputs with ``activations``,
    whose ranges come from ``calibration``, see :func:`calibration_inputs`). With
    ``time_aware`` the temporal layers (:func:`temporal_layers`, found on the first
    calibration input) stay in full precision (TFMQ-DM, module docstring)."""
    bits = check_bits(bits)
    layers = [m for m in net.modules() if isinstance(m, LAYERS)]
    if not layers:
        raise InterpolantError(f"{type(net).__name__} has no Linear or Conv layers to quantize")
    if (activations or time_aware) and not calibration:
        raise InterpolantError(f"{'activation' if activations else 'time-aware'} quantization "
                               "needs calibration inputs; pass calibration="
                               "interpolant.acceleration.calibration_inputs(...)")
    keep = set(temporal_layers(net, *calibration[0])) if time_aware and calibration else set()
    quant = copy.deepcopy(net)
    layers = [m for n, m in quant.named_modules() if isinstance(m, LAYERS) and n not in keep]
    with torch.no_grad():
        for m in layers:
            m.weight.copy_(round_to_bits(m.weight, bits, per_channel))
    if activations:
        ranges = _observe(quant, layers, calibration or [])
        for m in layers:
            m.register_forward_pre_hook(_rounding_hook(bits, ranges[id(m)]))
    return quant


def _observe(net: nn.Module, layers: list[nn.Module], calibration: Calibration
             ) -> dict[int, Tensor]:
    """Largest ``|input|`` of every layer over the calibration inputs."""
    ranges = {id(m): torch.zeros((), dtype=torch.float64) for m in layers}

    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        seen = args[0].detach().abs().max().double().cpu()
        ranges[id(module)] = torch.maximum(ranges[id(module)], seen)

    handles = [m.register_forward_pre_hook(hook) for m in layers]
    with_cond = takes_cond(net)
    try:
        with torch.no_grad():
            for x, t, cond in calibration:
                call_network(net, with_cond, x, t, cond)
    finally:
        for h in handles:
            h.remove()
    return ranges


def _rounding_hook(bits: int, amax: Tensor):
    def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (round_to_bits(args[0], bits, amax=amax.to(args[0].device)),) + args[1:]

    return hook


def quantize_int8(net: nn.Module) -> nn.Module:
    """A copy of ``net`` whose ``Linear`` layers run int8 kernels (dynamic quantization, CPU)."""
    params = list(net.parameters())
    if any(p.device.type != "cpu" for p in params):
        raise InterpolantError("int8 kernels run on the CPU; move the network there first "
                               "(or use fake quantization for the accuracy study)")
    if any(p.dtype != torch.float32 for p in params if p.is_floating_point()):
        raise InterpolantError("int8 dynamic quantization needs a float32 network")
    if not any(isinstance(m, nn.Linear) for m in net.modules()):
        raise InterpolantError(f"{type(net).__name__} has no Linear layer for the int8 kernels")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(net), {nn.Linear},
                                                      dtype=torch.qint8)
