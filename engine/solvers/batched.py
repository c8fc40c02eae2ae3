"""``--solver batched``, the default: searchlight folds from the all-scans solution.

Leave-one-run-out refits nearly the same SVM twelve times: a fold leaves out 18
of 216 scans. So each sphere is solved exactly once on all its scans, and every
fold starts from that solution. Both solvers below are active-set methods that
use the small number of voxels ``d``: at most ``d + 1`` scans lie on the margin,
so a step solves a system of that size instead of touching a kernel matrix.

* Each sphere's voxels are first centred on their mean over the scans: the
  same optimal weights and decisions (the intercept absorbs the shift),
  without the precision a raw baseline (~1000 in BOLD) takes from every
  product. The refits below run on the data as given, as SVC does.
* The all-scans fit starts from the previous sphere's dual coefficients: the
  weights ``sum alpha_i y_i x_i`` they give on this sphere's voxels and the
  previous intercept, a valid point of the primal problem whatever the voxels
  (neighbouring spheres are alike; the first sphere's coefficients: a balanced
  vertex of the box, :func:`_balanced_start`). From there it runs the folds'
  primal active-set method below on every scan: about 114 steps on whole-brain
  spheres (60 on the slice's) where a primal active-set method on the dual
  (:func:`_dual_active_set`: a Newton step on the free coefficients, a ratio test
  against the bounds, one change of the free set per step) took about 250
  (165), a scan that moves from one bound to the other costing it two steps. If
  the primal method fails, the dual one runs from the coefficients (any in the
  box that balance the classes are a feasible start), and if that fails too, the
  sphere starts again from scikit-learn's libsvm fit (none seen on real data).
* A fold starts from the all-scans weights and intercept, a valid point of its
  primal problem whatever scans it leaves out. :func:`_primal_active_set`
  minimises the primal objective ``|w|^2 / 2 + C sum hinge`` exactly: each step
  aims at the optimum with a margin set of scans held at margin 1 and the other
  scans' sides fixed; an exact line search on the piecewise-quadratic objective
  lets any number of scans cross their margin on the way (the dual method needs
  two steps for each) and stops where one reaches it, which then joins the set;
  at the set's optimum, a scan whose multiplier leaves ``[0, C]`` leaves it. The
  set starts empty: from the all-scans solution to a fold's it changes almost
  entirely (on whole-brain spheres about 25 scans join or leave a set of about
  19), and starting from the all-scans set took more steps (66 against 51
  there). The inverse of the set's bordered Gram matrix is updated as scans join
  and leave (O(d^2) a step) and checked by one rebuilt from scratch at the end.
  The line search moves the scans' margins in float32 (the scans x voxels
  product is a step's largest: half the bytes) and orders their kinks in
  float32 (the next one found by a vector scan of their bits,
  :func:`nidecode.solvers._vector_min.first_min`), each kink taken at its
  float64 value; at the set's optimum every
  scan's side is checked against its exact (float64) margin and the steps go on
  where one is on the wrong side by more than 1e-9, so the result is the same
  exact optimum (decisions within 1e-10 of the float64 line search's on 2000
  whole-brain spheres). A fold takes about 26 steps of about 0.6 us on the Haxby
  slice's spheres (8 voxels), 52 of about 0.9 us on whole-brain ones (18).

The result is the exact optimum of ``SVC(kernel="linear", C)``'s problem (KKT
conditions to 1e-9 C), whereas libsvm stops at ``tol=1e-3`` short of it, and a
test scan with a decision value that close to zero may fall on either side. How
close depends on the scan: libsvm stops with the margin scans' margins within
about ``tol`` of 1, and moving those margins by at most ``e`` moves the decision
``f(x)`` by at most ``e S(x)``, ``S(x) = |B [1; X_F x]|_1`` (:func:`_sensitivity`;
``B``: the inverse of the margin set's bordered Gram matrix, which the fold's
solve leaves). So every fold with a test decision ``|f(x)| < tie_margin S(x)``
is refitted on libsvm's own path
(:func:`nidecode.solvers.libsvm.searchlight_accuracies`), which gives SVC's
predictions exactly; libsvm's decisions deviate from the optimum's in step with
``S`` (correlation 0.72-0.75 on whole-brain and slice spheres, 0.16 with
``|x|``). So is a fold whose optimal intercept is not unique (no scan strictly
inside the box on its margin: then any intercept in an interval is optimal, and
SVC's depends on its path), and one whose solver fails (neither seen on the
Haxby data). With the default ``tie_margin=2.5e-4``, 99.2 % of the Haxby slice's
sphere accuracies (face vs cat, 5.6 mm; 124 of 6360 folds refitted) equal SVC's,
and 98.8 % of 2000 consecutive whole-brain spheres of a synthetic subject (2.9 %
of the folds); the rule before, a decision within 3e-3 of zero, refitted 3.7 %
and 3.1 % of the folds for 99.4 % and 97.0 % (see docs/performance.md). Without
refits 91.5 % of the slice's: how well SVC with ``tol=1e-6`` agrees with its own
default.

The refits run after the kernel, which only marks their folds: so numba
compiles libsvm's SMO replica (:mod:`nidecode.solvers.libsvm`) only when a run
uses it, not on every fresh install. They run on the replica when it is
compiled (in the process or numba's cache), else on scikit-learn's own libsvm
(the same decisions bit for bit, ~3x slower per refit) until those refits have
cost as much as compiling the replica (:func:`_replica_ready`).

The AUC needs SVC's order of the test decisions, not only their signs, and the
exact optimum's order differs from libsvm's in 2.9 % of the slice's folds (on
30 % of its spheres). A fold with two test scans of different classes whose
decisions are closer than ``rank_margin`` times the pair's sensitivity (that
of a test decision, for the difference of two: the intercept, which libsvm's
stop moves alike for both, drops out) is refitted on libsvm's path (always on
the replica). That is the AUC's whole cost: a libsvm fit costs about 25 exact
folds. The default 5e-4 refits 13 % of the slice's folds for SVC's AUC on 528
of its 530 spheres, where the absolute rule before (decisions within 5e-3)
refitted 27 % for 526; on 400 whole-brain spheres it refits 25 % for 99 %,
where the absolute rule held 91.5 % (their decisions are larger).

Pure functions on arrays: no Dask; numba compiles on first use and caches the
machine code next to this file (or in ``NUMBA_CACHE_DIR``), where the only
file this module writes, the refits' time on scikit-learn's libsvm, is kept.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numba import njit
from sklearn.svm import _libsvm

from nidecode.solvers._borrow import borrow
from nidecode.solvers._common import (
    _check_c_tol,
    _check_class_weight,
    _class_bounds,
    _decision_array,
    _fold_bounds,
    _gram,
    _kernel_arrays,
    _prepare,
    _scatter_decisions,
    _to_qfloat,
)
from nidecode.solvers._vector_min import first_min
from nidecode.solvers.libsvm import _alloc_workspace, _score_fold_libsvm
from nidecode.solvers.svc import _FIT_PARAMETERS, _LIBSVM_PARAMETERS, _class_weights

__all__ = ["searchlight_accuracies"]

_KKT_TOL = 1e-7  # on margins (scale 1), for the all-scans fit
_SIDE_TOL = 1e-9  # on margins: a scan on the wrong side of its margin by more is moved
_MAX_STEPS = 400  # active-set steps per fit before giving up
# Fold outcomes (``info``): > 0 active-set steps; refitted on libsvm's path otherwise.
_FAILED, _NEAR_TIE, _NON_UNIQUE = -1, -2, -3
_ALONE = np.int64(-1)  # _sensitivity of one decision (an int64, as scan indices are: one copy)


@njit(cache=True, inline="always")
def _SHRINK():
    """libsvm's shrinking on, typed ``bool`` (not a literal ``True``): the refits then
    call libsvm's path with the types ``--solver libsvm`` uses, one compiled copy."""
    return np.bool_(True)


