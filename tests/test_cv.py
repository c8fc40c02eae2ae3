"""Cross-validation splits equal scikit-learn's; leave-one-run-out invariants."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.model_selection import KFold, LeaveOneGroupOut

from nidecode.cv import make_folds, parse_cv
from nidecode.errors import InputError


def test_logo_equals_sklearn_and_names_folds_by_run():
    runs = np.array([3, 3, 1, 1, 7, 7, 1])
    folds = make_folds(runs, "logo")
    assert [fold.fold for fold in folds] == [1, 3, 7]
    for fold, (train, test) in zip(folds, LeaveOneGroupOut().split(runs, groups=runs),
                                   strict=True):
        np.testing.assert_array_equal(fold.train, train)
        np.testing.assert_array_equal(fold.test, test)
        assert set(runs[fold.test]) == {fold.fold}


def test_kfold_equals_sklearn_without_shuffle():
    runs = np.zeros(23, dtype=int)
    folds = make_folds(runs, "kfold:5")
    assert [fold.fold for fold in folds] == [0, 1, 2, 3, 4]
    for fold, (_, test) in zip(folds, KFold(5).split(runs), strict=True):
        np.testing.assert_array_equal(fold.test, test)


@pytest.mark.parametrize("text", ["loso", "kfold", "kfold:1", "kfold:x", ""])
def test_bad_cv_is_an_input_error(text):
    with pytest.raises(InputError, match="'cv' parameter of parse_cv must be 'logo'"):
        parse_cv(text)


@given(st.lists(st.integers(0, 6), min_size=2, max_size=60).filter(lambda r: len(set(r)) > 1))
def test_logo_tests_every_scan_once_and_never_trains_on_it(runs):
    runs = np.array(runs)
    folds = make_folds(runs, "logo")
    tested = np.concatenate([fold.test for fold in folds])
    np.testing.assert_array_equal(np.sort(tested), np.arange(len(runs)))
    for fold in folds:
        assert not set(fold.train) & set(fold.test)
        assert not set(runs[fold.train]) & set(runs[fold.test])
        assert len(fold.train) + len(fold.test) == len(runs)
