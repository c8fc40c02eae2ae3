"""The ROI decode's fits call libsvm as SVC does: bit-identical fits and predictions."""

import numpy as np
import pytest
from sklearn.svm import SVC

from nidecode.cv import make_folds
from nidecode.solvers.svc import cross_validate_svc


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
