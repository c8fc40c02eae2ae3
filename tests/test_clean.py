"""Cleaning equals nilearn; z-scores are what they claim to be."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nidecode.clean import clean_signal, constant_voxels, drop_dummy_scans
from nidecode.errors import InputError


def test_drop_dummy_scans_drops_the_start_of_each_run():
    runs = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    keep = drop_dummy_scans(runs, 2)
    np.testing.assert_array_equal(np.flatnonzero(~keep), [0, 1, 4, 5, 7, 8])
    assert drop_dummy_scans(runs, 0).all()
    with pytest.raises(InputError, match="'drop_scans' parameter of drop_dummy_scans must "
                                         "be an int >= 0"):
        drop_dummy_scans(runs, -1)


def test_global_standardization_matches_nifti_masker_formula():
    rng = np.random.default_rng(0)
    X = rng.normal(5, 3, size=(40, 7)).astype(np.float32)
    cleaned = clean_signal(X, np.repeat([0, 1], 20), standardize="global")
    expected = (X - X.mean(0)) / X.std(0, ddof=1)
    np.testing.assert_allclose(cleaned, expected, rtol=1e-5, atol=1e-5)
    assert cleaned.dtype == np.float32


def test_detrend_removes_a_linear_trend_per_run():
    runs = np.repeat([0, 1], 50)
    trend = np.concatenate([np.arange(50.0), 100 - 2 * np.arange(50.0)])
    X = np.column_stack([trend, trend * 3 + 1])
    cleaned = clean_signal(X, runs, standardize="none", detrend=True)
    np.testing.assert_allclose(cleaned, 0, atol=1e-9)


def test_constant_voxel_becomes_zero_not_nan():
    runs = np.repeat([0, 1], 10)
    X = np.random.default_rng(1).normal(size=(20, 3))
    X[:10, 1] = 4.0  # constant in run 0 only
    cleaned = clean_signal(X, runs, standardize="run")
    assert np.isfinite(cleaned).all()
    np.testing.assert_array_equal(cleaned[:10, 1], 0)
    np.testing.assert_array_equal(constant_voxels(X, runs), [False, True, False])


def test_unknown_mode_is_an_input_error():
    with pytest.raises(InputError, match="standardize"):
        clean_signal(np.zeros((4, 2)), np.zeros(4, int), standardize="zscore")


@settings(max_examples=40, deadline=None)
@given(data=arrays(np.float64, st.tuples(st.integers(6, 30), st.integers(1, 5)),
                   elements=st.floats(-1e3, 1e3)),
       n_runs=st.integers(1, 3))
def test_per_run_zscores_have_mean_0_and_sd_1(data, n_runs):
    runs = np.arange(len(data)) * n_runs // len(data)
    cleaned = clean_signal(data, runs, standardize="run")
    for run in np.unique(runs):
        block, raw = cleaned[runs == run], data[runs == run]
        varying = raw.std(axis=0, ddof=1) > 1e-6 * (1 + np.abs(raw).max(axis=0))
        np.testing.assert_allclose(block.mean(axis=0), 0, atol=1e-6)
        np.testing.assert_allclose(block[:, varying].std(axis=0, ddof=1), 1, rtol=1e-6)



@pytest.mark.parametrize(("standardize", "detrend"), [("run", False), ("run", True),
                                                       ("none", True), ("global", False)])
@pytest.mark.parametrize("with_confounds", [False, True])
def test_runs_in_any_order_keep_every_scan_in_its_row(standardize, detrend, with_confounds):
    # Run blocks in file order 10, 2, 7 (not ascending): each scan must come
    # back in its own row, cleaned within its own run, as if the blocks were
    # sorted. (Global detrending follows the time order: not comparable.)
    rng = np.random.default_rng(3)
    sizes, ids = [7, 5, 6], [10, 2, 7]
    runs = np.repeat(ids, sizes)
    X = rng.normal(size=(len(runs), 4)) + np.repeat([[0.0], [50.0], [-20.0]], sizes, axis=0)
    confounds = rng.normal(size=(len(runs), 2)) if with_confounds else None
    order = np.argsort(runs, kind="stable")
    sorted_clean = clean_signal(X[order], runs[order], standardize, detrend,
                                None if confounds is None else confounds[order])
    expected = np.empty_like(sorted_clean)
    expected[order] = sorted_clean
    cleaned = clean_signal(X, runs, standardize, detrend, confounds)
    np.testing.assert_allclose(cleaned, expected, rtol=1e-12, atol=1e-12)
    if standardize == "run":
        for run in ids:
            np.testing.assert_allclose(cleaned[runs == run].mean(axis=0), 0, atol=1e-9)
