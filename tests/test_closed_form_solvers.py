"""Closed-form searchlight solvers (GaussianNB, shrinkage LDA) against scikit-learn, nilearn."""

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import KFold, LeaveOneGroupOut, cross_val_score
from sklearn.naive_bayes import GaussianNB

from nidecode import SearchLight
from nidecode.errors import InputError
from nidecode.solvers import gnb, lda
from nidecode.synth import make_subject

RADIUS = 5.6


def _estimator(kind, shrinkage="auto"):
    if kind == "gnb":
        return GaussianNB()
    return LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage)


def _solve(kind, X, y, spheres, folds, shrinkage="auto", **kwargs):
    if kind == "gnb":
        return gnb.searchlight_accuracies(X, y, spheres, folds, **kwargs)
    return lda.searchlight_accuracies(X, y, spheres, folds, shrinkage=shrinkage, **kwargs)


def _reference(kind, X, y, spheres, folds, shrinkage="auto"):
    """Fold accuracies and test decisions of the scikit-learn estimator, sphere by sphere."""
    accuracies = np.empty((spheres.shape[0], len(folds)))
    decisions = np.full((spheres.shape[0], len(y)), np.nan)
    for s in range(spheres.shape[0]):
        Xs = X[:, np.sort(spheres[s].indices)]
        accuracies[s] = cross_val_score(_estimator(kind, shrinkage), Xs, y, cv=folds)
        for train, test in folds:
            model = _estimator(kind, shrinkage).fit(Xs[train], y[train])
            if kind == "gnb":
                jll = model.predict_joint_log_proba(Xs[test])
                decisions[s, test] = jll[:, 1] - jll[:, 0]
            else:
                decisions[s, test] = model.decision_function(Xs[test])
    return accuracies, decisions


def _random_problem(seed, n_scans=40, n_voxels=12, n_spheres=8, shift=5.0):
    """Random data with uneven classes, a class effect and random spheres."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n_scans) < 0.35, "b", "a")
    y[:2] = ["a", "b"]
    X = rng.normal(size=(n_scans, n_voxels)) * rng.uniform(0.5, 3, n_voxels) + shift
    X[y == "b"] += rng.normal(scale=0.8, size=n_voxels)
    dense = rng.random((n_spheres, n_voxels)) < 0.4
    dense[np.arange(n_spheres), rng.integers(0, n_voxels, n_spheres)] = True
    return X, y, sp.csr_matrix(dense)


@pytest.mark.parametrize("kind, shrinkage", [("gnb", None), ("lda", "auto"), ("lda", 0.0),
                                             ("lda", 1.0), ("lda", 0.3)])
def test_solvers_equal_scikit_learn_on_shuffled_kfold(kind, shrinkage):
    X, y, spheres = _random_problem(0)
    # Shuffled 5-fold, and folds leaving scans out of both sets (uneven classes).
    folds = list(KFold(5, shuffle=True, random_state=1).split(X))
    folds.append((np.arange(3, 30), np.arange(30, 38)))
    accuracies, decisions = _solve(kind, X, y, spheres, folds, shrinkage, return_decisions=True)
    expected, expected_decisions = _reference(kind, X, y, spheres, folds, shrinkage)
    np.testing.assert_array_equal(accuracies, expected)
    # The last fold tests scans 30..37 again: both keep the last fold's decision.
    np.testing.assert_allclose(decisions, expected_decisions, rtol=1e-9, atol=1e-9)
    # One fold alone: scans 0-2 unused (the data are centred on the used ones), and
    # the decisions of scans no fold tests are NaN.
    accuracies, decisions = _solve(kind, X, y, spheres, folds[-1:], shrinkage,
                                   return_decisions=True)
    np.testing.assert_array_equal(accuracies, expected[:, -1:])
    np.testing.assert_allclose(decisions[:, 30:38], expected_decisions[:, 30:38], rtol=1e-9)
    assert np.isnan(np.delete(decisions, np.arange(30, 38), axis=1)).all()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_scans=st.integers(12, 30),
       n_voxels=st.integers(1, 9), kind=st.sampled_from(["gnb", "lda"]))
def test_solvers_equal_scikit_learn_on_random_inputs(seed, n_scans, n_voxels, kind):
    X, y, spheres = _random_problem(seed, n_scans, n_voxels, n_spheres=3, shift=0.0)
    folds = list(KFold(3, shuffle=True, random_state=seed % 1000).split(X))
    if any(min(np.sum(y[train] == "a"), np.sum(y[train] == "b")) < 3 for train, _ in folds):
        return  # classes of < 3 training scans: degenerate covariances (one class: an error)
    accuracies, decisions = _solve(kind, X, y, spheres, folds, return_decisions=True)
    expected, expected_decisions = _reference(kind, X, y, spheres, folds)
    near_tie = np.zeros_like(expected, dtype=bool)
    for f, (_, test) in enumerate(folds):
        near_tie[:, f] = (np.abs(expected_decisions[:, test]) < 1e-9).any(axis=1)
    np.testing.assert_array_equal(accuracies[~near_tie], expected[~near_tie])
    np.testing.assert_allclose(decisions, expected_decisions, rtol=1e-7, atol=1e-8)


@pytest.fixture(scope="module")
def face_house(haxby_slice_dir):
    """The real slice's face and house scans as a float64 image, its mask, labels, runs."""
    bold = nib.load(haxby_slice_dir / "bold.nii.gz")
    labels = pd.read_csv(haxby_slice_dir / "labels.txt", sep=" ")
    keep = labels["labels"].isin(["face", "house"]).to_numpy()
    data = np.asarray(bold.dataobj, dtype=np.float64)[..., keep]
    return {"imgs": nib.Nifti1Image(data, bold.affine),
            "mask": nib.load(haxby_slice_dir / "mask.nii.gz"),
            "y": labels["labels"].to_numpy()[keep], "runs": labels["chunks"].to_numpy()[keep]}


