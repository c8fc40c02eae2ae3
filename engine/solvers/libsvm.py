"""``--solver libsvm``: many small linear SVMs at once on libsvm's path.

Every sphere of a batch is cross-validated with the same C-SVC that
``sklearn.svm.SVC(kernel="linear", C=C)`` fits (libsvm: hinge loss, L2 penalty,
unpenalized intercept). Per sphere the linear Gram matrix of its voxels over all
scans is computed once and every fold takes its training block from it; the dual is
solved by an SMO in numba that mirrors libsvm's ``Solver`` step for step:

* training samples grouped by class as ``svm_group_classes`` does (classes sorted,
  ``classes_[0]`` first with label +1, ``classes_[1]`` second with label -1);
* kernel values stored as float32 (libsvm's ``Qfloat``), gradients in float64;
* second-order working-set selection (WSS2, Fan et al. 2005), stopping tolerance
  ``tol`` on the maximal violation, shrinking with the same schedule and the same
  index swaps, ``rho`` as the mean of ``y_i G_i`` over free SVs or the midpoint of the
  bounds;
* prediction ``classes_[0]`` if ``sum_i alpha_i y_i K(x_i, x) - rho > 0`` else
  ``classes_[1]`` (ties go to ``classes_[1]``, as in libsvm's vote).

Following libsvm's path makes the iterates identical up to the last bits of the
Gram matrix (same iteration counts, dual coefficients equal to ~1e-13), so accuracies
match SVC's exactly in practice, not just within ``tol``. The price is libsvm's
iteration count (about 1 700 SMO steps per fit on the Haxby slice); the speed comes
from compiled, vectorised, allocation-free iterations (see the comment above
``_smo``), over 6x the per-sphere ``SVC`` loop and 13x nilearn's ``SearchLight`` on
one core (the Haxby slice, ``benchmarks/bench_searchlight_solver.py``). The default
searchlight solver (:mod:`nidecode.solvers.batched`) solves the folds exactly without
SMO and refits with this module's SMO where libsvm's answer matters.

Note that nilearn's ``SearchLight(estimator="svc")`` uses ``LinearSVC`` (squared
hinge, penalized intercept), a different model: to reproduce a nilearn map with this
solver, give nilearn ``estimator=SVC(kernel="linear")``.

Pure functions on arrays: no Dask, no I/O. Numba compiles on first use (about 7 s)
and caches the machine code next to this file (``cache=True``), so later processes
load it in a fraction of a second.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
from numba import njit

from nidecode.errors import InputError
from nidecode.solvers._common import (
    _check_c_tol,
    _check_class_weight,
    _decision_array,
    _encode_binary,
    _fold_bounds,
    _gram,
    _group_train,
    _kernel_arrays,
    _prepare,
    _scatter_decisions,
    _to_qfloat,
)
from nidecode.solvers._smo_passes import gain_select, update_select

__all__ = [
    "decision_function_gram",
    "fit_linear_svm_gram",
    "searchlight_accuracies",
]

# libsvm's alpha_status values.
_LOWER = 0
_UPPER = 1
_FREE = 2
_TAU = 1e-12  # libsvm's TAU: stands in for a non-positive curvature

# --------------------------------------------------------------------------------------
# numba kernels
#
# The solver is libsvm's Solver::Solve for C-SVC rewritten on F_k = -y_k G_k (and
# Fbar_k = -y_k G_bar_k) with the unsigned float32 kernel Kf instead of
# Q_ab = y_a y_b Kf_ab. Multiplying by y = +-1 is exact in IEEE arithmetic, so every
# quantity equals libsvm's bit for bit while the loops lose their branches on y:
#   I_up  = {y=+1, alpha<C} u {y=-1, alpha>0}:  Gmax  = max F over I_up
#   I_low = {y=+1, alpha>0} u {y=-1, alpha<C}:  Gmax2 = max -F over I_low
#   grad_diff = Gmax - F_j,  quad_coef = QD_i + QD_j - 2 Kf_ij,
#   F_k -= Kf_ik y_i dalpha_i + Kf_jk y_j dalpha_j.
# Membership is stored as additive penalties (0 or -inf: ``pen_up``, ``pen_low``) so
# the per-iteration passes are branch-free; each runs in LLVM vectors with its scan
# for the working set fused in (:mod:`nidecode.solvers._smo_passes`: the gradient
# update with Gmax, Gmax2 and i, the gains with j). Variables keep libsvm's positions
# (shrinking swaps them exactly as libsvm does), so ties break the same way (the last
# index wins). Kernel rows are read in place from one float32 buffer ``qb``: the
# training block in the original order, a compact position-ordered copy of the
# active block (rebuilt after each shrinking) and two scratch rows (``_row_offset``).
# Everything that runs once per iteration is written inline in ``_smo``: a call with
# array arguments costs atomic reference counting, which dominated the run time.
# --------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _u(k):
    """Index as uint64: numba then skips the negative-index wraparound, which would
    otherwise turn contiguous vector loads of ``qb[offset + k]`` into gathers."""
    return np.uint64(k)


@njit(cache=True, inline="always")
def _status(a, c):
    if a >= c:
        return _UPPER
    if a <= 0.0:
        return _LOWER
    return _FREE


@njit(cache=True, inline="always")
def _penalties(yp, s):
    """(pen_up, pen_low) of a variable with label ``yp`` and status ``s``: 0 if it
    belongs to I_up / I_low, -inf otherwise."""
    up = (s != _UPPER) if yp == 1 else (s != _LOWER)
    low = (s != _LOWER) if yp == 1 else (s != _UPPER)
    return (0.0 if up else -math.inf), (0.0 if low else -math.inf)


@njit(cache=True)
def _row_offset(qb, n_tr, aset, ident, qa_off, ac, p, length, scratch_off):
    """Offset in ``qb`` of the kernel row of position ``p`` over positions
    ``0..length-1`` (libsvm's get_Q).

    ``qb`` holds the training kernel in the original order at offset 0 (row stride
    ``n_tr``), the compact copy of the first ``ac`` positions at ``qa_off`` (stride
    ``ac``) and scratch rows; ``ident``: no swap happened yet. Rows that are in
    neither block are gathered into the scratch row at ``scratch_off``.
    """
    if ident:
        return p * n_tr
    if p < ac and length <= ac:
        return qa_off + p * ac
    base = aset[p] * n_tr
    for k in range(length):
        qb[_u(scratch_off) + _u(k)] = qb[_u(base) + _u(aset[k])]
    return scratch_off


@njit(cache=True)
def _build_compact(qb, n_tr, aset, qa_off, a):
    """Compact block: qb[qa_off + p * a + q] = kernel between positions p, q < a."""
    for p in range(a):
        src = aset[p] * n_tr
        base = qa_off + p * a
        for q in range(a):
            qb[_u(base) + _u(q)] = qb[_u(src) + _u(aset[q])]


@njit(cache=True)
def _swap_index(F, alpha, QD, aset, y, st, pen_up, pen_low, i, j):
    """libsvm ``Solver::swap_index`` on the per-position arrays (``Fbar`` is kept in
    the original order, indexed through ``aset``)."""
    F[i], F[j] = F[j], F[i]
    alpha[i], alpha[j] = alpha[j], alpha[i]
    QD[i], QD[j] = QD[j], QD[i]
    aset[i], aset[j] = aset[j], aset[i]
    y[i], y[j] = y[j], y[i]
    st[i], st[j] = st[j], st[i]
    pen_up[i], pen_up[j] = pen_up[j], pen_up[i]
    pen_low[i], pen_low[j] = pen_low[j], pen_low[i]


@njit(cache=True)
def _reconstruct_gradient(
    F, Fbar, alpha, y, st, n_tr, active_size, qb, aset, ident, qa_off, ac, scratch_off
):
    """libsvm ``Solver::reconstruct_gradient`` (p_i = -1 for C-SVC)."""
    if active_size == n_tr:
        return
    for j in range(active_size, n_tr):
        F[j] = Fbar[aset[j]] + y[j]
    nr_free = 0
    for j in range(active_size):
        if st[j] == _FREE:
            nr_free += 1
    if nr_free * n_tr > 2 * active_size * (n_tr - active_size):
        for i in range(active_size, n_tr):
            off = _row_offset(qb, n_tr, aset, ident, qa_off, ac, i, active_size, scratch_off)
            acc = F[i]
            for j in range(active_size):
                if st[j] == _FREE:
                    acc = acc - alpha[j] * y[j] * qb[_u(off) + _u(j)]
            F[i] = acc
    else:
        for i in range(active_size):
            if st[i] == _FREE:
                off = _row_offset(qb, n_tr, aset, ident, qa_off, ac, i, n_tr, scratch_off)
                ay = alpha[i] * y[i]
                for j in range(active_size, n_tr):
                    F[j] = F[j] - ay * qb[_u(off) + _u(j)]


@njit(cache=True, inline="always")
def _be_shrunk(f, pu, pl, gmax1, gmax2):
    if pu == 0.0 and pl != 0.0:  # at a bound, can only move up
        return -f > gmax2
    if pl == 0.0 and pu != 0.0:  # at a bound, can only move down
        return f > gmax1
    return False


@njit(cache=True)
def _do_shrinking(
    F, Fbar, alpha, QD, aset, y, st, pen_up, pen_low, n_tr, active_size, eps,
    unshrink, qb, ident, qa_off, ac, scratch_off,
):  # fmt: skip
    """libsvm ``Solver::do_shrinking``; returns (active_size, unshrink, changed)."""
    gmax1 = -math.inf  # max { -y_i grad_i | i in I_up }
    gmax2 = -math.inf  # max { y_i grad_i | i in I_low }
    for i in range(active_size):
        gmax1 = max(gmax1, F[i] + pen_up[i])
        gmax2 = max(gmax2, pen_low[i] - F[i])
    changed = False
    if (not unshrink) and gmax1 + gmax2 <= eps * 10.0:
        unshrink = True
        _reconstruct_gradient(
            F, Fbar, alpha, y, st, n_tr, active_size, qb, aset, ident, qa_off, ac, scratch_off
        )
        changed = active_size != n_tr
        active_size = n_tr

    i = 0
    while i < active_size:
        if _be_shrunk(F[i], pen_up[i], pen_low[i], gmax1, gmax2):
            changed = True
            active_size -= 1
            while active_size > i:
                a = active_size
                if not _be_shrunk(F[a], pen_up[a], pen_low[a], gmax1, gmax2):
                    _swap_index(F, alpha, QD, aset, y, st, pen_up, pen_low, i, a)
                    break
                active_size -= 1
        i += 1
    return active_size, unshrink, changed


@njit(cache=True)
def _calculate_rho(F, pen_up, pen_low, active_size):
    """libsvm ``Solver::calculate_rho`` (y_i G_i = -F_i)."""
    nr_free = 0
    ub = math.inf
    lb = -math.inf
    sum_free = 0.0
    for i in range(active_size):
        yg = -F[i]
        if pen_up[i] == 0.0 and pen_low[i] == 0.0:
            nr_free += 1
            sum_free += yg
        elif pen_up[i] == 0.0:
            ub = min(ub, yg)
        else:
            lb = max(lb, yg)
    if nr_free > 0:
        return sum_free / nr_free
    return (ub + lb) / 2.0


@njit(cache=True)
def _smo(
    Kf, Kd, tr, ysign, Cp, Cn, eps, shrinking, max_iter,
    F, Fbar, alpha, QD, pen_up, pen_low, out, aset, y, st, qb,
):  # fmt: skip
    """libsvm ``Solver::Solve`` for C-SVC (p = -1), from alpha = 0.

    ``Cp`` / ``Cn``: the upper bounds of the +1 / -1 class (libsvm's ``get_C``:
    ``C * weight`` of the class; equal without class weights).

    ``Kf`` / ``Kd``: float32 / float64 kernel over all scans; ``tr``: training scans
    in libsvm's order; ``ysign``: their +-1 labels. The other arrays are
    scratch of length L >= len(tr) (``qb``: 2 L**2 + 2 L, see ``_row_offset``).
    Leaves alpha_a y_a, in ``tr`` order, in ``out`` and returns ``(rho, n_iter)``;
    ``n_iter < 0`` if ``max_iter`` stopped the solver.
    """
    n_tr = tr.shape[0]
    lmax = F.shape[0]
    qa_off = lmax * lmax
    ri_off = 2 * lmax * lmax  # scratch rows for i and j
    rj_off = ri_off + lmax
    for a in range(n_tr):
        g = tr[a]
        base = a * n_tr
        for b in range(n_tr):
            qb[_u(base) + _u(b)] = Kf[g, tr[b]]
        aset[a] = a
        y[a] = ysign[a]
        QD[a] = Kd[g, g]
        alpha[a] = 0.0
        F[a] = ysign[a]  # G = p = -1
        Fbar[a] = 0.0
        st[a] = _LOWER
        pen_up[a], pen_low[a] = _penalties(y[a], st[a])
    # Positions are still the original order: rows come from block 0 (np.bool_, not a
    # literal True: the callees compile once for both values).
    ident = np.bool_(True)
    ac = n_tr

    active_size = n_tr
    unshrink = False
    it = 0
    counter = min(n_tr, 1000) + 1
    timed_out = False
    # Gmax = max over I_up of F (i: the last index reaching it), Gmax2 = max over I_low
    # of -F: computed with each gradient update (``update_select``), fresh until
    # shrinking or a reconstructed gradient changes the active set.
    gmax, i, gmax2 = -math.inf, -1, -math.inf
    fresh = False
    while True:
        if max_iter != -1 and it >= max_iter:
            timed_out = True
            break
        counter -= 1
        if counter == 0:
            counter = min(n_tr, 1000)
            if shrinking:
                active_size, unshrink, changed = _do_shrinking(
                    F, Fbar, alpha, QD, aset, y, st, pen_up, pen_low, n_tr, active_size,
                    eps, unshrink, qb, ident, qa_off, ac, ri_off,
                )  # fmt: skip
                if changed or (not ident and active_size > ac):
                    ident = False
                    ac = active_size
                    _build_compact(qb, n_tr, aset, qa_off, ac)
                fresh = False

        # ---- libsvm select_working_set (WSS2); if optimal on the active set,
        # reconstruct the gradient, reactivate everything and select once more.
        recheck = False
        while True:
            if not fresh:  # the gradient as it is (e_i = e_j = 0: F unchanged)
                gmax, i, gmax2 = update_select(F, pen_up, pen_low, qb, 0, 0, 0.0, 0.0,
                                               active_size)
                fresh = True
            j = -1
            if gmax > -math.inf:  # else I_up is empty
                # Kernel row of i over the active set (libsvm's get_Q): qb[oi + k].
                if ident:
                    oi = i * n_tr
                elif i < ac and active_size <= ac:
                    oi = qa_off + i * ac
                else:
                    oi = ri_off
                    base = aset[i] * n_tr
                    for k in range(active_size):
                        qb[_u(oi) + _u(k)] = qb[_u(base) + _u(aset[k])]
                # j: the smallest obj_diff -grad_diff^2 / quad_coef over t in I_low
                # with grad_diff > 0, its last index (libsvm's "<=").
                omin, last = gain_select(F, QD, pen_low, qb, oi, gmax, QD[i], _TAU,
                                         active_size)
                if omin < math.inf and gmax + gmax2 >= eps:
                    j = last
            if j != -1 or recheck:
                break
            _reconstruct_gradient(
                F, Fbar, alpha, y, st, n_tr, active_size, qb, aset, ident, qa_off, ac, rj_off
            )
            active_size = n_tr
            fresh = False
            recheck = True
        if j == -1:
            break
        if recheck:
            counter = 1  # shrink at the next iteration
        it += 1

        # ---- update alpha_i, alpha_j (libsvm, bounds handled the same way)
        if ident:
            oj = j * n_tr
        elif j < ac and active_size <= ac:
            oj = qa_off + j * ac
        else:
            oj = rj_off
            base = aset[j] * n_tr
            for k in range(active_size):
                qb[_u(oj) + _u(k)] = qb[_u(base) + _u(aset[k])]
        yi = y[i]
        yj = y[j]
        C_i = Cp if yi == 1 else Cn
        C_j = Cp if yj == 1 else Cn
        g_i = -yi * F[i]
        g_j = -yj * F[j]
        old_alpha_i = alpha[i]
        old_alpha_j = alpha[j]
        # libsvm: QD_i + QD_j +- 2 Q_ij with Q_ij = y_i y_j Kf_ij, i.e. always - 2 Kf_ij.
        quad_coef = QD[i] + QD[j] - 2.0 * qb[_u(oi) + _u(j)]
        if quad_coef <= 0.0:
            quad_coef = _TAU
        a_i = old_alpha_i
        a_j = old_alpha_j
        if yi != yj:
            delta = (-g_i - g_j) / quad_coef
            diff = a_i - a_j
            a_i += delta
            a_j += delta
            if diff > 0.0:
                if a_j < 0.0:
                    a_j = 0.0
                    a_i = diff
            else:
                if a_i < 0.0:
                    a_i = 0.0
                    a_j = -diff
            if diff > C_i - C_j:  # 0.0 without class weights, as before
                if a_i > C_i:
                    a_i = C_i
                    a_j = C_i - diff
            else:
                if a_j > C_j:
                    a_j = C_j
                    a_i = C_j + diff
        else:
            delta = (g_i - g_j) / quad_coef
            total = a_i + a_j
            a_i -= delta
            a_j += delta
            if total > C_i:
                if a_i > C_i:
                    a_i = C_i
                    a_j = total - C_i
            else:
                if a_j < 0.0:
                    a_j = 0.0
                    a_i = total
            if total > C_j:
                if a_j > C_j:
                    a_j = C_j
                    a_i = total - C_j
            else:
                if a_i < 0.0:
                    a_i = 0.0
                    a_j = total
        alpha[i] = a_i
        alpha[j] = a_j

        # ---- alpha_status and G_bar (G_bar_k -+= C_p Q_pk  <=>  Fbar_k +-= C_p y_p Kf_pk);
        # Fbar is kept in the original order, so its kernel row (block 0) is contiguous.
        for p in (i, j):
            C = Cp if y[p] == 1 else Cn
            was_upper = st[p] == _UPPER
            s_new = _status(alpha[p], C)
            st[p] = s_new
            pen_up[p], pen_low[p] = _penalties(y[p], s_new)
            if was_upper != (s_new == _UPPER):
                cy = C * y[p] if was_upper else -C * y[p]
                base = aset[p] * n_tr
                for k in range(n_tr):
                    Fbar[k] = Fbar[k] + cy * qb[_u(base) + _u(k)]

        # ---- gradient: G_k += Q_ik da_i + Q_jk da_j  <=>  F_k -= Kf_ik e_i + Kf_jk e_j
        e_i = yi * (a_i - old_alpha_i)
        e_j = yj * (a_j - old_alpha_j)
        # The selection of the next iteration's i comes with the update.
        gmax, i, gmax2 = update_select(F, pen_up, pen_low, qb, oi, oj, e_i, e_j, active_size)
        fresh = True

    if timed_out and active_size < n_tr:
        _reconstruct_gradient(
            F, Fbar, alpha, y, st, n_tr, active_size, qb, aset, ident, qa_off, ac, ri_off
        )
        active_size = n_tr
    rho = _calculate_rho(F, pen_up, pen_low, active_size)
    for k in range(n_tr):
        out[aset[k]] = alpha[k] * y[k]
    return rho, (-it if timed_out else it)


_COEF = 6  # ws[_COEF]: alpha_a y_a after ``_fit`` (``_smo``'s ``out``)


@njit(cache=True)
def _alloc_workspace(lmax):
    """Scratch arrays for fits of up to ``lmax`` training samples (see ``_fit``)."""
    f64 = np.empty((7, lmax), dtype=np.float64)
    i8 = np.empty((2, lmax), dtype=np.int8)
    return (
        f64[0], f64[1], f64[2], f64[3], f64[4], f64[5], f64[6],
        np.empty(lmax, dtype=np.int64), i8[0], i8[1],
        np.empty(2 * lmax * lmax + 2 * lmax, dtype=np.float32),
    )  # fmt: skip


@njit(cache=True)
def _fit(Kf, Kd, tr, ysign, Cp, Cn, eps, shrinking, max_iter, ws):
    """Run ``_smo`` with workspace ``ws``; alpha_a y_a end up in ``ws[_COEF]``."""
    F, Fbar, alpha, QD, pen_up, pen_low, out, aset, y, st, qb = ws
    return _smo(
        Kf, Kd, tr, ysign, Cp, Cn, eps, shrinking, max_iter,
        F, Fbar, alpha, QD, pen_up, pen_low, out, aset, y, st, qb,
    )  # fmt: skip


@njit(cache=True)
def _fit_gram(Kd, tr, ysign, Cp, Cn, eps, shrinking, max_iter):
    """One fit from a float64 Gram matrix; returns (alpha*y in tr order, rho, n_iter)."""
    n = Kd.shape[0]
    Kf = np.empty((n, n), dtype=np.float32)
    _to_qfloat(Kd, Kf)
    ws = _alloc_workspace(tr.shape[0])
    rho, it = _fit(Kf, Kd, tr, ysign, Cp, Cn, eps, shrinking, max_iter, ws)
    return ws[_COEF][: tr.shape[0]].copy(), rho, it


@njit(cache=True)
def _searchlight_kernel(
    Xt, y, sph_ptr, sph_idx, tr_ptr, tr_idx, tr_sign, te_ptr, te_idx, fold_C, eps, shrinking,
    max_iter, dec, store
):
    n = Xt.shape[1]
    n_spheres = sph_ptr.shape[0] - 1
    n_folds = tr_ptr.shape[0] - 1
    out = np.empty((n_spheres, n_folds), dtype=np.float64)
    iters = np.zeros((n_spheres, n_folds), dtype=np.int64)
    Kd = np.empty((n, n), dtype=np.float64)
    Kf = np.empty((n, n), dtype=np.float32)
    lmax = 0
    for f in range(n_folds):
        lmax = max(lmax, tr_ptr[f + 1] - tr_ptr[f])
    ws = _alloc_workspace(lmax)
    for s in range(n_spheres):
        _gram(Xt, sph_idx[sph_ptr[s] : sph_ptr[s + 1]], Kd)
        _to_qfloat(Kd, Kf)
        for f in range(n_folds):
            out[s, f], iters[s, f] = _score_fold_libsvm(
                Kf, Kd, tr_idx[tr_ptr[f] : tr_ptr[f + 1]], tr_sign[tr_ptr[f] : tr_ptr[f + 1]],
                te_idx[te_ptr[f] : te_ptr[f + 1]], y, fold_C[f, 0], fold_C[f, 1], eps, shrinking,
                max_iter, ws, dec, s, store)
    return out, iters


@njit(cache=True)
def _score_fold_libsvm(Kf, Kd, tr, ys, te, y, Cp, Cn, eps, shrinking, max_iter, ws, dec, s,
                       store):
    """Fit one fold on libsvm's path and score its test scans: (accuracy, n_iter).

    ``Cp`` / ``Cn``: the fold's upper bounds of ``classes_[0]`` / ``classes_[1]``.
    If ``store``, ``dec[s, scan]`` receives each test scan's decision in
    ``SVC.decision_function``'s sign (libsvm's negated)."""
    rho, it = _fit(Kf, Kd, tr, ys, Cp, Cn, eps, shrinking, max_iter, ws)
    coef = ws[_COEF]
    correct = 0
    for t in range(te.shape[0]):
        krow = Kd[te[t]]
        value = 0.0
        # Sum over support vectors in libsvm's order (class +1 first).
        for a in range(tr.shape[0]):
            if coef[a] != 0.0:
                value += coef[a] * krow[tr[a]]
        value -= rho
        pred = 0 if value > 0.0 else 1
        if pred == y[te[t]]:
            correct += 1
        if store:
            dec[s, te[t]] = -value
    return correct / te.shape[0], it


# --------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------


def fit_linear_svm_gram(
    K_train: np.ndarray,
    y_train: np.ndarray,
    C: float = 1.0,
    tol: float = 1e-3,
    *,
    shrinking: bool = True,
    max_iter: int = -1,
    return_n_iter: bool = False,
) -> tuple[np.ndarray, float] | tuple[np.ndarray, float, int]:
    """Fit one C-SVC from its Gram matrix, as ``SVC(kernel="precomputed")`` does.

    Parameters
    ----------
    K_train : numpy.ndarray of shape (n, n)
        Kernel (for a linear SVM: ``X @ X.T``) between the training samples.
    y_train : numpy.ndarray of shape (n,)
        Binary labels (any two values; sorted like ``SVC.classes_``).
    C : float, default=1.0
        Penalty parameter.
    tol : float, default=1e-3
        Stopping tolerance on the maximal KKT violation (libsvm's ``eps``).
    shrinking : bool, default=True
        Use libsvm's shrinking heuristic (SVC's default). Changes the path, not the
        stopping criterion.
    max_iter : int, default=-1
        Iteration limit, -1 for none (SVC's default).
    return_n_iter : bool, default=False
        Also return the number of SMO iterations.

    Returns
    -------
    dual_coef : numpy.ndarray of shape (n,)
        In scikit-learn's convention: ``dual_coef[SVC.support_] == SVC.dual_coef_[0]``
        and zero for non-support vectors.
    intercept : float
        ``SVC.intercept_[0]`` (libsvm's ``rho``). The decision function is
        ``K_test_train @ dual_coef + intercept``; positive means ``classes_[1]``.
    n_iter : int
        Only if ``return_n_iter``: SMO iterations (a warning says if ``max_iter``
        stopped the solver).
    """
    C, tol = _check_c_tol(C, tol)
    K = np.ascontiguousarray(K_train, dtype=np.float64)
    n = K.shape[0]
    if K.ndim != 2 or K.shape[1] != n:
        raise InputError(f"K_train must be square, got shape {K.shape}")
    _, y01 = _encode_binary(y_train)
    if len(y01) != n:
        raise InputError(f"y_train has {len(y01)} labels for a {n}x{n} Gram matrix")
    order, sign = _group_train(np.arange(n), y01)
    coef, rho, it = _fit_gram(K, order, sign, C, C, tol, bool(shrinking), int(max_iter))
    if it < 0:
        warnings.warn("SMO stopped at max_iter before convergence", stacklevel=2)
    dual_coef = np.zeros(n)
    # libsvm's class +1 is classes_[0]; scikit-learn flips signs for binary problems.
    dual_coef[order] = -coef
    if return_n_iter:
        return dual_coef, float(rho), abs(int(it))
    return dual_coef, float(rho)


def decision_function_gram(
    K_test_train: np.ndarray, dual_coef: np.ndarray, intercept: float
) -> np.ndarray:
    """Decision values of a model from :func:`fit_linear_svm_gram` (SVC's sign).

    Parameters
    ----------
    K_test_train : numpy.ndarray of shape (n_test, n_train)
        Kernel between test and training samples.
    dual_coef : numpy.ndarray of shape (n_train,)
        Dual coefficients in scikit-learn's convention.
    intercept : float
        Intercept (``SVC.intercept_[0]``).

    Returns
    -------
    numpy.ndarray of shape (n_test,)
        Positive values predict ``classes_[1]``, others ``classes_[0]``.
    """
    return np.asarray(K_test_train, dtype=np.float64) @ np.asarray(dual_coef) + intercept


def searchlight_accuracies(
    X: np.ndarray,
    y: np.ndarray,
    spheres: sp.spmatrix,
    folds: list[tuple[np.ndarray, np.ndarray]],
    C: float = 1.0,
    tol: float = 1e-3,
    *,
    shrinking: bool = True,
    max_iter: int = -1,
    return_n_iter: bool = False,
    return_decisions: bool = False,
    class_weight: str | None = None,
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Cross-validated accuracy of a linear C-SVC in every sphere, all folds at once.

    Equivalent to ``cross_val_score(SVC(kernel="linear", C=C, tol=tol,
    class_weight=class_weight), X[:, sphere], y, cv=folds)`` for each sphere, but
    one Gram matrix per sphere serves all folds and the SMO runs compiled.

    Parameters
    ----------
    X : numpy.ndarray of shape (n_scans, n_voxels)
        Masked data (float32 or float64; computations are in float64).
    y : numpy.ndarray of shape (n_scans,)
        Binary labels (e.g. 0/1); classes are sorted as in ``SVC.classes_``.
    spheres : scipy.sparse matrix of shape (n_spheres, n_voxels)
        Row ``i`` marks the voxels (columns of ``X``) of sphere ``i``.
    folds : list of (numpy.ndarray, numpy.ndarray)
        ``(train_indices, test_indices)`` into the scans, as from ``cv.split``.
    C : float, default=1.0
        Penalty parameter.
    tol : float, default=1e-3
        SMO stopping tolerance (SVC's ``tol``).
    shrinking : bool, default=True
        libsvm's shrinking heuristic (SVC's default).
    max_iter : int, default=-1
        Iteration limit per fit, -1 for none.
    return_n_iter : bool, default=False
        Also return the SMO iteration count of every fit.
    return_decisions : bool, default=False
        Also return every test scan's decision value.
    class_weight : {None, "none", "balanced"}, default=None
        ``"balanced"``: each class's penalty is ``C * n / (2 * n_class)`` of the
        fold's training scans, as ``SVC(class_weight="balanced")`` (libsvm's
        per-class C).

    Returns
    -------
    accuracies : numpy.ndarray of shape (n_spheres, n_folds)
        Fraction of test scans classified correctly, per sphere and fold. The mean
        over folds is nilearn's searchlight score.
    n_iter : numpy.ndarray of shape (n_spheres, n_folds), int64
        Only if ``return_n_iter``; negative where ``max_iter`` stopped the solver.
    decisions : numpy.ndarray of shape (n_spheres, n_scans)
        Only if ``return_decisions`` (last): each scan's
        ``SVC.decision_function`` value (positive: ``classes_[1]``) in the fold
        that tests it (the last such fold if several do), NaN for scans no fold
        tests.
    """
    C, tol = _check_c_tol(C, tol)
    balanced = _check_class_weight(class_weight)
    n_scans = np.shape(X)[0]
    X, y, spheres, folds = _prepare(X, y, spheres, folds)
    arrays = _kernel_arrays(X, y, spheres, folds)
    dec = _decision_array(spheres.shape[0], arrays[0].shape[1], return_decisions)
    acc, iters = _searchlight_kernel(*arrays, _fold_bounds(C, y, folds, balanced), tol,
                                     bool(shrinking), int(max_iter), dec,
                                     bool(return_decisions))
    if np.any(iters < 0):
        warnings.warn(
            f"SMO stopped at max_iter={max_iter} before convergence in "
            f"{int(np.count_nonzero(iters < 0))} fits",
            stacklevel=2,
        )
    result = (acc, iters) if return_n_iter else (acc,)
    if return_decisions:
        result += (_scatter_decisions(dec, folds, n_scans),)
    return result if len(result) > 1 else acc
