"""The ROI decode's fits call libsvm as SVC does: bit-identical fits and predictions."""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.svm import SVC

from nidecode.cv import make_folds
from nidecode.solvers.svc import (
    cross_validate_svc,
    fit_svc_kernel,
    linear_kernel,
    svc_kernel_decisions,
)


def _assert_equals_svc(X, y, folds, C):
    scores = cross_validate_svc(X, y, folds, C, extra=[X[fold.test] for fold in folds])
    for index, fold in enumerate(folds):
        svc = SVC(kernel="linear", C=C).fit(X[fold.train], y[fold.train])
        assert scores.accuracy[index] == np.mean(svc.predict(X[fold.test]) == y[fold.test])
        np.testing.assert_array_equal(scores.coef[index], svc.coef_[0])
        assert scores.intercept[index] == svc.intercept_[0]
        np.testing.assert_allclose(scores.decision[index], svc.decision_function(X[fold.test]),
                                   rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("pair", [("face", "cat"), ("bottle", "shoe"), ("scissors", "chair")])
def test_real_slice_fits_are_bit_identical_to_svc(haxby_slice_masked, pair):
    X, labels, _, _ = haxby_slice_masked
    keep = labels["labels"].isin(pair).to_numpy()
    runs = labels["chunks"].to_numpy()[keep]
    _assert_equals_svc(X[keep], labels["labels"].to_numpy()[keep],
                       make_folds(runs, "logo"), 1.0)


@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_random_problems_are_bit_identical_to_svc(C):
    rng = np.random.default_rng(int(C * 100))
    X = rng.standard_normal((60, 7)).astype(np.float32)  # the store's dtype
    y = np.where(X[:, 0] + rng.standard_normal(60) > 0, "b", "a")
    _assert_equals_svc(X, y, make_folds(np.repeat(np.arange(5), 12), "kfold:3"), C)


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="two classes"):
        cross_validate_svc(np.ones((4, 2)), np.array(["a"] * 4),
                           make_folds(np.array([0, 0, 1, 1]), "logo"))


def _assert_kernel_path_equals_svc(X, y, folds, C, class_weight=None, kernel=None):
    """Every fold of cross_validate_svc (on ``kernel``, a block of a bigger kernel, if
    given) and of fit_svc_kernel equals SVC(kernel="linear") bit for bit."""
    scores = cross_validate_svc(X, y, folds, C, class_weight=class_weight, kernel=kernel)
    classes, codes = np.unique(y, return_inverse=True)
    K = linear_kernel(X)
    for index, fold in enumerate(folds):
        svc = SVC(kernel="linear", C=C, class_weight=class_weight).fit(X[fold.train],
                                                                      y[fold.train])
        dual_coef, support, intercept = fit_svc_kernel(K[np.ix_(fold.train, fold.train)],
                                                       codes[fold.train], C, class_weight)
        np.testing.assert_array_equal(support, svc.support_)
        np.testing.assert_array_equal(dual_coef, svc.dual_coef_[0])
        assert intercept == scores.intercept[index] == svc.intercept_[0]
        np.testing.assert_array_equal(scores.coef[index], svc.coef_[0])
        decision = svc.decision_function(X[fold.test])
        np.testing.assert_array_equal(scores.test_decision[index], decision)
        np.testing.assert_array_equal(
            svc_kernel_decisions(K[np.ix_(fold.test, fold.train)], dual_coef, support,
                                 intercept), decision)
        np.testing.assert_array_equal(classes[scores.predicted[index].astype(int)],
                                      svc.predict(X[fold.test]))
        assert scores.accuracy[index] == np.mean(svc.predict(X[fold.test]) == y[fold.test])


@pytest.mark.slow
def test_every_real_slice_pair_and_fold_is_bit_identical_to_svc(haxby_slice_masked):
    """All 28 pairs x 12 folds, each fitted on its block of the subject's kernel (as
    decode does): support, dual coefficients, intercepts, coefficients, decision
    values and predictions equal SVC(kernel="linear")'s."""
    X, labels, _, _ = haxby_slice_masked
    names, runs = labels["labels"].to_numpy(), labels["chunks"].to_numpy()
    scans = np.flatnonzero(names != "rest")
    subject_kernel = linear_kernel(X[scans])
    for pair in itertools.combinations(sorted(set(names[scans])), 2):
        rows = np.flatnonzero(np.isin(names[scans], pair))
        _assert_kernel_path_equals_svc(X[scans][rows], names[scans][rows],
                                       make_folds(runs[scans][rows], "logo"), 1.0,
                                       kernel=subject_kernel[np.ix_(rows, rows)])


def test_beyond_max_kernel_samples_libsvm_computes_the_dot_products(haxby_slice_masked,
                                                                   monkeypatch):
    """Without a kernel matrix (too many samples), the same SVC results, bit for bit."""
    from nidecode.solvers import svc

    monkeypatch.setattr(svc, "MAX_KERNEL_SAMPLES", 10)
    X, labels, _, _ = haxby_slice_masked
    keep = labels["labels"].isin(["face", "house"]).to_numpy()
    folds = make_folds(labels["chunks"].to_numpy()[keep], "logo")
    _assert_kernel_path_equals_svc(X[keep], labels["labels"].to_numpy()[keep], folds, 1.0)
    _assert_kernel_path_equals_svc(X[keep], labels["labels"].to_numpy()[keep], folds, 0.01,
                                   "balanced")


