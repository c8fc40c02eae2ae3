"""The line search's first-minimum scan (LLVM vectors) against a scalar loop."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from nidecode.solvers._vector_min import INF_BITS, first_min


@njit(cache=False)
def scalar_first_min(bits):
    """The first index holding the smallest value below INF_BITS, one after another."""
    smallest, where = INF_BITS, -1
    for i in range(bits.shape[0]):
        if bits[i] < smallest:
            smallest, where = bits[i], i
    return where


@njit(cache=False)
def vector_first_min(bits):
    return first_min(bits)


@settings(max_examples=400, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.0, 0.25, 1.0, 3.5, 1e-30, np.inf]), max_size=70),
    start=st.integers(0, 3),
)
def test_the_first_minimum_is_the_scalar_loops(values, start):
    """Ties (values from a few), +inf, +0, lengths across whole vectors and a masked
    tail, and views starting inside the array (contiguous, not aligned)."""
    kinks = np.array([np.inf] * start + values, dtype=np.float32)
    bits = kinks.view(np.int32)[start:]
    assert vector_first_min(bits) == scalar_first_min(bits)


def test_it_finds_the_first_of_equal_minima_in_every_lane_and_the_tail():
    for n in (1, 15, 16, 17, 31, 32, 216):
        for where in range(n):
            kinks = np.full(n, np.inf, dtype=np.float32)
            kinks[where:] = 2.0
            kinks[where] = 1.0
            kinks[n - 1] = min(kinks[n - 1], 1.0)  # a later tie
            assert vector_first_min(kinks.view(np.int32)) == where


def test_nothing_below_inf_gives_minus_one():
    assert vector_first_min(np.full(40, np.inf, dtype=np.float32).view(np.int32)) == -1
    assert vector_first_min(np.empty(0, dtype=np.int32)) == -1
