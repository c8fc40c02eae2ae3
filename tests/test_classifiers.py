"""Issue #17: classifiers beyond the SVM (shrinkage LDA, naive Bayes, logistic regression)."""

import json
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.decoding import SearchLight as NilearnSearchLight
from sklearn.base import clone
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import LeaveOneGroupOut, cross_validate
from sklearn.naive_bayes import GaussianNB
from sklearn.svm import SVC

from nidecode import store
from nidecode.analyses.decode import decode
from nidecode.cli import main
from nidecode.cv import make_folds
from nidecode.errors import ParameterError
from nidecode.outdir import weights_name
from nidecode.solvers import SPHERE_SOLVERS, sphere_solver
from nidecode.solvers.estimators import (
    cross_validate_estimator,
    decision_values,
    linear_weights,
    make_estimator,
)
from nidecode.solvers.reference import searchlight_accuracies, searchlight_scores_estimator
from tests.conftest import one_line_error, tiny_subject

METRICS = ["accuracy", "balanced_accuracy", "roc_auc"]
# The estimators of issue #17, exactly.
ESTIMATORS = {"lda": LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"),
              "gnb": GaussianNB(), "logreg": LogisticRegression()}


def _face_cat(path):
    """The stored face and cat scans of the real slice (as decode reads them)."""
    (subject, design), = store.read_designs(path).items()
    selected = np.isin(design.labels, ("face", "cat"))
    X = store.read_timeseries(path, subject)[selected]
    return subject, X, design.labels[selected], design.runs[selected]


def _cli_decode(path, out, client, classifier, *extra):
    status = main(["decode", str(path), "--out", str(out), "--categories", "face,cat",
                   "--classifier", classifier, "--scoring", ",".join(METRICS), *extra,
                   "--quiet", "--scheduler", client.scheduler.address])
    assert status == 0
    return pd.read_csv(out / "scores.csv")


@pytest.mark.slow
@pytest.mark.parametrize("classifier", ["lda", "gnb", "logreg"])
def test_decode_equals_sklearn_cross_validate_on_the_real_slice(haxby_store, client, tmp_path,
                                                                 classifier):
    path = haxby_store["run"]
    subject, X, y, runs = _face_cat(path)
    estimator = ESTIMATORS[classifier]
    expected = cross_validate(estimator, X, y, cv=LeaveOneGroupOut(), groups=runs,
                              scoring=METRICS, return_estimator=True)
    scores = _cli_decode(path, tmp_path / "out", client, classifier)
    assert len(scores) == 12
    # Every fold of every classifier: the same predictions as scikit-learn's.
    for metric in ("accuracy", "balanced_accuracy"):
        np.testing.assert_array_equal(scores[metric], expected[f"test_{metric}"])
    folds = list(LeaveOneGroupOut().split(X, y, runs))
    if classifier == "gnb":
        # Ours ranks the log-probability ratio; scikit-learn's scorer predict_proba, which
        # saturates at 0 and 1 (ties): they differ on 5 of the 12 folds, each with ties.
        for fold, ((_, test), model) in enumerate(zip(folds, expected["estimator"],
                                                      strict=True)):
            joint = model.predict_joint_log_proba(X[test])
            assert scores["roc_auc"][fold] == pytest.approx(
                roc_auc_score(y[test], joint[:, 1] - joint[:, 0]), abs=1e-12)
        differ = ~np.isclose(scores["roc_auc"], expected["test_roc_auc"], rtol=0, atol=1e-12)
        assert differ.sum() == 5
        for fold in np.flatnonzero(differ):
            probabilities = expected["estimator"][fold].predict_proba(X[folds[fold][1]])[:, 1]
            assert len(np.unique(probabilities)) < len(probabilities)
    else:
        np.testing.assert_allclose(scores["roc_auc"], expected["test_roc_auc"], rtol=0,
                                   atol=1e-12)
    # The weights map: the fold mean of the weights (coef_; naive Bayes: the linear term).
    mean = np.mean([linear_weights(model, X.shape[1])[0] for model in expected["estimator"]],
                   axis=0)
    mask, _ = store.read_geometry(path, subject)
    image = nib.load(tmp_path / "out" / weights_name(subject, "cat", "face"))
    np.testing.assert_allclose(np.asarray(image.dataobj)[mask], mean, rtol=1e-5,
                               atol=1e-6 * np.abs(mean).max())
    manifest = json.loads((tmp_path / "out" / "run.json").read_text())
    assert manifest["identity"]["classifier"] == classifier
    assert manifest["identity"]["shrinkage"] == ("auto" if classifier == "lda" else None)
    if classifier != "logreg":  # the report names the classifier and its weights
        assert main(["report", str(tmp_path / "out"), "--quiet"]) == 0
        text = (tmp_path / "out" / "report.html").read_text()
        assert REPORTED[classifier] in text