@njit(cache=True, inline="always")
def _NO_LIMIT():
    """No iteration limit (-1), typed ``int64`` (see :func:`_SHRINK`)."""
    return np.int64(-1)


@njit(cache=True)
def _copy(dst, src, n):
    """dst[:n] = src[:n] by a loop: numba's slice assignment checks the shapes and
    compiles an error message (string formatting) into every kernel that uses it,
    seconds of a fresh install's first run."""
    for k in range(n):
        dst[k] = src[k]


@njit(cache=True)
def _matvec(B, u, m, out):
    """out[:m] = B[:m, :m]' u[:m] (``B`` is stored transposed: see
    :func:`_bordered_join`), each sum in order but the sums side by side, each
    pass over a contiguous row of ``B``."""
    for a in range(m):
        out[a] = 0.0
    for c in range(m):
        uc = u[c]
        for a in range(m):
            out[a] += B[c, a] * uc


@njit(cache=True)
def _bordered_join(Xs, F, p, B, u, XF):
    """Scan ``F[p]`` joins the margin set ``F[:p]``: update ``B``, the inverse of
    ``[[0, 1'], [1, G]]`` (``G``: the set's Gram matrix), by bordering, in
    O(p^2). False if the scan lies on the affine hull of the set (singular).

    The inverse is symmetric but its updates round it unevenly, so which of
    ``B[a, c]`` and ``B[c, a]`` is which matters for the values: ``B`` holds
    the transpose of the updated inverse, so that :func:`_matvec`, the hot
    product, reads it row by row. ``XF`` holds the set's scans as columns
    (voxels by scans), so that the products with them read contiguous rows
    too: column ``p`` is filled here."""
    d = Xs.shape[1]
    if p > d:
        return False  # d + 1 scans span the space already
    i = F[p]
    m = p + 1
    for k in range(d):
        XF[k, p] = Xs[i, k]
    u[0] = 1.0  # the new column, then B times it
    # Loops ordered so that the innermost one fills independent sums: each sum
    # still adds its terms in order, so the values are those of one dot
    # product after another, without each waiting on the last addition.
    for a in range(p):
        u[a + 1] = 0.0
    kii = 0.0
    for k in range(d):
        xik = Xs[i, k]
        kii += xik * xik
        for a in range(p):
            u[a + 1] += xik * XF[k, a]
    if p == 0:
        B[0, 0], B[0, 1], B[1, 0], B[1, 1] = -kii, 1.0, 1.0, 0.0
        return True
    _matvec(B, u, m, u[m:])
    schur = kii
    for a in range(m):
        schur -= u[a] * u[m + a]
    if not schur > 1e-10 * (kii + 1.0):
        return False
    inverse = 1.0 / schur
    for a in range(m):
        u[a] = u[m + a] * inverse  # u[:m] is spent: the new column, scaled
    for c in range(m):
        uc = u[m + c]
        for a in range(m):
            B[c, a] += u[a] * uc
    for a in range(m):
        B[m, a] = -u[a]
        B[a, m] = -u[a]
    B[m, m] = inverse
    return True


@njit(cache=True)
def _bordered_leave(F, p, B, a, XF):
    """Scan ``F[a]`` leaves the margin set of ``p`` scans, the last one takes
    its place; ``B`` is updated by the Schur complement. Returns the new size."""
    last = p  # the matrix index of the last scan
    j = a + 1
    if j != last:
        for c in range(p + 1):
            B[j, c], B[last, c] = B[last, c], B[j, c]
        for c in range(p + 1):
            B[c, j], B[c, last] = B[c, last], B[c, j]
    if p > 1:
        pivot = B[last, last]
        for x in range(last):
            B[last, x] /= pivot  # the factors, where the row that leaves was
        for c in range(last):
            bc = B[c, last]
            for x in range(last):
                B[c, x] -= B[last, x] * bc
    F[a] = F[p - 1]
    for k in range(XF.shape[0]):
        XF[k, a] = XF[k, p - 1]
    return p - 1


@njit(cache=True)
def _bordered_rebuild(Xs, F, p, B, u, XF):
    """``B`` for the set ``F[:p]`` from scratch; False if it is singular."""
    for a in range(p):
        if not _bordered_join(Xs, F, a, B, u, XF):
            return False
    return True


@njit(cache=True, inline="always")
def _bordered_solve(XF, ysg, F, p, B, v, balance, u, r):
    """Put the scans ``F[:p]`` on their margins: ``beta`` (= y alpha over ``F``)
    and ``b`` with ``x_a . (v + sum_c beta_c x_c) + b = y_a`` and
    ``sum beta = balance``, that is ``[b; beta] = B [balance; y_F - X_F v]``,
    into ``r[:p+1]`` (``u``: scratch)."""
    d = v.shape[0]
    u[0] = balance
    for a in range(p):
        u[a + 1] = 0.0  # x_a . v, summed as in _bordered_join
    for k in range(d):
        vk = v[k]
        for a in range(p):
            u[a + 1] += XF[k, a] * vk
    for a in range(p):
        u[a + 1] = ysg[F[a]] - u[a + 1]
    _matvec(B, u, p + 1, r)


@njit(cache=True, inline="always")
def _add_scan(v, Xs, i, c):
    """v += c x_i."""
    for k in range(v.shape[0]):
        v[k] += c * Xs[i, k]


@njit(cache=True)
def _weights(Xs, ysg, alpha, w):
    """w = sum_i alpha_i y_i x_i."""
    w[:] = 0.0
    for i in range(Xs.shape[0]):
        if alpha[i] != 0.0:
            _add_scan(w, Xs, i, alpha[i] * ysg[i])


@njit(cache=True, inline="always")
def _accumulate(rows, coef, out):
    """out += sum_k coef_k rows[k]: each term added as ``(c0 r0 + c1 r1) + (c2 r2 +
    c3 r3)`` for each four rows in order, then one by one for the last ones, in
    few passes over ``out`` (eight rows per pass): its loads and stores, not the
    products, bound the loop."""
    n = out.shape[0]
    d = rows.shape[0]
    k = 0
    while k + 8 <= d:
        a0, a1, a2, a3 = coef[k], coef[k + 1], coef[k + 2], coef[k + 3]
        a4, a5, a6, a7 = coef[k + 4], coef[k + 5], coef[k + 6], coef[k + 7]
        r0, r1, r2, r3 = rows[k], rows[k + 1], rows[k + 2], rows[k + 3]
        r4, r5, r6, r7 = rows[k + 4], rows[k + 5], rows[k + 6], rows[k + 7]
        for i in range(n):
            total = out[i] + ((a0 * r0[i] + a1 * r1[i]) + (a2 * r2[i] + a3 * r3[i]))
            out[i] = total + ((a4 * r4[i] + a5 * r5[i]) + (a6 * r6[i] + a7 * r7[i]))
        k += 8
    if k + 4 <= d:
        a0, a1, a2, a3 = coef[k], coef[k + 1], coef[k + 2], coef[k + 3]
        r0, r1, r2, r3 = rows[k], rows[k + 1], rows[k + 2], rows[k + 3]
        for i in range(n):
            out[i] += (a0 * r0[i] + a1 * r1[i]) + (a2 * r2[i] + a3 * r3[i])
        k += 4
    while k < d:
        ak, rk = coef[k], rows[k]
        for i in range(n):
            out[i] += ak * rk[i]
        k += 1