def _every_nth_voxel(mask_img, step):
    mask = np.asarray(mask_img.dataobj) != 0
    flat = np.flatnonzero(mask)
    process = np.zeros(mask.size, dtype=np.uint8)
    process[flat[::step]] = 1
    return nib.Nifti1Image(process.reshape(mask.shape), mask_img.affine)


def _compare_with_nilearn(imgs, mask_img, y, runs, estimator, method, step, scoring=None):
    """Fraction of centres where both maps agree; nidecode's path is the closed form."""
    from nilearn.decoding import SearchLight as NilearnSearchLight

    process = _every_nth_voxel(mask_img, step)
    ours = SearchLight(mask_img, process_mask_img=process, radius=RADIUS, estimator=estimator,
                       cv=LeaveOneGroupOut(), scoring=scoring).fit(imgs, y, groups=runs)
    assert ours.method_ == method
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = NilearnSearchLight(mask_img, process_mask_img=process, radius=RADIUS,
                                    estimator=estimator, cv=LeaveOneGroupOut(),
                                    scoring=scoring).fit(imgs, y, groups=runs)
    centres = np.asarray(process.dataobj) != 0
    equal = np.isclose(ours.scores_[centres], theirs.scores_[centres], rtol=0, atol=1e-12)
    return int(equal.sum()), int(centres.sum())


@pytest.mark.slow
@pytest.mark.parametrize("kind, scoring", [("gnb", None), ("lda", None), ("gnb", "roc_auc"),
                                           ("lda", "balanced_accuracy")])
def test_maps_equal_nilearn_on_the_real_slice(face_house, kind, scoring):
    equal, total = _compare_with_nilearn(face_house["imgs"], face_house["mask"], face_house["y"],
                                         face_house["runs"], _estimator(kind), kind, step=6,
                                         scoring=scoring)
    print(f"{kind} {scoring}: {equal}/{total} centres equal nilearn's")
    assert equal >= 0.995 * total


@pytest.fixture(scope="module")
def anisotropic_subject():
    """A small synthetic subject: 3.5 x 3.75 x 3.75 mm voxels, flipped x axis."""
    subject = make_subject(seed=5, shape=(10, 12, 8), n_runs=4, scans_per_run=40,
                           block_length=4)
    assert subject.bold.affine[0, 0] < 0
    keep = subject.labels["labels"].isin(["face", "house"]).to_numpy()
    data = np.asarray(subject.bold.dataobj, dtype=np.float64)[..., keep]
    return {"imgs": nib.Nifti1Image(data, subject.bold.affine), "mask": subject.brain_mask,
            "y": subject.labels["labels"].to_numpy()[keep],
            "runs": subject.labels["chunks"].to_numpy()[keep]}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gnb", "lda"])
