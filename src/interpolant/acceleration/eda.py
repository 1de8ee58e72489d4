"""EDA-DM: post-training quantization with enhanced distribution alignment.

Liu et al. 2024, "Enhanced Distribution Alignment for Post-Training Quantization of Diffusion
Models" (arXiv 2401.04585). Two parts, on top of :mod:`.quantize`:

Temporal Distribution Alignment Calibration (TDAC, :func:`eda_calibration`). A plain sampling
run gives, at every call ``i``, the network inputs and a latent feature map ``F_i`` (the
output of one inner block, by default the middle one). Each step is scored by

    density   D_i = #{j != i : mean((F_i - F_j)^2) <= r}
    diversity V_i = sum_{j != i} sum_b (1 - cos(F_i[b], F_j[b]))

(``r`` defaults to the median distance between steps), both normalised to ``[0, 1]`` by
min-max, and step ``i`` receives ``n_i = round(N w_i / sum_j w_j)`` of the ``N`` calibration
samples, ``w_i = D_i + lambda V_i`` (rounding deficit: +1 to the largest counts; surplus: -1
from the last steps). Steps in dense regions of the trajectory (many steps look alike) and
steps unlike the others both get more samples, so the calibration set follows the
activations met over the whole run (:func:`alignment_weights`, :func:`allocate`).

Fine-grained Block Reconstruction (FBR, :func:`reconstruct`). Block by block (the network's
called modules that hold ``Linear``/``Conv`` layers), the rounding of the weights is learned
(AdaRound, Nagel et al. 2020: ``w_q = s clamp(floor(w / s) + h(V), -Q, Q)``, ``h(V) =
clamp(sigmoid(V) (zeta - gamma) + gamma, 0, 1)``, the regulariser ``sum 1 - |2h - 1|^beta``
driving ``h`` to 0 or 1, then hard ``h = [V >= 0]``) on the loss that aligns the quantized
block with the full-precision one at block AND layer granularity:

    L = |B_q(u) - B(u)|^2 + sum_{layers l in the block} |l_q - l|^2 + lambda_r reg

on the block inputs ``u`` of the calibration set, with the activations rounded as in use
(ranges from the calibration set, their scale learned too, LSQ-style, with a straight-through
gradient through the rounding). A block keeps what it learned only if its hard-rounded loss
beats round-to-nearest with the observed ranges, so no block ends worse than PTQ4DM-style
calibration on the calibration inputs. Since ``w_q`` stays within one step ``s`` of ``w``,
32 bits is the identity to float precision whatever is learned.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..errors import InterpolantError
from ..network import call_network, takes_cond
from ._wrap import network_of
from .quantize import (LAYERS, Calibration, _observe, _rounding_hook, calibration_inputs,
                       check_bits)

ZETA, GAMMA = 1.1, -0.1


def alignment_weights(features: list[Tensor], lam: float = 1.0,
                      radius: float | None = None) -> Tensor:
    """TDAC's ``w_i = D_i + lambda V_i`` (min-max normalised density and diversity, module
    docstring) of the per-step feature maps ``features[i]`` (batch first, same shape)."""
    f = torch.stack([x.detach().double().flatten(1) for x in features])  # (T, B, d)
    n = f.shape[0]
    dist = ((f[:, None] - f[None]) ** 2).mean(dim=(2, 3))
    off = ~torch.eye(n, dtype=torch.bool)
    r = float(dist[off].median()) if radius is None else radius
    density = ((dist <= r) & off).sum(1).double()
    cos = torch.nn.functional.cosine_similarity(f[:, None], f[None], dim=3, eps=1e-6)
    diversity = ((1 - cos).sum(2) * off).sum(1)
    return _minmax(density) + lam * _minmax(diversity)


def _minmax(v: Tensor) -> Tensor:
    span = v.max() - v.min()
    return (v - v.min()) / span if span > 0 else torch.zeros_like(v)


def allocate(weights: Tensor, total: int) -> Tensor:
    """``n_i = round(total w_i / sum w)``, the deficit added one each to the largest counts
    and a surplus taken one each from the last steps holding any (uniform if all ``w`` are 0)."""
    w = weights.double()
    p = w / w.sum() if float(w.sum()) > 0 else torch.full_like(w, 1.0 / len(w))
    n = torch.round(p * total).long()
    error = total - int(n.sum())
    if error > 0:
        order = torch.sort(n, descending=True, stable=True).indices
        n[order[:error]] += 1
    for i in reversed(range(len(n))):
        if error >= 0:
            break
        if n[i] > 0:
            n[i] -= 1
            error += 1
    return n


def eda_calibration(denoiser: Any, x_start: Tensor, total: int, lam: float = 1.0,
                    radius: float | None = None, features: str | None = None,
                    **sample_kwargs: Any) -> Calibration:
    """TDAC: ``total`` calibration inputs ``(x, t, cond)`` drawn from a plain run from
    ``x_start`` (``sample_kwargs`` go to :func:`interpolant.sample`), ``n_i`` of them (module
    docstring) from call ``i``; ``features`` names the module whose output is the latent
    feature map (default: the middle block of :func:`blocks`)."""
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise InterpolantError(f"total must be a positive number of samples, got {total!r}")
    net = network_of(denoiser)
    seen = calibration_inputs(denoiser, x_start, per_call=x_start.shape[0], **sample_kwargs)
    named = dict(net.named_modules())
    if features is None:
        found = blocks(net, seen[0])
        features = found[len(found) // 2]
    if features not in named:
        raise InterpolantError(f"{type(net).__name__} has no module {features!r} for the "
                               "feature map; name one of net.named_modules()")
    maps: list[Tensor] = []
    handle = named[features].register_forward_hook(
        lambda m, a, out: maps.append(out.detach() if isinstance(out, Tensor) else out[0]))
    try:
        with torch.no_grad():
            for x, t, cond in seen:
                call_network(net, takes_cond(net), x, t, cond)
    finally:
        handle.remove()
    counts = allocate(alignment_weights(maps, lam, radius), total)
    chosen: Calibration = []
    for (x, t, cond), n in zip(seen, counts.tolist()):
        if n:
            idx = torch.arange(n) % x.shape[0]
            chosen.append((x[idx], t[idx], cond[idx] if isinstance(cond, Tensor) else cond))
    return chosen


def blocks(net: nn.Module, example: tuple[Tensor, Tensor, Any]) -> list[str]:
    """Names of the reconstruction blocks of ``net``: from the top, a module called in a
    forward pass on ``example`` that holds ``Linear``/``Conv`` layers is a block; a module
    never called itself (a ``ModuleList``) is searched inside."""
    called: set[nn.Module] = set()
    handles = [m.register_forward_hook(lambda m, a, o: called.add(m)) for m in net.modules()]
    try:
        with torch.no_grad():
            call_network(net, takes_cond(net), *example)
    finally:
        for h in handles:
            h.remove()
    found: list[str] = []

    def visit(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if not any(isinstance(m, LAYERS) for m in child.modules()):
                continue
            if child in called:
                found.append(full)
            else:
                visit(child, full + ".")

    visit(net, "")
    return found


def reconstruct(net: nn.Module, bits: int, calibration: Calibration, activations: bool = True,
                iters: int = 100, lr: float = 1e-2, reg: float = 0.01) -> nn.Module:
    """FBR (module docstring): a copy of ``net`` with ``bits``-bit weights whose rounding is
    learned block by block on ``calibration`` (see :func:`eda_calibration`), and, with
    ``activations``, layer inputs rounded to ``bits`` on the calibration ranges."""
    bits = check_bits(bits)
    if not calibration:
        raise InterpolantError("EDA-DM reconstruction needs calibration inputs; pass "
                               "calibration=interpolant.acceleration.eda_calibration(...)")
    quant = copy.deepcopy(net).eval()
    layers = [m for m in quant.modules() if isinstance(m, LAYERS)]
    if not layers:
        raise InterpolantError(f"{type(net).__name__} has no Linear or Conv layers to quantize")
    ranges = _observe(quant, layers, calibration) if activations else {}
    fp_named, q_named = dict(net.named_modules()), dict(quant.named_modules())
    for name in blocks(net, calibration[0]):
        _fit_block(fp_named[name], q_named[name], net, calibration, bits, ranges,
                   iters, lr, reg)
    for m in layers:
        if activations:
            m.register_forward_pre_hook(_rounding_hook(bits, ranges[id(m)]))
    return quant


def _fit_block(fp: nn.Module, q: nn.Module, net: nn.Module, calibration: Calibration,
               bits: int, ranges: dict[int, Tensor], iters: int, lr: float, reg: float) -> None:
    """Learn the AdaRound variables (and the activation ranges, LSQ-style) of the layers of
    block ``q`` against block ``fp``; keep them if their hard-rounded loss beats plain
    round-to-nearest with the observed ranges (so no block ends worse than PTQ), and write the
    weights into ``q`` and the ranges into ``ranges``."""
    names = [n for n, m in fp.named_modules() if isinstance(m, LAYERS)]
    layers = dict(q.named_modules())
    fp_layers = dict(fp.named_modules())
    targets = _block_io(fp, [fp_layers[n] for n in names], net, calibration)
    qmax = 2 ** (bits - 1) - 1
    rounding, log_range, observed = {}, {}, {}
    for n in names:
        w = layers[n].weight.detach().double()
        scale = w.abs().amax(dim=tuple(range(1, w.ndim)), keepdim=True) / qmax
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        rest = (w / scale - torch.floor(w / scale)).clamp(1e-4, 1 - 1e-4)
        v = -torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1)
        rounding[n] = (torch.floor(w / scale), scale, rest, v.requires_grad_(True))
        if id(layers[n]) in ranges:
            observed[n] = ranges[id(layers[n])].double()
            log_range[n] = torch.zeros((), dtype=torch.float64, requires_grad=True)

    def weights(h_of: Any) -> dict[str, Tensor]:
        """``s clamp(floor(w / s) + h, -Q, Q)`` of every layer, ``h = h_of(rest, V)``."""
        return {f"{n}.weight" if n else "weight": (torch.clamp(base + h_of(rest, v), -qmax, qmax)
                                                   * scale).to(layers[n].weight.dtype)
                for n, (base, scale, rest, v) in rounding.items()}

    live: dict[str, Tensor] = {}
    seen: list[Tensor] = []
    hooks = [layers[n].register_forward_hook(lambda m, a, o: seen.append(o)) for n in names]
    hooks += [layers[n].register_forward_pre_hook(_ste_hook(qmax, live, n)) for n in observed]

    def loss_of(k: int, w: dict[str, Tensor]) -> Tensor:
        args, kwargs, out, layer_outs = targets[k % len(targets)]
        seen.clear()
        pred = functional_call(q, w, args, kwargs)
        return _sq(pred, out) + sum(_sq(a, b) for a, b in zip(seen, layer_outs))

    opt = torch.optim.Adam([r[3] for r in rounding.values()] + list(log_range.values()),
                           lr=lr)
    try:
        for k in range(iters):
            with torch.enable_grad():  # also when called under no_grad
                live.update({n: observed[n] * log_range[n].exp() for n in observed})
                loss = loss_of(k, weights(lambda rest, v: _soft(v)))
                if k >= iters // 5:  # AdaRound: no regulariser while warming up, beta 20 -> 2
                    beta = 2 + 18 * (1 - (k - iters // 5) / max(1, iters - iters // 5))
                    loss = loss + reg * sum((1 - (2 * _soft(r[3]) - 1).abs() ** beta).sum()
                                            for r in rounding.values())
                opt.zero_grad()
                loss.backward()
            opt.step()
        with torch.no_grad():
            live.update({n: observed[n] * log_range[n].exp() for n in observed})
            learned, learned_ranges = weights(lambda rest, v: (v >= 0).double()), dict(live)
            fitted = sum(float(loss_of(k, learned)) for k in range(len(targets)))
            live.update(observed)
            nearest = weights(lambda rest, v: torch.round(rest))
            plain = sum(float(loss_of(k, nearest)) for k in range(len(targets)))
    finally:
        for h in hooks:
            h.remove()
    keep = fitted <= plain
    with torch.no_grad():
        for n, w in (learned if keep else nearest).items():
            q.get_parameter(n).copy_(w)
    for n in observed:
        ranges[id(layers[n])] = (learned_ranges if keep else observed)[n].detach()


def _soft(v: Tensor) -> Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)


def _sq(a: Any, b: Any) -> Tensor:
    """``sum |a - b|^2`` over features, mean over the batch (float64)."""
    a = a if isinstance(a, Tensor) else a[0]
    b = b if isinstance(b, Tensor) else b[0]
    return ((a.double() - b.double()) ** 2).flatten(1).sum(1).mean()


def _ste_hook(qmax: int, amax: dict[str, Tensor], name: str):
    """Round the layer's input as :func:`.quantize.round_to_bits` does with the range
    ``amax[name]`` (a tensor that may be learned), gradients straight through the rounding."""
    def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x, top = args[0].double(), amax[name]
        scale = torch.where(top > 0, top / qmax, torch.ones_like(top))
        y = x / scale
        y = y + (torch.round(y) - y).detach()
        return (torch.clamp(y, -qmax, qmax) * scale).to(args[0].dtype), *args[1:]

    return hook


def _block_io(fp: nn.Module, layers: list[nn.Module], net: nn.Module,
              calibration: Calibration) -> list[tuple[tuple, dict, Any, list[Tensor]]]:
    """Per call of block ``fp`` over ``calibration``: its inputs, output and layer outputs."""
    record: list[tuple[tuple, dict, Any, list[Tensor]]] = []
    outs: list[Tensor] = []
    hooks = [m.register_forward_hook(lambda m, a, o: outs.append(o.detach())) for m in layers]

    def block_hook(m: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
        record.append((_detach(args), _detach(kwargs), _detach(out), list(outs)))
        outs.clear()

    hooks.append(fp.register_forward_hook(block_hook, with_kwargs=True))
    try:
        with torch.no_grad():
            for x, t, cond in calibration:
                outs.clear()
                call_network(net, takes_cond(net), x, t, cond)
    finally:
        for h in hooks:
            h.remove()
    if not record:
        raise InterpolantError(f"block {type(fp).__name__} is not called on the calibration "
                               "inputs")
    return record


def _detach(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, tuple):
        return tuple(_detach(v) for v in value)
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    return value