@njit(cache=True)
def _scores(XsT, w, h):
    """h = X w for every scan (``XsT``: voxels by scans), one row per pass: called
    a few times per fit, where a copy of :func:`_accumulate` would cost the first
    run ~1 s of compilation for no measurable speed."""
    h[:] = 0.0
    for k in range(XsT.shape[0]):
        wk, row = w[k], XsT[k]
        for i in range(h.shape[0]):
            h[i] += wk * row[i]


@njit(cache=True)
def _gaps(ZT, ysg, w, b, gap):
    """gap_i = 1 - y_i (x_i . w + b) for every scan (``ZT``: y_i x_i, voxels
    by scans)."""
    _scores(ZT, w, gap)  # y x . w, then 1 - y b minus it (w not negated: no copy)
    for i in range(gap.shape[0]):
        gap[i] = (1.0 - ysg[i] * b) - gap[i]


@njit(cache=True)
def _ratio_step(alpha, ysg, F, p, delta, cb, t_max):
    """Largest t <= t_max keeping every alpha_F + t y_F delta in [0, cb_F], and the
    position in ``F`` that blocks it (-1 if none)."""
    t = t_max
    block = -1
    for a in range(p):
        i = F[a]
        change = ysg[i] * delta[a]
        if change > 0.0:
            limit = (cb[i] - alpha[i]) / change
        elif change < 0.0:
            limit = alpha[i] / -change
        else:
            continue
        if limit < t:
            t = limit
            block = a
    return max(t, 0.0), block


@njit(cache=True)
def _null_direction(Xs, F, p, A, z):
    """A direction z over the scans ``F[:p]`` with sum z_a [x_a; 1] = 0 (w and
    the equality constraint unchanged): row-reduce, one free variable set to 1."""
    d = Xs.shape[1]
    m = d + 1
    for a in range(p):
        x = Xs[F[a]]
        for k in range(d):
            A[k, a] = x[k]
        A[d, a] = 1.0
    pivots = np.empty(m, dtype=np.int64)
    is_pivot = np.zeros(p, dtype=np.bool_)
    rank = 0
    for c in range(p):
        if rank == m:
            break
        best, row = 1e-10, -1
        for i in range(rank, m):
            if abs(A[i, c]) > best:
                best, row = abs(A[i, c]), i
        if row < 0:
            continue
        for j in range(p):
            A[rank, j], A[row, j] = A[row, j], A[rank, j]
        inverse = 1.0 / A[rank, c]
        for j in range(p):
            A[rank, j] *= inverse
        for i in range(m):
            if i != rank and A[i, c] != 0.0:
                factor = A[i, c]
                for j in range(p):
                    A[i, j] -= factor * A[rank, j]
        pivots[rank] = c
        is_pivot[c] = True
        rank += 1
    for free in range(p):
        if not is_pivot[free]:
            z[:p] = 0.0
            z[free] = 1.0
            for i in range(rank):
                z[pivots[i]] = -A[i, free]
            return True
    return False


@njit(cache=True)
def _dual_active_set(Xs, XsT, ysg, alpha, cb, w, h, F, B, u, r, delta, A, XF):
    """Exact optimum over every scan from a feasible ``alpha`` (in the box
    ``[0, cb]``, ``cb``: each scan's upper bound; sum y alpha = 0): a primal
    active-set method on the dual. Updates ``alpha``, leaves the weights in
    ``w`` and ``h = X w``; returns ``(b, steps)``, ``steps < 0`` on failure.
    ``B``, ``u``, ``r``, ``delta``, ``A``, ``XF``: scratch."""
    N, d = Xs.shape
    _weights(Xs, ysg, alpha, w)
    p = np.int64(0)  # not a literal 0: one specialisation of the callees
    for i in range(N):
        if 0.0 < alpha[i] < cb[i]:
            F[p] = i
            p += 1
    # B: the inverse of the free set's bordered Gram matrix while the set is
    # affinely independent (a Newton step exists).
    independent = _bordered_rebuild(Xs, F, p, B, u, XF)
    released = -1
    for step in range(1, _MAX_STEPS + 1):
        b = 0.0
        if p > 0:
            if independent:
                # Newton step: the free scans onto their margins, the sum kept.
                _bordered_solve(XF, ysg, F, p, B, w, 0.0, u, r)
                _copy(delta, r[1:], p)
                b = r[0]
                t, block = _ratio_step(alpha, ysg, F, p, delta, cb, 1.0)
            else:
                # No Newton step: move along a direction that keeps w and the
                # sum and lowers the objective linearly, to the first bound.
                if not _null_direction(Xs, F, p, A, delta):
                    return 0.0, -1
                slope = 0.0
                for a in range(p):
                    slope += ysg[F[a]] * delta[a]
                if slope < 0.0:
                    for a in range(p):
                        delta[a] = -delta[a]
                t, block = _ratio_step(alpha, ysg, F, p, delta, cb, np.inf)
                if block < 0:
                    return 0.0, -1
            for a in range(p):
                i = F[a]
                step_a = t * delta[a]
                alpha[i] += step_a * ysg[i]
                _add_scan(w, Xs, i, step_a)
            if block >= 0:
                i = F[block]
                alpha[i] = cb[i] if ysg[i] * delta[block] > 0.0 else 0.0
                if independent:
                    p = _bordered_leave(F, p, B, block, XF)
                else:
                    p -= 1
                    F[block] = F[p]
                    independent = _bordered_rebuild(Xs, F, p, B, u, XF)
                continue
        _scores(XsT, w, h)
        if p == 0:
            # No free scan: b is anything the bound scans allow; take the middle.
            low, high = -np.inf, np.inf
            for i in range(N):
                v = ysg[i] - h[i]
                if (ysg[i] > 0) == (alpha[i] <= 0.0):
                    low = max(low, v)
                else:
                    high = min(high, v)
            b = low if high == np.inf else high if low == -np.inf else (low + high) / 2.0
            if low <= high:
                return b, step
        # Optimal on the free set: release the bound scan that violates its KKT
        # condition most, or stop.
        worst, worst_violation = -1, _KKT_TOL
        for i in range(N):
            if alpha[i] <= 0.0 or alpha[i] >= cb[i]:
                g = ysg[i] * (h[i] + b) - 1.0
                violation = -g if alpha[i] <= 0.0 else g
                if violation > worst_violation:
                    worst, worst_violation = i, violation
        if worst < 0:
            return b, step
        if worst == released:
            return 0.0, -1  # no progress
        released = worst
        F[p] = worst
        if independent:
            independent = _bordered_join(Xs, F, p, B, u, XF)
        p += 1
    return 0.0, -1


@njit(cache=True, inline="always")
def _new_point(Xs, F, p, r, wV, w_new):
    """w_new = wV + sum_a r[a + 1] x_{F[a]}: the weights of the margin set's solve."""
    _copy(w_new, wV, w_new.shape[0])
    for a in range(p):
        _add_scan(w_new, Xs, F[a], r[a + 1])


