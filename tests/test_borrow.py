"""Borrowed arrays: the same memory, no owner, so no reference counting."""

from __future__ import annotations

import sys

import numpy as np
from numba import njit

from nidecode.solvers._borrow import borrow


@njit(cache=False)
def fill_borrowed(a, value):
    view = borrow(a)
    for i in range(view.shape[0]):
        for k in range(view.shape[1]):
            view[i, k] = value * i + k
    return view.shape[0] * view.shape[1], view[1:, ::2].sum()


@njit(cache=False)
def owned_copy(a):
    return borrow(a).copy()


def test_a_borrowed_array_is_the_same_memory_with_its_shape_and_strides():
    a = np.zeros((5, 8))[:, 1:7]  # strided, not contiguous
    count, part = fill_borrowed(a, 10.0)
    expected = 10.0 * np.arange(5)[:, None] + np.arange(6)
    np.testing.assert_array_equal(a, expected)
    assert count == 30
    assert part == expected[1:, ::2].sum()


def test_borrowing_takes_no_reference_and_copies_own_their_memory():
    a = np.arange(6.0).reshape(2, 3)
    before = sys.getrefcount(a)
    for _ in range(100):
        fill_borrowed(a, 1.0)
    assert sys.getrefcount(a) == before
    copy = owned_copy(a)
    del a
    np.testing.assert_array_equal(copy, [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