REPORTED = {"lda": "shrinkage LDA (LinearDiscriminantAnalysis(solver=&#x27;lsqr&#x27;)), "
                   "shrinkage auto.",
            "gnb": "Fold-mean Gaussian naive Bayes (the linear term of its log-probability "
                   "ratio, docs/patterns.md) weights of haxby2001_slice"}


def test_fold_fits_equal_the_sklearn_estimators(haxby_store):
    """cross_validate_estimator: coef_, decision values and predictions of each fold."""
    _, X, y, runs = _face_cat(haxby_store["run"])
    folds = make_folds(runs, "logo")[:3]
    for classifier in ("lda", "gnb", "logreg"):
        scores = cross_validate_estimator(X, y, folds, make_estimator(classifier),
                                          extra=[X[:4]] * len(folds))
        for index, fold in enumerate(folds):
            model = clone(ESTIMATORS[classifier]).fit(X[fold.train], y[fold.train])
            predicted = np.unique(y)[scores.predicted[index].astype(int)]
            np.testing.assert_array_equal(predicted, model.predict(X[fold.test]))
            np.testing.assert_array_equal(scores.test_decision[index],
                                          decision_values(model, X[fold.test]))
            np.testing.assert_array_equal(scores.decision[index], decision_values(model, X[:4]))
            if classifier != "gnb":
                np.testing.assert_array_equal(scores.coef[index], model.coef_[0])
                np.testing.assert_array_equal(scores.decision[index],
                                              model.decision_function(X[:4]))


def test_naive_bayes_weights_are_the_gradient_of_its_log_ratio_at_zero():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)) * [1.0, 2.0, 0.5]
    y = np.repeat(["a", "b"], 20)
    X[y == "b"] += [0.5, -1.0, 0.2]
    X[y == "b"] *= [1.5, 0.7, 1.0]  # unequal variances: a quadratic log-probability ratio
    model = GaussianNB().fit(X, y)
    coef, intercept = linear_weights(model, 3)
    np.testing.assert_allclose(coef, model.theta_[1] / model.var_[1]
                               - model.theta_[0] / model.var_[0])
    step = 1e-5
    gradient = [(decision_values(model, step * np.eye(3)[[j]])[0]
                 - decision_values(model, -step * np.eye(3)[[j]])[0]) / (2 * step)
                for j in range(3)]
    np.testing.assert_allclose(gradient, coef, rtol=1e-6)
    log_ratio = model.predict_log_proba(np.zeros((1, 3)))[0]
    assert intercept == pytest.approx(log_ratio[1] - log_ratio[0])


@pytest.fixture(scope="module")
def few_spheres(face_cat):
    """Every 53rd sphere of the real slice (10 centres), in nilearn's set-up."""
    centres = np.arange(face_cat["spheres"].shape[0])[::53]
    mask = np.asarray(face_cat["mask_img"].dataobj) != 0
    process = np.zeros(mask.sum(), bool)
    process[centres] = True
    volume = np.zeros(mask.shape, np.uint8)
    volume[mask] = process
    return centres, nib.Nifti1Image(volume, face_cat["mask_img"].affine)


@pytest.mark.slow
def test_logreg_searchlight_equals_nilearn_on_a_few_spheres(face_cat, few_spheres):
    centres, process_mask = few_spheres
    light = NilearnSearchLight(mask_img=face_cat["mask_img"], process_mask_img=process_mask,
                               radius=5.6, estimator=LogisticRegression(),
                               cv=LeaveOneGroupOut())
    imgs = face_cat["masker"].inverse_transform(face_cat["X"])
    with warnings.catch_warnings():  # "Use a custom estimator at your own risk": on purpose
        warnings.simplefilter("ignore")
        light.fit(imgs, face_cat["y"], groups=face_cat["runs"])
    mask = np.asarray(face_cat["mask_img"].dataobj) != 0
    expected = light.scores_[mask][centres]
    fit = sphere_solver("logreg", "batched", C=1.0)
    ours = fit(face_cat["X"], face_cat["y"], face_cat["spheres"][centres], face_cat["folds"])
    assert ours.shape == (10, 12)
    np.testing.assert_allclose(ours.mean(axis=1), expected, rtol=0, atol=1e-12)