@njit(cache=True, error_model="numpy")
def _primal_active_set(Xs, ZT, ZT32, ysg, use, cb, C, w, b, F, side, h, gap, dm, kink, crossed,
                       wV, w_new, dw, dw32, B, u, r, r_old, XF):
    """Exact optimum over the scans ``use`` from any ``(w, b)``.

    Returns ``(b, p, steps)``, ``steps < 0`` on failure. On success ``w`` holds
    the weights, ``h = X w`` for every scan, ``F[:p]`` the margin scans with
    ``y alpha`` in ``r[1:p+1]``, and ``side`` 1 for the scans at alpha = cb
    (inside their margin), -1 for the others outside the margin set, 0 for the
    set and unused scans. ``ZT``: the scans' y_i x_i, voxels by scans, and
    ``ZT32`` the same in float32. ``gap``, ``dm``, ``kink`` (float32, one per
    scan), ``crossed``, ``wV``, ``w_new``, ``dw``, ``dw32``, ``B``, ``u``,
    ``r_old``, ``XF``: scratch.
    """
    # The caller owns every array for the whole call: borrowed, the calls each
    # step makes skip the atomic reference counts (see nidecode.solvers._borrow).
    Xs, ZT, ZT32, ysg, cb, F, side, h, gap, dm, kink, crossed = (
        borrow(Xs), borrow(ZT), borrow(ZT32), borrow(ysg), borrow(cb), borrow(F), borrow(side),
        borrow(h), borrow(gap), borrow(dm), borrow(kink), borrow(crossed))
    w, wV, w_new, dw, dw32, B, u, r, r_old, XF = (
        borrow(w), borrow(wV), borrow(w_new), borrow(dw), borrow(dw32), borrow(B), borrow(u),
        borrow(r), borrow(r_old), borrow(XF))
    N, d = Xs.shape
    p = np.int64(0)  # scans in the margin set F (not a literal: one specialisation)
    _gaps(ZT, ysg, w, b, h)  # 1 - margin; then X w at the end
    kink_bits = kink.view(np.int32)
    # wV = sum_V cb_i y_i x_i and sV = sum_V cb_i y_i over the violated scans V
    # (cb: each scan's upper bound, C times its class weight; C: the largest).
    wV[:] = 0.0
    sV = 0.0
    for i in range(N):
        side[i] = 0.0
        if use[i]:
            side[i] = 1.0 if h[i] > 0.0 else -1.0
        gap[i] = np.float32(h[i])  # the margins move in float32: see the end
        if side[i] > 0.0:
            sV += cb[i] * ysg[i]
            _add_scan(wV, Xs, i, cb[i] * ysg[i])
    dropped = -1
    fresh = False  # B was just rebuilt from scratch
    for step in range(1, _MAX_STEPS + 1):
        # The optimum with F on the margin and V, the rest fixed: (w_new, b_new).
        if p > 0:
            _bordered_solve(XF, ysg, F, p, B, wV, -sV, u, r)
        t_max = 1.0
        nn = slope = scale = db = 0.0  # |dw|^2, the objective's slope at t = 0
        b_new = b
        if p == d + 1:
            # d + 1 margin scans pin (w, b), and the set's scans are on their
            # margins at every point the steps reach: the point is there but
            # for rounding, so it stays (no pass over the scans, and w_new is
            # needed only if it is the optimum).
            t_max = 0.0
        else:
            _new_point(Xs, F, p, r, wV, w_new)
            if p > 0:
                b_new = r[0]
            for k in range(d):
                dw[k] = w_new[k] - w[k]
                nn += dw[k] * dw[k]
                slope += (w[k] - wV[k]) * dw[k]
                scale += w[k] * w[k]
            db = b_new - b
            slope -= sV * db
        if t_max > 0.0 and nn <= 1e-24 * (scale + 1.0) and abs(db) <= 1e-12 * (abs(b) + 1.0):
            if p > 0:
                t_max = 0.0  # already there: check the multipliers
            elif sV == 0.0:
                return b, p, step  # any b in an interval is optimal: keep this one
            else:
                # w is optimal for V and no scan pins b: move b downhill.
                dw[:] = 0.0
                nn = 0.0
                db = 1.0 if sV > 0.0 else -1.0
                slope = -abs(sV)
                t_max = np.inf
        add = -1
        if t_max > 0.0:
            # Exact line search along (dw, db) on the true objective: the slope
            # rises by cb_i |dm_i| where scan i crosses its margin (dm_i: the
            # change of its margin per unit of t).
            for k in range(d):
                dw32[k] = np.float32(dw[k])
            for i in range(N):
                dm[i] = np.float32(ysg[i] * db)
            _accumulate(ZT32, dw32, dm)  # in float32: see the end
            # The kinks' order in float32 (cheaper to divide and to search), each
            # taken at its float64 value: two within float32's rounding of each
            # other may be taken in either order (the sides are checked at the end).
            for i in range(N):  # written to vectorise (no max(), no branch)
                t = gap[i] / dm[i]
                t = t if t > np.float32(0.0) else np.float32(0.0)
                kink[i] = t if side[i] * dm[i] > 0.0 else np.float32(np.inf)  # toward its margin
            t_star = -1.0
            n_crossed = 0
            if slope >= 0.0 and t_max == 1.0:
                t_star = 1.0  # no descent left but rounding: take the new point
            else:
                t_prev = 0.0
                beyond = t_max * (1.0 + 1e-6)  # float32 kinks there are past t_max
                while True:
                    k_min = first_min(kink_bits)
                    if k_min < 0 or kink[k_min] >= beyond:
                        break
                    t_k = np.float64(gap[k_min]) / dm[k_min]
                    t_k = max(t_k if t_k > 0.0 else 0.0, t_prev)
                    if t_k >= t_max:
                        kink[k_min] = np.float32(np.inf)  # not reached after all
                        continue
                    left = slope + (t_k - t_prev) * nn
                    if left >= 0.0:
                        t_star = t_prev - slope / nn  # minimum between kinks
                        break
                    right = left + cb[k_min] * abs(dm[k_min])
                    kink[k_min] = np.float32(np.inf)
                    crossed[n_crossed] = k_min
                    n_crossed += 1
                    if right >= 0.0:
                        t_star, add = t_k, k_min  # minimum at the kink
                        break
                    slope, t_prev = right, t_k
                if t_star < 0.0:
                    if nn == 0.0:
                        return b, p, -1
                    t_star = min(t_max, t_prev - slope / nn)
            if add >= 0 and add == dropped and t_star == 0.0:
                return b, p, -1  # would cycle
            full = add < 0 and t_star >= 1.0 - 1e-9
            if full:
                _copy(w, w_new, d)
                b = b_new
                t_star = 1.0
            else:
                for k in range(d):
                    w[k] += t_star * dw[k]
                b += t_star * db
            t32 = np.float32(t_star)
            for i in range(N):
                gap[i] -= t32 * dm[i]
            for e in range(n_crossed):
                i = crossed[e]
                if i == add and side[i] < 0.0:
                    continue
                side[i] = -side[i]
                change = cb[i] * ysg[i] * side[i]
                sV += change
                _add_scan(wV, Xs, i, change)
            if add >= 0:
                side[add] = 0.0
                F[p] = add
                if not _bordered_join(Xs, F, p, B, u, XF):
                    return b, p, -1
                p += 1
                fresh = False
                continue
            if not full:
                continue
        # At the optimum for F: done unless a multiplier alpha_F leaves [0, cb_F].
        worst, worst_violation = -1, 1e-9 * C
        for a in range(p):
            alpha = r[a + 1] * ysg[F[a]]
            violation = max(-alpha, alpha - cb[F[a]])
            if violation > worst_violation:
                worst, worst_violation = a, violation
        if worst < 0:
            if p == d + 1:
                _new_point(Xs, F, p, r, wV, w_new)
            if not fresh and not (p > 0 and _accurate(XF, ysg, F, p, B, w_new, sV, r,
                                                      1e-9 * (C + 1.0))):
                # Updates of B drift: confirm with B rebuilt, else go on from it.
                _copy(r_old, r, p + 1)
                if not _bordered_rebuild(Xs, F, p, B, u, XF):
                    return b, p, -1
                _bordered_solve(XF, ysg, F, p, B, wV, -sV, u, r)
                fresh = True
                change = 0.0
                for a in range(p + 1):
                    change = max(change, abs(r[a] - r_old[a]))
                if change > 1e-9 * (C + 1.0):
                    continue
                b = r[0]
                _new_point(Xs, F, p, r, wV, w)
            else:
                b = r[0]  # the set's solve, confirmed
                _copy(w, w_new, d)
            _scores(ZT, w, h)  # y_i x_i . w, exact
            # The line search moved the margins in float32 (dm): every scan's
            # side is checked against its exact margin; where one is on the
            # wrong side, the steps go on from the exact margins.
            wrong = False
            for i in range(N):
                gap_i = (1.0 - ysg[i] * b) - h[i]
                gap[i] = np.float32(gap_i)
                if side[i] * gap_i < -_SIDE_TOL:
                    side[i] = -side[i]
                    change = cb[i] * ysg[i] * side[i]
                    sV += change
                    _add_scan(wV, Xs, i, change)
                    wrong = True
            if wrong:
                fresh = False
                continue
            for i in range(N):
                h[i] *= ysg[i]  # X w: the rows of ZT are y_i x_i
            return b, p, step
        i = F[worst]
        side[i] = 1.0 if r[worst + 1] * ysg[i] > cb[i] else -1.0
        if side[i] > 0.0:
            sV += cb[i] * ysg[i]
            _add_scan(wV, Xs, i, cb[i] * ysg[i])
        p = _bordered_leave(F, p, B, worst, XF)
        fresh = False
        dropped = i
    return b, p, -1


