"""Every deterministic solver converges at its order against the exact flow (the one order
table and harness of tests/support/orders.py), and every solver is covered."""

from __future__ import annotations

import pytest

import interpolant as ip

from support.orders import CHECKED_ELSEWHERE, ORDERS, measured_order

CASES = [(s, o, k, n, case) for s, o, k, n, cases in ORDERS for case in cases]


def test_every_solver_has_an_order_entry_or_a_named_check():
    covered = {s for s, *_ in ORDERS} | set(CHECKED_ELSEWHERE)
    missing = sorted(set(ip.solvers.available()) - covered)
    assert not missing, f"add these solvers to tests/support/orders.py: {missing}"
    assert not (covered - set(ip.solvers.available())), "the order table names unknown solvers"


@pytest.mark.parametrize(
    "solver,options,order,steps,case", CASES,
    ids=[f"{s}-{'-'.join(map(str, o.values()))}-{'-'.join(c)}" for s, o, _, _, c in CASES])
def test_convergence_order_against_the_exact_flow(solver, options, order, steps, case):
    slope, errors = measured_order(solver, options, steps, *case)
    assert abs(slope - order) < 0.3, f"{solver} {options} {case}: errors {errors}"