def test_generic_sphere_path_with_svc_is_the_sklearn_solver(face_cat):
    """The sklearn solver is the generic path with SVC: the same accuracies and decisions."""
    spheres = face_cat["spheres"][:3]
    args = (face_cat["X"], face_cat["y"], spheres, face_cat["folds"])
    accuracy, decisions = searchlight_accuracies(*args, C=0.5, return_decisions=True)
    generic, generic_decisions = searchlight_scores_estimator(
        *args, SVC(kernel="linear", C=0.5), return_decisions=True)
    np.testing.assert_array_equal(accuracy, generic)
    np.testing.assert_array_equal(decisions, generic_decisions)
    assert sphere_solver("svc", "sklearn", C=0.5).func is SPHERE_SOLVERS["sklearn"]


def test_sphere_tasks_fit_the_classifier(haxby_store):
    """searchlight_spheres and permutation_sphere_accuracies (observed labels) with gnb:
    cross_val_score of GaussianNB on each sphere's stored voxels."""
    from sklearn.model_selection import cross_val_score

    from nidecode.analyses._prepare import subject_geometry
    from nidecode.analyses.tasks import permutation_sphere_accuracies, searchlight_spheres
    from nidecode.spheres import batch_voxel_block

    path = str(haxby_store["run"])
    subject, X, y, runs = _face_cat(path)
    checksum = store.read_designs(path)[subject].checksum
    geometry = subject_geometry(path, subject, 5.6, None, checksum)
    voxels, spheres = batch_voxel_block(geometry.spheres, slice(100, 104))
    light, = searchlight_spheres(path, [(subject, "cat", "face", "000000")], checksum, voxels,
                                 spheres, "logo", 1.0, "batched", classifier="gnb")
    permuted = permutation_sphere_accuracies(path, (subject, "cat", "face", "000000", "00000"),
                                             checksum, voxels, spheres, "logo", 1.0, 0, [-1, 0],
                                             "batched", classifier="gnb")
    expected = [cross_val_score(GaussianNB(), X[:, np.sort(sphere.indices)], y,
                                cv=LeaveOneGroupOut(), groups=runs)
                for sphere in geometry.spheres[100:104]]
    np.testing.assert_array_equal(light.accuracy, expected)
    np.testing.assert_array_equal(permuted.accuracy[0], light.accuracy.mean(axis=1))
    assert not np.array_equal(permuted.accuracy[1], permuted.accuracy[0])
    # The closed form's many-labellings path is the per-sphere estimator's permutation too.
    generic = permutation_sphere_accuracies(path, (subject, "cat", "face", "000000", "00000"),
                                            checksum, voxels, spheres, "logo", 1.0, 0, [-1, 0],
                                            "sklearn", classifier="gnb")
    np.testing.assert_array_equal(permuted.accuracy, generic.accuracy)


@pytest.mark.slow
def test_lda_permutations_observe_decode_accuracy(haxby_store, client, tmp_path):
    path = haxby_store["run"]
    scores = _cli_decode(path, tmp_path / "decode", client, "lda", "--shrinkage", "0.3")
    status = main(["permute", str(path), "--out", str(tmp_path / "perm"), "--categories",
                   "face,cat", "--classifier", "lda", "--shrinkage", "0.3",
                   "--n-permutations", "3", "--quiet", "--scheduler", client.scheduler.address])
    assert status == 0
    pvalues = pd.read_csv(tmp_path / "perm" / "permutations" / "pvalues.csv")
    assert pvalues["accuracy"].iloc[0] == pytest.approx(scores["accuracy"].mean(), abs=1e-12)
    _, X, y, runs = _face_cat(path)
    expected = cross_validate(LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.3), X, y,
                              cv=LeaveOneGroupOut(), groups=runs)
    np.testing.assert_array_equal(scores["accuracy"], expected["test_score"])


@pytest.mark.slow
def test_gnb_searchlight_records_the_classifier_and_the_report_names_it(
        haxby_store, client, tmp_path, few_spheres, face_cat):
    process_mask = tmp_path / "process.nii.gz"
    nib.save(few_spheres[1], process_mask)
    out = tmp_path / "light"
    status = main(["searchlight", str(haxby_store["run"]), "--out", str(out), "--radius", "5.6",
                   "--categories", "face,cat", "--classifier", "gnb", "--solver", "sklearn",
                   "--process-mask", str(process_mask), "--quiet",
                   "--scheduler", client.scheduler.address])
    assert status == 0
    identity = json.loads((out / "run.json").read_text())["identity"]
    assert (identity["classifier"], identity["solver"]) == ("gnb", "sklearn")
    table = pd.read_csv(out / "searchlight.csv")
    assert table["n_spheres"].iloc[0] == 10
    assert main(["report", str(out), "--quiet"]) == 0
    assert "Gaussian naive Bayes (GaussianNB())" in (out / "report.html").read_text()