def test_maps_equal_nilearn_on_an_anisotropic_flipped_subject(anisotropic_subject, kind):
    s = anisotropic_subject
    equal, total = _compare_with_nilearn(s["imgs"], s["mask"], s["y"], s["runs"],
                                         _estimator(kind), kind, step=3)
    print(f"{kind}: {equal}/{total} centres equal nilearn's")
    assert equal >= 0.995 * total


@pytest.mark.parametrize("estimator, method", [
    (GaussianNB(), "gnb"), (GaussianNB(var_smoothing=1e-3), "gnb"),
    (GaussianNB(priors=[0.5, 0.5]), "generic"),
    (LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"), "lda"),
    (LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.3), "lda"),
    (LinearDiscriminantAnalysis(solver="lsqr"), "generic"),
    (LinearDiscriminantAnalysis(), "generic"),
    (LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto", priors=[0.2, 0.8]), "generic"),
])
def test_searchlight_routes_closed_form_estimators(estimator, method):
    from nidecode.decoding import _method

    y = np.array(["a", "b"] * 4)
    assert _method(estimator, None, y, "batched") == method
    assert _method(estimator, "roc_auc", y, "batched") == method
    assert _method(estimator, "f1", y, "batched") == "generic"


def test_var_smoothing_is_passed_on():
    X, y, spheres = _random_problem(3)
    X[:, 0] = np.where(y == "a", 1.0, 2.0)  # constant within each class: only epsilon
    folds = list(KFold(4).split(X))
    accuracies, decisions = gnb.searchlight_accuracies(X, y, spheres, folds, var_smoothing=1e-2,
                                                       return_decisions=True)
    for s in range(spheres.shape[0]):
        cols = np.sort(spheres[s].indices)
        expected = cross_val_score(GaussianNB(var_smoothing=1e-2), X[:, cols], y, cv=folds)
        np.testing.assert_array_equal(accuracies[s], expected)
    assert np.isfinite(decisions).all()


@pytest.mark.parametrize("shrinkage", [-0.1, 1.5, "ledoit", float("nan"), True])
def test_lda_rejects_bad_shrinkage(shrinkage):
    X, y, spheres = _random_problem(0)
    with pytest.raises(InputError, match=r"^shrinkage must be 'auto' or a number in \[0, 1\]"):
        lda.searchlight_accuracies(X, y, spheres, list(KFold(3).split(X)), shrinkage=shrinkage)


def test_gnb_rejects_bad_var_smoothing():
    X, y, spheres = _random_problem(0)
    with pytest.raises(InputError, match="^var_smoothing must be a finite number >= 0"):
        gnb.searchlight_accuracies(X, y, spheres, list(KFold(3).split(X)), var_smoothing=-1)


@pytest.mark.parametrize("kind", ["gnb", "lda"])
def test_one_class_training_fold_is_one_input_error(kind):
    X, y, spheres = _random_problem(0)
    train = np.flatnonzero(y == "a")
    folds = [(train, np.flatnonzero(y == "b"))]
    with pytest.raises(InputError, match="^fold 0: its training scans are all of one class"):
        _solve(kind, X, y, spheres, folds)


@pytest.mark.parametrize("kind", ["gnb", "lda"])
def test_permutation_accuracies_equal_one_call_per_label_vector(kind):
    from nidecode.stats import permute_within_runs

    X, y, spheres = _random_problem(4, n_scans=48)
    runs = np.repeat(np.arange(4), 12)
    y = np.tile(np.repeat(["a", "b", "a", "b"], 3), 4)
    folds = list(LeaveOneGroupOut().split(X, y, runs))
    rng = np.random.default_rng(0)
    label_sets = np.stack([y] + [permute_within_runs(y, runs, rng) for _ in range(3)])
    module = {"gnb": gnb, "lda": lda}[kind]
    stacked = module.permutation_accuracies(X, label_sets, spheres, folds)
    assert stacked.shape == (4, spheres.shape[0], len(folds))
    for labels, accuracies in zip(label_sets, stacked, strict=True):
        np.testing.assert_array_equal(accuracies, _solve(kind, X, labels, spheres, folds))
    assert not np.array_equal(stacked[0], stacked[1])  # the permutations changed something


def test_permutation_accuracies_reject_label_sets_of_other_classes():
    X, y, spheres = _random_problem(0)
    folds = list(KFold(3).split(X))
    with pytest.raises(InputError, match=r"^label_sets has shape \(40,\); expected"):
        gnb.permutation_accuracies(X, y, spheres, folds)
    with pytest.raises(InputError, match="^label_sets: every row must hold the same two"):
        gnb.permutation_accuracies(X, np.stack([y, np.where(y == "a", "c", "b")]), spheres,
                                   folds)


def test_lda_without_shrinkage_on_more_voxels_than_scans_is_least_squares():
    # 15 training scans, up to 30 voxels: the pooled covariance is singular and
    # scikit-learn's lstsq gives the minimum-norm solution (Cholesky would not fail
    # on rounding and would return a huge weight vector).
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 30))
    y = np.tile([0, 1], 10)
    X[y == 1, :3] += 1
    spheres = sp.csr_matrix(rng.random((3, 30)) < [[1.0], [0.7], [0.2]])
    folds = list(KFold(4, shuffle=True, random_state=0).split(X))
    accuracies, decisions = lda.searchlight_accuracies(X, y, spheres, folds, shrinkage=0.0,
                                                       return_decisions=True)
    expected, expected_decisions = _reference("lda", X, y, spheres, folds, 0.0)
    np.testing.assert_array_equal(accuracies, expected)
    np.testing.assert_allclose(decisions, expected_decisions, rtol=1e-7, atol=1e-9)


