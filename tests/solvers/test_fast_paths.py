"""The fast paths of sampling: fused conversions, cached time inputs and coefficient tables,
fused updates that never modify a tensor someone else holds. No timings here."""

from __future__ import annotations

import threading

import pytest
import torch
from support.paths import all_paths

import interpolant as ip
from interpolant.predictions import TARGETS, convert_with
from interpolant.solvers.base import combine, table_for

F64 = torch.float64


@pytest.mark.parametrize("path", all_paths(), ids=repr)
def test_one_time_conversions_equal_the_per_sample_formulas(path):
    g = torch.Generator().manual_seed(0)
    x, out = torch.randn(4, 3, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64)
    t = 0.37
    floats = path.scalars(t)
    tensors = [torch.full((4, 1), c, dtype=F64) for c in floats]
    for src in TARGETS:
        for dst in TARGETS:
            fast = convert_with(out, src, dst, x, *floats)
            slow = convert_with(out, src, dst, x, *tensors)
            torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12, msg=f"{src}->{dst}")


def test_denoiser_time_input_is_cached_by_value_and_follows_the_time_scale():
    seen = []
    den = ip.Denoiser(lambda x, t, c=None: (seen.append(t), 0.1 * x)[1], ip.paths.VPLinear())
    x = torch.randn(3, 2)
    den(x, 0.5)
    den(x, 0.5)
    assert seen[0] is seen[1] and seen[0].shape == (3,) and seen[0].dtype == x.dtype
    den(x.double(), 0.5)
    assert seen[2].dtype == F64
    den.time_scale = 1000.0
    den(x, 0.5)
    torch.testing.assert_close(seen[3], torch.full((3,), 500.0))
    with torch.inference_mode():
        den(x, 0.25)
    den.time_scale = 1.0
    den(x, 0.25)
    assert seen[4].is_inference() and not seen[5].is_inference()


def test_denoiser_shared_by_threads_gives_each_the_same_result():
    den = ip.oracle.GaussianMixture.preset("aniso2d").denoiser(ip.paths.VPLinear())
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    want = ip.sample(den, x, "dpm++2m", 8)
    got = [None] * 4

    def work(k):
        got[k] = ip.sample(den, x, "dpm++2m", 8)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for y in got:
        assert torch.equal(y, want)


def test_combine_is_the_linear_combination_and_leaves_its_inputs_alone():
    g = torch.Generator().manual_seed(2)
    x, m0, m1 = (torch.randn(5, 3, generator=g, dtype=F64) for _ in range(3))
    keep = [x.clone(), m0.clone(), m1.clone()]
    y = combine(0.5, x, (2.0, 0.0, -1.0), [m0, m1, m1])
    torch.testing.assert_close(y, 0.5 * x + 2.0 * m0 - m1, rtol=1e-14, atol=1e-14)
    for a, b in zip((x, m0, m1), keep):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["ddim", "dpm++2m", "dpm++3m", "unipc", "deis", "dpm2", "euler"])
def test_states_keep_their_values_and_cached_tables_equal_fresh_ones(name):
    path = ip.paths.VPCosine()
    den = ip.oracle.GaussianMixture.preset("aniso2d").denoiser(path)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    states = list(ip.trajectory(den, x, name, 6))
    copies = [(s.x.clone(), None if s.x0 is None else s.x0.clone()) for s in states]
    for s, (sx, sx0) in zip(states, copies):  # no later step wrote into an earlier state
        assert torch.equal(s.x, sx) and (sx0 is None or torch.equal(s.x0, sx0))
    assert torch.equal(ip.sample(den, x, name, 6), states[-1].x)
    solver = ip.solvers.get(name)
    if hasattr(solver, "table"):
        ts = ip.grids.make("logsnr", path, 6)
        assert table_for(solver, ts, path) == solver.table(ts, path)


def test_grids_come_fresh_from_the_cache():
    path = ip.paths.VPLinear()
    a = ip.grids.make("logsnr", path, 5)
    a[1] = 0.123
    b = ip.grids.make("logsnr", path, 5)
    assert b[1] != 0.123 and torch.equal(b, ip.grids.make("logsnr", path, 5))