@pytest.mark.parametrize(("argv", "message"), [
    (["--classifier", "knn"], r"--classifier knn: must be one of 'svc', 'lda', 'gnb', 'logreg'$"),
    (["--classifier", "lda", "--shrinkage", "1.5"],
     r"--shrinkage 1.5: must be 'auto' or a float in the range \[0, 1\]$"),
    (["--classifier", "lda", "--shrinkage", "-0.1"], r"--shrinkage -0.1: must be 'auto' or "),
    (["--classifier", "lda", "--shrinkage", "ledoit"], r"--shrinkage ledoit: must be 'auto' "),
    (["--classifier", "lda", "--shrinkage", "nan"], r"--shrinkage nan: must be 'auto' "),
    (["--shrinkage", "0.5"], r"--shrinkage 0.5: must be left unset unless classifier is 'lda'; "
                             r"'svc' has no shrinkage"),
    (["--classifier", "gnb", "--shrinkage", "auto"], r"--shrinkage auto: must be left unset "),
    (["--classifier", "lda", "--class-weight", "balanced"],
     r"--class-weight balanced: must be 'none' with classifier 'lda'; LDA and naive Bayes take "
     r"no class weights"),
    (["--classifier", "gnb", "--class-weight", "balanced"],
     r"--class-weight balanced: must be 'none' with classifier 'gnb'"),
])
@pytest.mark.parametrize("command", ["decode", "permute", "searchlight"])
def test_bad_classifier_options_are_one_line(haxby_store, tmp_path, capsys, argv, message,
                                             command):
    extra = {"decode": [], "permute": ["--n-permutations", "5"],
             "searchlight": ["--radius", "5"]}[command]
    status = main([command, str(haxby_store["run"]), "--out", str(tmp_path / "out"), *extra,
                   *argv])
    one_line_error(capsys, status, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["permute", "searchlight"])
def test_libsvm_solver_is_refused_for_other_classifiers(haxby_store, tmp_path, capsys, command):
    extra = ["--n-permutations", "5"] if command == "permute" else ["--radius", "5"]
    status = main([command, str(haxby_store["run"]), "--out", str(tmp_path / "out"), *extra,
                   "--classifier", "logreg", "--solver", "libsvm"])
    one_line_error(capsys, status, r"--solver libsvm: must be 'batched' or 'sklearn' with "
                                   r"classifier 'logreg'; libsvm is the SVM's solver")


@pytest.mark.parametrize(("options", "match"), [
    ({"classifier": "SVC"}, "'classifier' parameter of decode must be one of 'svc'"),
    ({"classifier": "lda", "shrinkage": 2}, "'shrinkage' parameter of decode must be 'auto' or"),
    ({"classifier": "lda", "shrinkage": True}, "'shrinkage' parameter of decode"),
    ({"classifier": "logreg", "shrinkage": 0.1}, "'shrinkage' parameter of decode must be left"),
    ({"classifier": "gnb", "class_weight": "balanced"}, "'class_weight' parameter of decode"),
])
def test_bad_classifier_options_in_the_api(haxby_store, tmp_path, options, match):
    with pytest.raises(ParameterError, match=match):
        decode(haxby_store["run"], tmp_path / "out", None, **options)
    assert not (tmp_path / "out").exists()


def test_the_raw_bold_warning_is_for_the_svm_only(tmp_path):
    """Raw BOLD makes C = 1 a near hard-margin SVM; LDA and naive Bayes have no C."""
    from nidecode.analyses.permute import prepare_permute
    from nidecode.analyses.searchlight import prepare_searchlight
    from nidecode.errors import NidecodeWarning
    from nidecode.ingest import ingest

    ingest([tiny_subject(tmp_path / "sub01")], tmp_path / "s.zarr", "mask4_vt",
           standardize="none")
    with pytest.warns(NidecodeWarning, match="--standardize none"):
        prepare_searchlight(tmp_path / "s.zarr", tmp_path / "svc", radius=5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NidecodeWarning)
        prepare_searchlight(tmp_path / "s.zarr", tmp_path / "gnb", radius=5.0, classifier="gnb")
        prepare_permute(tmp_path / "s.zarr", tmp_path / "lda", n_permutations=5, radius=5.0,
                        classifier="lda")


@pytest.mark.parametrize(("classifier", "solver", "per_task"),
                         [("gnb", "batched", 50), ("lda", "batched", 50),
                          ("gnb", "sklearn", 5), ("svc", "batched", 5)])
def test_closed_form_searchlight_permutations_take_more_labellings_a_task(
        haxby_store, tmp_path, classifier, solver, per_task):
    from nidecode.analyses.permute import prepare_permute

    run = prepare_permute(haxby_store["run"], tmp_path / "o", n_permutations=100,
                          categories=["face", "cat"], radius=5.6, classifier=classifier,
                          solver=solver)
    assert run.tasks.per_task == per_task