def test_gnb_roc_auc_ranks_predict_proba_as_scikit_learn():
    # Test scans of both classes far on classes_[1]'s side: predict_proba is 1.0
    # for all (ties: AUC 0.5), while the log-likelihood ratios still differ.
    from nidecode.decoding import _closed_form_scores

    rng = np.random.default_rng(0)
    y = np.array(["a", "b"] * 20 + ["a"] * 4 + ["b"] * 4)
    X = rng.normal(size=(len(y), 40))
    X[y == "b"] += 2.0
    X[40:44] += 2.0
    folds = [(np.arange(40), np.arange(40, 48))]
    spheres = sp.csr_matrix(np.ones((1, 40)))
    expected = cross_val_score(GaussianNB(), X, y, cv=folds, scoring="roc_auc")
    assert expected[0] == 0.5
    scores = _closed_form_scores(X, y, spheres, folds, "gnb", GaussianNB(), "roc_auc")
    np.testing.assert_array_equal(scores, expected)
    _, proba = gnb.searchlight_accuracies(X, y, spheres, folds, return_proba=True)
    model = GaussianNB().fit(X[:40], y[:40])
    np.testing.assert_array_equal(proba[0, 40:], model.predict_proba(X[40:])[:, 1])
    assert np.isnan(proba[0, :40]).all()


def test_lda_zero_decision_predicts_the_first_class():
    # Class means -2 and 2, unit variances, equal priors: a test scan at 0 has a
    # decision of exactly 0, which LDA (``scores > 0``) gives to classes_[0].
    from nidecode.decoding import _closed_form_scores

    # (The scans sum to 0: the solver's centring leaves them as they are.)
    X = np.array([[-3.0], [-1.0], [1.0], [3.0], [0.0], [0.0], [5.0], [-5.0]])
    y = np.array(["a", "a", "b", "b", "a", "a", "b", "a"])
    folds = [(np.arange(4), np.arange(4, 8))]
    spheres = sp.csr_matrix(np.ones((1, 1)))
    estimator = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    _, decisions = lda.searchlight_accuracies(X, y, spheres, folds, return_decisions=True)
    # Returned as the negative float closest to zero: ">= 0 is classes_[1]" holds.
    assert decisions[0, 4] == -np.finfo(np.float64).smallest_subnormal
    for scoring in ("accuracy", "balanced_accuracy"):
        expected = cross_val_score(estimator, X, y, cv=folds, scoring=scoring)
        assert expected[0] == 1.0
        np.testing.assert_array_equal(
            _closed_form_scores(X, y, spheres, folds, "lda", estimator, scoring), expected)


@pytest.mark.slow
def test_closed_form_searchlight_on_a_cluster_equals_in_process(anisotropic_subject, client):
    s = anisotropic_subject
    maps = []
    for where in ({"client": client}, {}):
        light = SearchLight(s["mask"], radius=RADIUS, estimator=GaussianNB(),
                            cv=LeaveOneGroupOut(), **where).fit(s["imgs"], s["y"],
                                                               groups=s["runs"])
        assert light.method_ == "gnb"
        maps.append(light.scores_)
    np.testing.assert_array_equal(maps[0], maps[1])
    assert maps[0].max() > 0.6  # the planted signal