@njit(cache=True, inline="always")
def _norm(B, m):
    """The l1 norm of the inverse ``B[:m, :m]`` holds (stored transposed: see
    :func:`_bordered_join`) as an operator: its largest column sum of ``|B|``
    (row sum, the inverse being symmetric but for rounding)."""
    largest = 0.0
    for c in range(m):
        total = 0.0
        for a in range(m):
            total += abs(B[c, a])
        largest = max(largest, total)
    return largest


@njit(cache=True)
def _accurate(XF, ysg, F, p, B, w_new, sV, r, tol):
    """Whether the margin set's solve ``r`` (``w_new``: its weights) is within
    ``tol`` of the one a ``B`` rebuilt from scratch would give: its residuals
    (the set's margins minus 1, the balance) times a bound of ``|B|``'s rows.
    Cheaper than the rebuild, which then runs only where this fails."""
    d = w_new.shape[0]
    total = sV
    for a in range(p):
        total += r[a + 1]
    worst = abs(total)  # sum y alpha = 0 over the set and the bound scans
    for a in range(p):
        margin = r[0]
        for k in range(d):
            margin += XF[k, a] * w_new[k]
        worst = max(worst, abs(margin - ysg[F[a]]))
    return _norm(B, p + 1) * worst <= tol  # |dr| <= |B| |residual|


@njit(cache=True)
def _intercept(h, ysg, F, p, beta, cb):
    """The intercept by libsvm's rule (``calculate_rho``) at the optimum: the
    mean of ``y_i G_i`` over the free scans (``F[:p]``, with ``y alpha`` in
    ``beta``, coefficients within 1e-9 cb of a bound counting as at it); NaN
    if there is none. The optimal intercept is then any value in an interval,
    and which one SVC returns depends on libsvm's path."""
    total, n_free = 0.0, 0
    for a in range(p):
        i = F[a]
        if cb[i] * 1e-9 < beta[a] * ysg[i] < cb[i] * (1 - 1e-9):
            total += h[i] - ysg[i]  # y_i G_i = x_i . w - y_i
            n_free += 1
    return -total / n_free if n_free else np.nan


