"""MultiDiffusion and visual anagrams: the fused prediction against its least-squares formula
written with explicit crop and permutation matrices, and anagrams on the exact oracle that the
exact classifier reads as one class and, under the view, as the other."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.guidance.multidiffusion import window_starts

F64 = torch.float64
PATH = ip.paths.VPCosine()


def _nonlocal(x, t, cond):
    """A window-size model whose output at each pixel depends on the whole window."""
    return torch.tanh(x) + x.mean(dim=(-2, -1), keepdim=True) * t.view(-1, 1, 1, 1)


def _crop_matrix(h, w, top, left, size):
    """F: the (size^2, h w) 0/1 matrix taking a flattened canvas to a flattened window."""
    rows = [(top + i) * w + (left + j) for i in range(size) for j in range(size)]
    f = torch.zeros(size * size, h * w, dtype=F64)
    f[torch.arange(size * size), rows] = 1.0
    return f


def test_fusion_is_the_least_squares_solution():
    """J = (sum F_i^T F_i)^-1 sum F_i^T D(F_i x), with dense crop matrices, per channel."""
    h, w, size, stride = 8, 14, 4, 3
    x = torch.randn(2, 3, h, w, dtype=F64, generator=torch.Generator().manual_seed(0))
    den = ip.Denoiser(_nonlocal, PATH, prediction="x0")
    g = ip.guidance.MultiDiffusion(den, (size, size), (stride, stride))
    got = g(x, 0.4, None, "x0")
    mats = [_crop_matrix(h, w, top, left, size) for top in window_starts(h, size, stride)
            for left in window_starts(w, size, stride)]
    normal = sum(f.T @ f for f in mats)
    flat = x.reshape(6, h * w)
    rhs = sum(_nonlocal((flat @ f.T).view(2, 3, size, size), torch.full((2,), 0.4, dtype=F64),
                        None).reshape(6, -1) @ f for f in mats)
    expect = torch.linalg.solve(normal, rhs.T).T.view_as(x)
    torch.testing.assert_close(got, expect, rtol=1e-12, atol=1e-12)
    assert g.calls == 1 and g.nfe == len(mats) == 3 * 5


def test_a_pixelwise_model_gives_the_whole_canvas_at_once():
    """Where windows agree (a pixelwise model), the fusion is the model on the whole canvas,
    in every target and sampled with any solver."""
    den = ip.Denoiser(lambda x, t, c: torch.tanh(2 * x), PATH, prediction="x0")
    g = ip.guidance.MultiDiffusion(den, (4, 4))
    x1 = torch.randn(2, 1, 6, 11, dtype=F64, generator=torch.Generator().manual_seed(1))
    for target in ("eps", "velocity"):
        torch.testing.assert_close(g(x1, 0.3, None, target), den(x1, 0.3, None, target))
    torch.testing.assert_close(ip.sample(g, x1, "dpm++2m", 8), ip.sample(den, x1, "dpm++2m", 8))


def test_windows_and_bad_canvases():
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(8, 4, 4) == [0, 4]
    assert window_starts(4, 4, 2) == [0]
    den = ip.Denoiser(lambda x, t, c: x, PATH, prediction="x0")
    with pytest.raises(InterpolantError, match="smaller than the window"):
        ip.guidance.MultiDiffusion(den, (8, 8))(torch.zeros(1, 1, 8, 6), 0.5)
    with pytest.raises(InterpolantError, match="stride"):
        ip.guidance.MultiDiffusion(den, (4, 4), (5, 5))(torch.zeros(1, 1, 8, 8), 0.5)


def test_anagram_is_the_average_over_inverse_views():
    """(1/N) sum_i P_i^T D(P_i x, c_i) with explicit permutation matrices."""
    x = torch.randn(3, 1, 4, 4, dtype=F64, generator=torch.Generator().manual_seed(2))
    cond = torch.tensor([[0, 1], [2, 0], [1, 1]])

    def model(x, t, c):
        return torch.tanh(x + c.view(-1, 1, 1, 1).to(x.dtype)) + x.mean((-2, -1), keepdim=True)

    den = ip.Denoiser(model, PATH, prediction="eps")
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    g = ip.guidance.Anagram(den, ["rot90", perm])
    rot = torch.eye(16, dtype=F64)[torch.arange(16).view(4, 4).rot90(1, (0, 1)).flatten()]
    mats = [rot, torch.eye(16, dtype=F64)[perm]]
    expect = sum(den((x.view(3, 16) @ p.T).view_as(x), 0.6, cond[:, i], "eps").view(3, 16) @ p
                 for i, p in enumerate(mats)) / 2
    for target in ("eps", "x0"):
        want = ip.convert(expect.view_as(x), "eps", target, x, 0.6, PATH)
        torch.testing.assert_close(g(x, 0.6, cond, target), want, rtol=1e-12, atol=1e-12)


def test_anagram_reads_as_each_class_under_its_view():
    """Class 0 near (2, 0, 0), class 1 near (0, 2, 0); the view swaps the first two
    coordinates. The anagram for (0, 1) lands on class 0, and its view on class 1."""
    means = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]], dtype=F64)
    covs = 0.1 * torch.eye(3, dtype=F64).expand(3, 3, 3)
    gmm = ip.oracle.GaussianMixture(means, covs, labels=torch.arange(3))
    swap = torch.tensor([1, 0, 2])
    g = ip.guidance.Anagram(ip.guidance.CFG(gmm.denoiser(PATH), 2.0), ["identity", swap])
    x1 = torch.randn(200, 3, dtype=F64, generator=torch.Generator().manual_seed(4))
    cond = torch.tensor([[0, 1]]).expand(200, 2)
    x = ip.sample(g, x1, "dpm++2m", 20, cond=cond, t_start=0.999)
    read = gmm.class_log_posterior(x, PATH.t_min, PATH).argmax(1)
    read_view = gmm.class_log_posterior(x[:, swap], PATH.t_min, PATH).argmax(1)
    assert (read == 0).double().mean() > 0.95 and (read_view == 1).double().mean() > 0.95
    cfg = g._inner[0]  # 2 views, each a CFG pair: 4 passes of the batch in one network call
    assert g.nfe == 4 * 20 and cfg.nfe == 2 * 20 and cfg.den.nfe == 20


def test_bad_views_and_labels():
    den = ip.Denoiser(lambda x, t, c: x, PATH, prediction="x0")
    x = torch.zeros(2, 1, 4, 4, dtype=F64)
    with pytest.raises(InterpolantError, match="permutation"):
        ip.guidance.Anagram(den, [torch.tensor([0, 0] + list(range(2, 16)))])(
            x, 0.5, torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(InterpolantError, match="unknown view"):
        ip.guidance.Anagram(den, ["mirror"])(x, 0.5, torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(InterpolantError, match="one label per view"):
        ip.guidance.Anagram(den, ["identity", "flip"])(x, 0.5, torch.zeros(2, dtype=torch.long))
