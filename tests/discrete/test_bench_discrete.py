"""`interpolant bench discrete`: each sampler's distance to the data law falls with NFE, and
the first-hitting sampler is at the floor with L = 3 NFE (the exact oracle isolates samplers)."""

from __future__ import annotations

from interpolant.bench.discrete import table


def test_the_sampler_table_falls_with_nfe_and_first_hitting_is_exact():
    rows = table(4000, [2, 64])
    by = {(r["process"], r["sampler"], r["nfe"]): r for r in rows}
    for (process, sampler, nfe), r in by.items():
        if sampler != "first-hitting" and nfe == 2:
            assert by[(process, sampler, 64)]["tv"] < r["tv"] / 2
    (hit,) = [r for r in rows if r["sampler"] == "first-hitting"]
    assert hit["nfe"] == 3 and hit["tv"] < hit["floor"]