@njit(cache=True)
def _searchlight_kernel(Xt, y, sph_ptr, sph_idx, tr_ptr, tr_idx, te_ptr, te_idx, all_C, fold_C,
                        tie_margin, rank_margin, q_start, alpha_all, b_seed, accuracy, info,
                        rank, dec, store):
    """Accuracies and fold outcomes of the spheres from ``q_start`` on; indices are scans.

    Fills ``accuracy`` and ``info`` (n_spheres, n_folds): folds with ``info < 0``
    need a refit on libsvm's path, and, if ``store``, ``rank`` marks the exact
    folds whose test decisions' order needs one (:func:`_refit_kernel` or
    :func:`_refit_with_sklearn` do both after this returns: libsvm's SMO is not
    in this kernel's call graph, so a fresh install does not compile it).
    ``alpha_all``: the all-scans coefficients the sphere ``q_start`` starts
    from, updated sphere by sphere; ``b_seed``: NaN, or libsvm's intercept if
    ``alpha_all`` is libsvm's solution for that sphere. Returns the sphere whose
    all-scans fit failed from the previous sphere's coefficients (the caller
    starts again there from libsvm's), or n_spheres. ``all_C``: the class upper
    bounds (``classes_[0]``, ``classes_[1]``) of the all-scans fit, ``fold_C``:
    of each fold's (n_folds, 2)."""
    N = Xt.shape[1]
    n_spheres = sph_ptr.shape[0] - 1
    n_folds = tr_ptr.shape[0] - 1
    d_max = 0
    for q in range(n_spheres):
        d_max = max(d_max, sph_ptr[q + 1] - sph_ptr[q])
    XsT_buffer, Xs_buffer = np.empty((d_max, N)), np.empty(N * d_max)
    ZT_buffer, dw_buffer = np.empty((d_max, N)), np.empty(d_max)
    ZT32_buffer = np.empty((d_max, N), dtype=np.float32)
    dw32_buffer = np.empty(d_max, dtype=np.float32)
    w_all_buffer, w_buffer = np.empty(d_max), np.empty(d_max)
    wV_buffer, w_new_buffer = np.empty(d_max), np.empty(d_max)
    ysg = np.empty(N)
    cb_all, cb = np.empty(N), np.empty(N)  # each scan's upper bound
    for i in range(N):
        ysg[i] = 1.0 if y[i] == 0 else -1.0
        cb_all[i] = all_C[y[i]]
    alpha, h, delta = np.empty(N), np.empty(N), np.empty(N)
    dh, kink, gap = (np.empty(N, dtype=np.float32), np.empty(N, dtype=np.float32),
                     np.empty(N, dtype=np.float32))
    F, crossed = np.empty(N, dtype=np.int64), np.empty(N, dtype=np.int64)
    use = np.empty(N, dtype=np.bool_)
    xnorm = np.empty(N)  # each scan's |x| on the sphere's voxels
    use_all = np.empty(N, dtype=np.bool_)
    use_all[:] = True  # (np.ones: one more numba compilation on a fresh install)
    C_all = max(all_C[0], all_C[1])
    b_prev = 0.0 if np.isnan(b_seed) else b_seed
    side = np.empty(N)
    r, r_old = np.empty(d_max + 2), np.empty(d_max + 2)
    B, u = np.empty((d_max + 2, d_max + 2)), np.empty(2 * d_max + 4)
    A = np.empty((d_max + 1, N))
    XF_buffer = np.empty((d_max, d_max + 1))  # the margin set's scans, voxels by scans
    for q in range(q_start, n_spheres):
        cols = sph_idx[sph_ptr[q] : sph_ptr[q + 1]]
        d = cols.shape[0]
        # Xs contiguous (not a column slice): its rows' loops need no stride checks.
        XsT, Xs, ZT = XsT_buffer[:d], Xs_buffer[: N * d].reshape((N, d)), ZT_buffer[:d]
        ZT32 = ZT32_buffer[:d]
        XF = XF_buffer[:d]
        for k in range(d):
            # Each voxel centred on its mean over the scans: the same optimal
            # weights and decisions (the intercept absorbs the shift), without
            # the rounding a large baseline (raw BOLD) brings to every product.
            voxel = Xt[cols[k]]
            mean = 0.0
            for i in range(N):
                mean += voxel[i]
            mean /= N
            for i in range(N):
                value = voxel[i] - mean
                XsT[k, i] = value
                Xs[i, k] = value
                ZT[k, i] = ysg[i] * value
                ZT32[k, i] = np.float32(ZT[k, i])
        w_all, w = w_all_buffer[:d], w_buffer[:d]
        for i in range(N):
            total = 0.0
            for k in range(d):
                total += Xs[i, k] * Xs[i, k]
            xnorm[i] = np.sqrt(total)
        # The all-scans fit, exact: the primal method from the weights of the
        # previous sphere's coefficients on these voxels (the first sphere's: a
        # balanced vertex of the box), the dual method from them if it fails.
        _weights(Xs, ysg, alpha_all, w_all)
        b_all, p, steps = _primal_active_set(
            Xs, ZT, ZT32, ysg, use_all, cb_all, C_all, w_all, b_prev, F, side, h, gap, dh, kink,
            crossed, wV_buffer[:d], w_new_buffer[:d], dw_buffer[:d], dw32_buffer[:d], B, u, r,
            r_old, XF)
        if steps > 0:
            for i in range(N):
                alpha[i] = cb_all[i] if side[i] > 0.0 else 0.0
            for a in range(p):  # y alpha of the margin scans, in the box to 1e-9 C
                i = F[a]
                alpha[i] = min(max(r[a + 1] * ysg[i], 0.0), cb_all[i])
        else:
            _copy(alpha, alpha_all, N)
            b_all, steps = _dual_active_set(Xs, XsT, ysg, alpha, cb_all, w_all, h, F, B, u, r,
                                            delta, A, XF)
        if steps < 0:
            if q > q_start or np.isnan(b_seed):
                return q  # the caller starts again here from libsvm's solution
            # libsvm's solution (b_seed) did not reach the optimum: the folds start from it.
            _copy(alpha, alpha_all, N)
            _weights(Xs, ysg, alpha, w_all)
            b_all = b_seed
        _copy(alpha_all, alpha, N)
        b_prev = b_all
        for f in range(n_folds):
            train = tr_idx[tr_ptr[f] : tr_ptr[f + 1]]
            test = te_idx[te_ptr[f] : te_ptr[f + 1]]
            use[:] = False
            for i in train:
                use[i] = True
            Cp, Cn = fold_C[f, 0], fold_C[f, 1]
            for i in range(N):
                cb[i] = Cp if y[i] == 0 else Cn
            _copy(w, w_all, d)
            b, p, outcome = _primal_active_set(
                Xs, ZT, ZT32, ysg, use, cb, max(Cp, Cn), w, b_all, F, side, h, gap, dh, kink,
                crossed, wV_buffer[:d], w_new_buffer[:d], dw_buffer[:d], dw32_buffer[:d], B, u,
                r, r_old, XF)
            if outcome < 0:
                outcome = _FAILED
            else:
                b = _intercept(h, ysg, F, p, r[1:], cb)
                if np.isnan(b):
                    outcome = _NON_UNIQUE
            if outcome > 0:
                correct = 0
                # A cheap bound of every test scan's sensitivity: the exact one
                # only where the decision is that close to zero.
                bound = _sensitivity_bound(B, p, xnorm, F)
                for i in test:
                    decision = h[i] + b
                    margin = abs(decision)
                    if (margin < tie_margin * bound * (1.0 + xnorm[i])
                            and margin < tie_margin * _sensitivity(Xs, XF, p, B, i, _ALONE, u)):
                        outcome = _NEAR_TIE
                        break
                    # Positive decisions are libsvm's class +1, classes_[0].
                    if (0 if decision > 0.0 else 1) == y[i]:
                        correct += 1
                    if store:  # SVC's sign; a near-tie refit overwrites it
                        dec[q, i] = -decision
                accuracy[q, f] = correct / test.shape[0]
                rank[q, f] = (outcome > 0 and store and rank_margin > 0.0
                              and _rank_tie(Xs, XF, p, B, u, dec[q], test, y,
                                            rank_margin, bound, xnorm))
            else:
                rank[q, f] = False
            info[q, f] = outcome
    return n_spheres


@njit(cache=True)
def _sensitivity(Xs, XF, p, B, i, j, u):
    """How far test scan ``i``'s decision can move when the margins of the margin set
    (``XF``: its scans' columns, as :func:`_bordered_join` keeps them) move by at most
    1: ``|B [1; X_F x_i]|_1`` (``B``: the inverse of the
    set's bordered Gram matrix, at the fold's optimum). libsvm stops with those
    margins within about its ``tol`` of 1, so its decision is near the exact one
    where this is small. With ``j >= 0``, how far the difference of scans ``i``
    and ``j``'s decisions can move: ``|B [0; X_F (x_i - x_j)]|_1``, without the
    intercept, which moves both alike. ``u``: scratch of 2 (p + 1)."""
    d = Xs.shape[1]
    u[0] = 1.0 if j < 0 else 0.0
    for a in range(p):
        u[a + 1] = 0.0
    for k in range(d):
        xik = Xs[i, k] - (Xs[j, k] if j >= 0 else 0.0)
        for a in range(p):
            u[a + 1] += xik * XF[k, a]
    _matvec(B, u, p + 1, u[p + 1:])
    total = 0.0
    for a in range(p + 1):
        total += abs(u[p + 1 + a])
    return total


@njit(cache=True)
def _sensitivity_bound(B, p, xnorm, F):
    """c with ``_sensitivity(x_i) <= c (1 + |x_i|)`` for every scan: the largest column
    sum of ``|B|`` times ``max(1, sum_F |x_a|)`` (so each test scan's exact sensitivity
    is computed only where its decision is near zero)."""
    largest = _norm(B, p + 1)
    spread = 0.0
    for a in range(p):
        spread += xnorm[F[a]]
    return largest * max(1.0, spread)


@njit(cache=True)
def _rank_tie(Xs, XF, p, B, u, dec_row, test, y, margin, bound, xnorm):
    """Whether two test scans ``a``, ``b`` of different classes have decisions
    closer than ``margin S(x_a, x_b)``: their order (the AUC) may differ on
    libsvm's path, as a decision's sign may at a near tie (:func:`_sensitivity`
    of the pair: how far the difference of their decisions moves). The exact
    sensitivity only where the cheap bound (``bound (|x_a| + |x_b|)``) allows a
    tie. ``margin=inf``: every fold with both classes."""
    for ka in range(test.shape[0]):
        a = test[ka]
        for kb in range(ka):
            b = test[kb]
            if y[a] == y[b]:
                continue
            if margin == np.inf:
                return True
            gap = abs(dec_row[a] - dec_row[b])
            if (gap < margin * bound * (xnorm[a] + xnorm[b])
                    and gap < margin * _sensitivity(Xs, XF, p, B, a, b, u)):
                return True
    return False


