"""The SMO's fused passes (LLVM vectors) against the scalar loops they replace, bit for bit."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

from nidecode.solvers._smo_passes import gain_select, update_select

TAU = 1e-12


@njit(cache=False)
def scalar_update_select(F, pen_up, pen_low, qb, oi, oj, e_i, e_j, n):
    """libsvm's gradient update and its Gmax / Gmax2 scan, one variable after another."""
    gmax, i, gmax2 = -math.inf, -1, -math.inf
    for t in range(n):
        F[t] = F[t] - (qb[oi + t] * e_i + qb[oj + t] * e_j)
        if F[t] + pen_up[t] >= gmax:
            gmax, i = F[t] + pen_up[t], t
        gmax2 = max(gmax2, pen_low[t] - F[t])
    return gmax, i, gmax2


@njit(cache=False)
def scalar_gain_select(F, QD, pen_low, qb, oi, gmax, qd_i, tau, n):
    """libsvm's second-order selection of j, one variable after another."""
    omin, j = math.inf, -1
    for t in range(n):
        grad_diff = gmax - F[t]
        quad_coef = qd_i + QD[t] - 2.0 * qb[oi + t]
        if not quad_coef > 0.0:
            quad_coef = tau
        od = -(grad_diff * grad_diff) / quad_coef
        if not grad_diff > 0.0:
            od = math.inf
        if od - pen_low[t] <= omin:
            omin, j = od - pen_low[t], t
    return omin, j


@njit(cache=False)
def fused_update_select(F, pen_up, pen_low, qb, oi, oj, e_i, e_j, n):
    return update_select(F, pen_up, pen_low, qb, oi, oj, e_i, e_j, n)


@njit(cache=False)
def fused_gain_select(F, QD, pen_low, qb, oi, gmax, qd_i, tau, n):
    return gain_select(F, QD, pen_low, qb, oi, gmax, qd_i, tau, n)


def same(a, b) -> bool:
    """Equal bit for bit (floats as their bits; -0.0 is not 0.0)."""
    return np.array_equal(np.asarray(a, dtype=np.float64).view(np.int64),
                          np.asarray(b, dtype=np.float64).view(np.int64))


@st.composite
def active_sets(draw):
    """An SMO's state over ``n`` active variables, with ties: gradients and kernel
    values drawn from small sets, each variable in or out of I_up and I_low."""
    n = draw(st.integers(0, 41))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    length = n + draw(st.integers(0, 5))  # arrays longer than the active set
    levels = draw(st.sampled_from([3, 1000]))  # few values: many ties
    F = rng.integers(-levels, levels + 1, length) / levels
    pen_up = np.where(rng.random(length) < 0.3, -np.inf, 0.0)
    pen_low = np.where(rng.random(length) < 0.3, -np.inf, 0.0)
    rows = length + 3
    qb = (rng.integers(-4, 5, rows * length) / 4).astype(np.float32)
    QD = rng.integers(0, 5, length) / 2  # some quad_coef <= 0: TAU
    oi, oj = (int(rng.integers(0, rows)) * length for _ in range(2))
    e_i, e_j = (float(rng.choice([0.0, rng.standard_normal()])) for _ in range(2))
    return F, pen_up, pen_low, qb, QD, oi, oj, e_i, e_j, n


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=active_sets())
def test_the_update_and_its_selection_are_the_scalar_loops(state):
    F, pen_up, pen_low, qb, _, oi, oj, e_i, e_j, n = state
    F_scalar, F_fused = F.copy(), F.copy()
    expected = scalar_update_select(F_scalar, pen_up, pen_low, qb, oi, oj, e_i, e_j, n)
    got = fused_update_select(F_fused, pen_up, pen_low, qb, oi, oj, e_i, e_j, n)
    assert same(F_fused, F_scalar)  # and nothing past n written
    assert got[1] == expected[1]
    assert same(got[0], expected[0]) or got[0] == expected[0] == 0.0  # a zero's sign
    assert got[2] == expected[2]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=active_sets(), top=st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0]))
def test_the_gains_selection_is_the_scalar_loop(state, top):
    F, _, pen_low, qb, QD, oi, _, _, _, n = state
    qd_i = 1.0
    expected = scalar_gain_select(F, QD, pen_low, qb, oi, top, qd_i, TAU, n)
    got = fused_gain_select(F, QD, pen_low, qb, oi, top, qd_i, TAU, n)
    assert got[1] == expected[1]
    assert got[0] == expected[0]


def test_an_empty_active_set_selects_nothing():
    empty = np.zeros(4)
    qb = np.zeros(16, dtype=np.float32)
    assert fused_update_select(empty, empty, empty, qb, 0, 0, 0.0, 0.0, 0) == (
        -math.inf, -1, -math.inf)
    assert fused_gain_select(empty, empty, empty, qb, 0, 1.0, 1.0, TAU, 0) == (math.inf, -1)