@st.composite
def _problems(draw):
    """Small two-class problems: uneven classes, repeated scans, float32 values."""
    n_distinct = draw(st.integers(2, 12))
    n_features = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # Scales of 10 and more with C = 100 take libsvm seconds to millions of iterations.
    scale = draw(st.sampled_from([1e-2, 1.0]))
    distinct = (rng.standard_normal((n_distinct, n_features)) * scale).astype(np.float32)
    n_runs = draw(st.integers(2, 4))
    per_run = draw(st.integers(3, 8))
    X = distinct[rng.integers(0, n_distinct, n_runs * per_run)]  # duplicated scans
    share = draw(st.floats(0.15, 0.85))
    y = np.where(rng.random(len(X)) < share, "b", "a")
    runs = np.repeat(np.arange(n_runs), per_run)
    return X, y, runs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=_problems(), C=st.sampled_from([0.01, 1.0, 100.0]),
       class_weight=st.sampled_from([None, "balanced"]))
def test_generated_problems_are_bit_identical_to_svc(problem, C, class_weight):
    X, y, runs = problem
    folds = [fold for fold in make_folds(runs, "logo")
             if len(np.unique(y[fold.train])) == 2]
    if len(np.unique(y)) < 2 or not folds:
        return
    _assert_kernel_path_equals_svc(X, y, folds, C, class_weight)


def test_kernel_fit_needs_both_codes():
    with pytest.raises(ValueError, match="coded 0 and 1"):
        fit_svc_kernel(np.eye(3), np.zeros(3))


def test_kernel_blocks_are_the_full_kernels_entries():
    """Only the blocks of the groups asked for are computed, with the full kernel's values."""
    X = np.random.default_rng(3).standard_normal((9, 5)).astype(np.float32)
    groups = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    needed = np.zeros((3, 3), bool)
    needed[np.ix_([0, 1], [0, 1])] = True
    blocks = linear_kernel(X, groups, needed)
    wanted = needed[np.ix_(groups, groups)]
    np.testing.assert_array_equal(blocks[wanted], linear_kernel(X)[wanted])
    assert np.isnan(blocks[~wanted]).all()


@pytest.mark.parametrize("max_kernel", [None, 10])
def test_a_tasks_pairs_fit_on_their_blocks_as_svc(haxby_store, monkeypatch, max_kernel):
    """decode_pairs on a task of two pairs (the kernel computed on their categories'
    blocks only) gives each pair SVC's coefficients, decisions and accuracies; so does
    libsvm's own linear kernel, taken beyond MAX_KERNEL_SAMPLES samples."""
    from nidecode import store
    from nidecode.analyses import tasks
    from nidecode.analyses.plan import PairJob
    from nidecode.analyses.tasks import decode_pairs
    from nidecode.solvers import svc

    if max_kernel is not None:
        monkeypatch.setattr(tasks, "MAX_KERNEL_SAMPLES", max_kernel)
        monkeypatch.setattr(svc, "MAX_KERNEL_SAMPLES", max_kernel)

    path = str(haxby_store["run"])
    subject = store.list_subjects(path)[0]
    design = store.read_design(path, subject)
    X = store.read_timeseries(path, subject)
    jobs = [PairJob(subject, "bottle", "face", 12), PairJob(subject, "cat", "face", 12)]
    for job, result in zip(jobs, decode_pairs(path, jobs, design.checksum, "logo", 1.0),
                           strict=True):
        keep = np.isin(design.labels, (job.class_a, job.class_b))
        folds = make_folds(design.runs[keep], "logo")
        for index, fold in enumerate(folds):
            svc = SVC(kernel="linear").fit(X[keep][fold.train], design.labels[keep][fold.train])
            np.testing.assert_array_equal(result.coef[index], svc.coef_[0])
            assert result.accuracy[index] == svc.score(X[keep][fold.test],
                                                       design.labels[keep][fold.test])


# In a fresh process: the kernel's dot products against scipy's ddot, and numba's cache.
KERNEL_SCRIPT = """
import numpy as np
from scipy.linalg.blas import ddot
from nidecode.solvers import svc
X = np.random.default_rng(0).standard_normal((20, 300))
K = svc.linear_kernel(X)
same = all(K[i, j] == ddot(X[i], X[j]) for i in range(20) for j in range(20))
print(same, len(svc._ddot_kernel.stats.cache_hits))
"""


@pytest.mark.slow
def test_cached_kernel_calls_ddot_in_a_new_process(tmp_path):
    """The compiled kernel is cached and, loaded by another process (scipy's BLAS at
    another address), still computes ddot's values: the call goes by symbol name."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", KERNEL_SCRIPT], env=env, check=True,
                           capture_output=True, text=True).stdout.split() for _ in range(2)]
    assert runs == [["True", "0"], ["True", "1"]]