@njit(cache=True)
def _refit_kernel(Xt, y, sph_ptr, sph_idx, tr_ptr, tr_idx, tr_sign, te_ptr, te_idx, fold_C, eps,
                  todo, info, accuracy, dec, store):
    """The refits of the folds ``todo`` (flat indices ``sphere * n_folds + fold``,
    sorted) with libsvm's SMO replica (:mod:`nidecode.solvers.libsvm`), one Gram
    matrix per sphere: folds with ``info < 0`` get libsvm's accuracy and
    decisions, the others libsvm's decisions if their signs are the exact
    optimum's (:func:`_rank_refit`)."""
    N = Xt.shape[1]
    n_folds = tr_ptr.shape[0] - 1
    Kd = np.empty((N, N))
    Kf = np.empty((N, N), dtype=np.float32)
    ws = _alloc_workspace(N)
    exact_dec = np.empty(N)
    last = -1
    for k in range(todo.shape[0]):
        q, f = todo[k] // n_folds, todo[k] % n_folds
        if q != last:
            _gram(Xt, sph_idx[sph_ptr[q] : sph_ptr[q + 1]], Kd)
            _to_qfloat(Kd, Kf)
            last = q
        train = tr_idx[tr_ptr[f] : tr_ptr[f + 1]]
        signs = tr_sign[tr_ptr[f] : tr_ptr[f + 1]]
        test = te_idx[te_ptr[f] : te_ptr[f + 1]]
        if info[q, f] < 0:
            accuracy[q, f], _ = _score_fold_libsvm(
                Kf, Kd, train, signs, test, y, fold_C[f, 0], fold_C[f, 1], eps, _SHRINK(),
                _NO_LIMIT(), ws, dec, q, store)
        else:
            _rank_refit(Kf, Kd, train, signs, test, y, fold_C[f, 0], fold_C[f, 1], eps, ws, dec,
                        q, exact_dec)


@njit(cache=True)
def _rank_refit(Kf, Kd, train, signs, test, y, Cp, Cn, eps, ws, dec, q, exact_dec):
    """Replace a fold's test decisions with libsvm's path's, unless a sign changes
    (the accuracies are the exact optimum's and the decisions must reproduce them)."""
    for i in test:
        exact_dec[i] = dec[q, i]
    _score_fold_libsvm(Kf, Kd, train, signs, test, y, Cp, Cn, eps, _SHRINK(), _NO_LIMIT(), ws,
                       dec, q, np.bool_(True))  # as the other caller's store: one specialisation
    for i in test:
        if (dec[q, i] >= 0.0) != (exact_dec[i] >= 0.0):
            for k in test:
                dec[q, k] = exact_dec[k]
            return


def searchlight_accuracies(
    X: np.ndarray,
    y: np.ndarray,
    spheres: sp.spmatrix,
    folds: list[tuple[np.ndarray, np.ndarray]],
    C: float = 1.0,
    tol: float = 1e-3,
    *,
    tie_margin: float = 2.5e-4,
    return_info: bool = False,
    return_decisions: bool = False,
    rank_margin: float = 5e-4,
    class_weight: str | None = None,
) -> np.ndarray | tuple:
    """Cross-validated accuracy of a linear C-SVC in every sphere, from the
    all-scans solution.

    Same problem, inputs and output as
    :func:`nidecode.solvers.libsvm.searchlight_accuracies`; each fold's SVM is
    the exact optimum, reached from the sphere's all-scans solution, and folds
    with a test decision near zero (``tie_margin``) are refitted on libsvm's
    path.

    Parameters
    ----------
    X : numpy.ndarray of shape (n_scans, n_voxels)
        Masked data.
    y : numpy.ndarray of shape (n_scans,)
        Binary labels; classes are sorted as in ``SVC.classes_``.
    spheres : scipy.sparse matrix of shape (n_spheres, n_voxels)
        Row ``i`` marks the voxels of sphere ``i``.
    folds : list of (numpy.ndarray, numpy.ndarray)
        ``(train_indices, test_indices)``.
    C : float, default=1.0
        Penalty parameter.
    tol : float, default=1e-3
        libsvm's tolerance for the refits on its path (SVC's ``tol``).
    tie_margin : float, default=2.5e-4
        Refit a fold on libsvm's path when a test decision ``f(x)`` is closer to
        zero than this times the scan's sensitivity ``S(x)`` (how far the decision
        moves when the margin scans' margins move by 1; libsvm stops with them
        within about ``tol``). 0: never; the exact optimum's predictions.
    return_info : bool, default=False
        Also return how the folds were solved.
    return_decisions : bool, default=False
        Also return every test scan's decision value (the one whose sign
        scored it: the libsvm refit's at near ties).
    rank_margin : float, default=5e-4
        Only with ``return_decisions``: where two test scans of different
        classes have decisions closer than this times the pair's sensitivity
        (how far the difference of their decisions moves when the margin
        scans' margins move by 1, as ``tie_margin``), the fold is refitted on
        libsvm's path and its decisions kept if their signs are the exact
        optimum's (the accuracies never change), so that their order (the
        AUC) is SVC's: 5e-4 refits 13 % of the Haxby slice's folds and gives
        SVC's AUC on 528 of its 530 spheres (face vs cat; all 530 with cat
        made rare and balanced class weights), 1e-3 23 % and all 530, 3e-4 9 %
        and 517, 0 (never refit; the exact optimum's order) 380
        at no cost; ``np.inf`` refits every fold. Only the AUC needs it.
    class_weight : {None, "none", "balanced"}, default=None
        ``"balanced"``: each class's penalty is ``C * n / (2 * n_class)`` of the
        fold's training scans, as ``SVC(class_weight="balanced")``: per-class
        upper bounds in the dual (the all-scans fit weighted on all scans, only
        a starting point), per-scan penalties in the folds' primal, the same
        bounds in the libsvm refits.

    Returns
    -------
    accuracies : numpy.ndarray of shape (n_spheres, n_folds)
    info : dict
        Only if ``return_info``: ``"exact"`` (folds solved exactly),
        ``"near_tie"``, ``"non_unique"`` (no unique optimal intercept) and
        ``"failed"`` (all three refitted on libsvm's path), and
        ``"mean_steps"`` (active-set steps per exact fold), ``"libsvm_seeds"``
        (spheres whose all-scans fit did not finish from the previous sphere's
        coefficients and started again from scikit-learn's libsvm fit).
    decisions : numpy.ndarray of shape (n_spheres, n_scans)
        Only if ``return_decisions`` (last): as in
        :func:`nidecode.solvers.libsvm.searchlight_accuracies`.
    """
    C, tol = _check_c_tol(C, tol)
    balanced = _check_class_weight(class_weight)
    n_scans = np.shape(X)[0]
    X, y, spheres, folds = _prepare(X, y, spheres, folds)
    arrays = _kernel_arrays(X, y, spheres, folds)
    Xt, y_used, sph_ptr, sph_idx, tr_ptr, tr_idx, tr_sign, te_ptr, te_idx = arrays
    fold_C = _fold_bounds(C, y, folds, balanced)
    n_spheres, n_folds = spheres.shape[0], len(folds)
    accuracy = np.empty((n_spheres, n_folds))
    outcome = np.zeros((n_spheres, n_folds), dtype=np.int64)
    rank = np.zeros((n_spheres, n_folds), dtype=np.bool_)
    dec = _decision_array(n_spheres, Xt.shape[1], return_decisions)
    all_C = np.array(_class_bounds(C, y_used, balanced))
    alpha, b_seed, q, seeds = _balanced_start(y_used, all_C), np.nan, 0, 0
    while q < n_spheres:
        q = _searchlight_kernel(Xt, y_used, sph_ptr, sph_idx, tr_ptr, tr_idx, te_ptr, te_idx,
                                all_C, fold_C, float(tie_margin), float(rank_margin), q, alpha,
                                b_seed, accuracy, outcome, rank, dec, bool(return_decisions))
        if q < n_spheres:  # rare: the sphere starts from libsvm's all-scans solution
            alpha, b_seed = _all_scans_libsvm(Xt, y_used, sph_idx[sph_ptr[q]:sph_ptr[q + 1]], C,
                                              tol, balanced)
            seeds += 1
    todo = np.flatnonzero((outcome < 0) | rank)
    if todo.size and (rank.any() or _replica_ready()):
        _refit_kernel(*arrays, fold_C, tol, todo, outcome, accuracy, dec,
                      np.bool_(return_decisions))
    elif todo.size:
        _refit_with_sklearn(arrays, todo, outcome, accuracy, dec, C, tol, balanced)
    result = (accuracy, _info(outcome, seeds, rank)) if return_info else (accuracy,)
    if return_decisions:
        result += (_scatter_decisions(dec, folds, n_scans),)
    return result if len(result) > 1 else accuracy


def _balanced_start(y01: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """A feasible start for the first sphere's all-scans fit, whatever its voxels: the
    class with the smaller total bound at its bounds, the other class's scans at theirs
    in order until the sums balance (one scan takes the rest). Non-separable spheres
    have most coefficients at their bound, so this is closer to their optimum than
    zero (from which the dual active set needed more than its step limit on the
    Haxby slice)."""
    bound = bounds[y01]
    totals = np.array([bound[y01 == 0].sum(), bound[y01 == 1].sum()])
    small = int(np.argmin(totals))
    alpha = np.where(y01 == small, bound, 0.0)
    other = np.flatnonzero(y01 != small)
    filled = np.cumsum(bound[other])
    full = int(np.searchsorted(filled, totals[small], side="right"))  # at their bound
    alpha[other[:full]] = bound[other[:full]]
    if full < len(other):
        rest = totals[small] - (filled[full - 1] if full else 0.0)
        alpha[other[full]] = min(max(rest, 0.0), bound[other[full]])
    return alpha


def _all_scans_libsvm(Xt: np.ndarray, y01: np.ndarray, cols: np.ndarray, C: float, tol: float,
                      balanced: bool) -> tuple[np.ndarray, float]:
    """scikit-learn's libsvm fit of one sphere on all scans (the weights as
    ``_class_bounds``): its dual coefficients (unsigned) and intercept, in the
    kernel's sign (libsvm's +1 is ``classes_[0]``)."""
    codes = y01.astype(np.float64)
    weights = _class_weights("balanced" if balanced else None, codes)
    support, _, _, dual_coef, intercept, *_ = _libsvm.fit(
        np.ascontiguousarray(Xt[cols].T), codes, C=C, class_weight=weights,
        **_LIBSVM_PARAMETERS, **dict(_FIT_PARAMETERS, tol=tol))
    alpha = np.zeros(len(y01))
    alpha[support] = np.abs(dual_coef[0])
    return alpha, float(intercept[0])  # libsvm's -rho


#: The time the replica of libsvm's SMO takes to compile (seconds, a quiet 2-core Xeon):
#: what scikit-learn's refits may cost in all beyond it before it compiles.
_REPLICA_COMPILE_S = 8.0
#: Beside numba's cache of this module: scikit-learn's refit seconds so far, all runs.
_RENT_FILE = "nidecode-sklearn-refit-seconds"


def _replica_ready(cache: Path | None = None) -> bool:
    """Whether the refits run on the compiled replica of libsvm's path: when it is
    compiled in this process or in numba's cache (``cache``: its directory), or when
    scikit-learn's refits (~1 ms each against ~0.3 ms) have cost this machine's runs
    as much as compiling it would; then it compiles, once for every later run (the
    ski-rental rule: at most twice the cheaper choice)."""
    if _refit_kernel.signatures or _rent_paid(cache) >= _REPLICA_COMPILE_S:
        return True
    try:  # an index of compiled code for the current source, without loading it
        return bool(_refit_kernel._cache._cache_file._load_index())
    except Exception:  # noqa: BLE001 - numba's private cache layout: compile-free answer
        return False


def _rent_path(cache: Path | None) -> Path | None:
    """The file of :func:`_rent_paid`, in ``cache`` or numba's cache directory."""
    if cache is None:
        try:
            cache = Path(_refit_kernel._cache._cache_path)
        except Exception:  # noqa: BLE001 - no cache: every process starts afresh
            return None
    return cache / _RENT_FILE


def _rent_paid(cache: Path | None = None) -> float:
    """Seconds scikit-learn's refits have cost all runs sharing this numba cache."""
    path = _rent_path(cache)
    try:
        return float(path.read_text())
    except (AttributeError, OSError, ValueError):  # none yet, or unreadable
        return 0.0


def _pay_rent(seconds: float, cache: Path | None = None) -> None:
    """Add ``seconds`` to :func:`_rent_paid` (best effort: runs that write at once may
    lose one's share, and a read-only cache keeps none)."""
    path = _rent_path(cache)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(repr(_rent_paid(cache) + seconds))
    except OSError:
        pass


def _refit_with_sklearn(arrays: tuple, todo: np.ndarray, outcome: np.ndarray,
                        accuracy: np.ndarray, dec: np.ndarray, C: float, tol: float,
                        balanced: bool) -> None:
    """The folds ``todo`` (all with ``outcome < 0``) refitted with scikit-learn's own
    libsvm, as ``SVC`` calls it: its accuracy and SVC's decisions, nothing to compile."""
    started = time.perf_counter()
    Xt, y01, sph_ptr, sph_idx, tr_ptr, tr_idx, _, te_ptr, te_idx = arrays
    codes = y01.astype(np.float64)
    n_folds = tr_ptr.shape[0] - 1
    fit_options = dict(_FIT_PARAMETERS, tol=tol)
    last, Xs = -1, None
    for q, f in zip(*np.divmod(todo, n_folds), strict=True):
        if q != last:
            Xs, last = np.ascontiguousarray(Xt[sph_idx[sph_ptr[q]:sph_ptr[q + 1]]].T), q
        train, test = tr_idx[tr_ptr[f]:tr_ptr[f + 1]], te_idx[te_ptr[f]:te_ptr[f + 1]]
        weights = _class_weights("balanced" if balanced else None, codes[train])
        model = _libsvm.fit(Xs[train], codes[train], C=C, class_weight=weights,
                            **_LIBSVM_PARAMETERS, **fit_options)[:7]
        # SVC.decision_function's sign: libsvm's value negated; >= 0 is classes_[1].
        decision = -_libsvm.decision_function(Xs[test], *model, **_LIBSVM_PARAMETERS).ravel()
        accuracy[q, f] = np.mean((decision >= 0) == y01[test])
        if dec.size:
            dec[q, test] = decision
    _pay_rent(time.perf_counter() - started)


def _info(outcome: np.ndarray, seeds: int, rank: np.ndarray) -> dict:
    """How the folds were solved, from the kernel's outcome codes, how many
    spheres' all-scans fits started from libsvm's solution and how many exact
    folds were refitted for their decisions' order (``rank``)."""
    exact = outcome > 0
    return {
        "exact": int(exact.sum()), "near_tie": int((outcome == _NEAR_TIE).sum()),
        "non_unique": int((outcome == _NON_UNIQUE).sum()),
        "failed": int((outcome == _FAILED).sum()),
        "mean_steps": float(outcome[exact].mean()) if exact.any() else 0.0,
        "libsvm_seeds": seeds,
        "rank_refits": int(rank.sum()),
    }
