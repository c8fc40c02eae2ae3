"""Searchlight ``--scoring`` (issue #15): decision values from the sphere solvers,
balanced accuracy and AUC maps, ``--per-fold`` images."""

import numpy as np
import pytest
from sklearn.model_selection import LeaveOneGroupOut, cross_validate
from sklearn.svm import SVC

from nidecode.solvers import SPHERE_SOLVERS
from nidecode.stats import sphere_fold_metrics
from tests.conftest import one_line_error, slice_centres

METRICS = ("accuracy", "balanced_accuracy", "roc_auc")


@pytest.fixture(scope="module")
def few_spheres(face_cat):
    """A handful of the real slice's spheres, spread over the slice."""
    spheres = face_cat["spheres"].tocsr()
    return spheres[np.linspace(0, spheres.shape[0] - 1, 8).astype(int)]


def _y01(y):
    return np.unique(y, return_inverse=True)[1]


@pytest.mark.parametrize("solver", ["batched", "libsvm", "sklearn"])
def test_decision_signs_reproduce_the_accuracies(face_cat, few_spheres, solver):
    d = face_cat
    spheres = d["spheres"] if solver != "sklearn" else few_spheres
    plain = SPHERE_SOLVERS[solver](d["X"], d["y"], spheres, d["folds"])
    accuracy, decisions = SPHERE_SOLVERS[solver](d["X"], d["y"], spheres, d["folds"],
                                                 return_decisions=True)
    np.testing.assert_array_equal(accuracy, plain)  # bit for bit
    assert decisions.shape == (spheres.shape[0], len(d["y"]))
    assert not np.isnan(decisions).any()  # leave one run out tests every scan once
    y01 = _y01(d["y"])
    for f, (_, test) in enumerate(d["folds"]):
        predicted = (decisions[:, test] >= 0).astype(int)
        np.testing.assert_array_equal((predicted == y01[test]).mean(axis=1), accuracy[:, f])


@pytest.mark.parametrize("solver,atol", [("libsvm", 1e-6), ("sklearn", 1e-12)])
def test_decisions_equal_svc_decision_function(face_cat, few_spheres, solver, atol):
    d = face_cat
    _, decisions = SPHERE_SOLVERS[solver](d["X"], d["y"], few_spheres, d["folds"],
                                          return_decisions=True)
    for s in range(few_spheres.shape[0]):
        Xs = d["X"][:, np.sort(few_spheres[s].indices)]
        for train, test in d["folds"]:
            svc = SVC(kernel="linear").fit(Xs[train], d["y"][train])
            np.testing.assert_allclose(decisions[s, test], svc.decision_function(Xs[test]),
                                       rtol=0, atol=atol)


def _reference_scores(d, spheres):
    scores = {metric: [] for metric in METRICS}
    for s in range(spheres.shape[0]):
        Xs = d["X"][:, np.sort(spheres[s].indices)]
        result = cross_validate(SVC(kernel="linear"), Xs, d["y"], cv=LeaveOneGroupOut(),
                                groups=d["runs"], scoring=list(METRICS))
        for metric in METRICS:
            scores[metric].append(result[f"test_{metric}"])
    return {metric: np.array(values) for metric, values in scores.items()}


@pytest.mark.parametrize("solver", ["libsvm", "sklearn"])
def test_fold_metrics_equal_cross_validate(face_cat, few_spheres, solver):
    d = face_cat
    accuracy, decisions = SPHERE_SOLVERS[solver](d["X"], d["y"], few_spheres, d["folds"],
                                                 return_decisions=True)
    ours = sphere_fold_metrics(decisions, _y01(d["y"]), [te for _, te in d["folds"]], METRICS)
    np.testing.assert_array_equal(ours["accuracy"], accuracy)
    reference = _reference_scores(d, few_spheres)
    for metric in METRICS:
        np.testing.assert_allclose(ours[metric], reference[metric], rtol=0, atol=1e-12)


def test_batched_metrics_agree_with_libsvm_path(face_cat):
    """Every sphere of the slice: each metric equal to libsvm's path (itself
    SVC's, above) on >= 98% of spheres, in every fold."""
    d = face_cat
    tests, y01 = [te for _, te in d["folds"]], _y01(d["y"])
    metrics = {}
    for solver in ("batched", "libsvm"):
        _, decisions = SPHERE_SOLVERS[solver](d["X"], d["y"], d["spheres"], d["folds"],
                                              return_decisions=True)
        metrics[solver] = sphere_fold_metrics(decisions, y01, tests, METRICS)
    ours, path = metrics["batched"], metrics["libsvm"]
    for metric in METRICS:
        assert (ours[metric] == path[metric]).all(axis=1).mean() >= 0.98, metric


def test_batched_rank_refits_keep_accuracies_and_signs(face_cat):
    """Without the rank refits the AUC is the exact optimum's (another order on
    some spheres); with them the accuracies stay bit for bit, signs agree."""
    d = face_cat
    plain = SPHERE_SOLVERS["batched"](d["X"], d["y"], d["spheres"], d["folds"])
    tests, y01 = [te for _, te in d["folds"]], _y01(d["y"])
    auc = {}
    for margin in (0.0, 5e-4):
        accuracy, decisions = SPHERE_SOLVERS["batched"](
            d["X"], d["y"], d["spheres"], d["folds"], return_decisions=True,
            rank_margin=margin)
        np.testing.assert_array_equal(accuracy, plain)
        metrics = sphere_fold_metrics(decisions, y01, tests, METRICS)
        np.testing.assert_array_equal(metrics["accuracy"], plain)
        auc[margin] = metrics["roc_auc"]
    assert (auc[0.0] != auc[5e-4]).any()


@pytest.mark.parametrize("solver", ["batched", "libsvm", "sklearn"])
def test_untested_scans_get_nan_decisions(face_cat, few_spheres, solver):
    d = face_cat
    folds = d["folds"][:3]
    _, decisions = SPHERE_SOLVERS[solver](d["X"], d["y"], few_spheres[:2], folds,
                                          return_decisions=True)
    tested = np.zeros(len(d["y"]), bool)
    tested[np.concatenate([te for _, te in folds])] = True
    assert np.isnan(decisions[:, ~tested]).all()
    assert not np.isnan(decisions[:, tested]).any()


@pytest.fixture(scope="module")
def tiny_two_subjects(tmp_path_factory):
    """Two tiny subjects on one grid (3 runs of 2 face + 2 cat scans), stored."""
    from nidecode.ingest import ingest

    from .conftest import tiny_subject

    directory = tmp_path_factory.mktemp("tiny")
    subjects = [tiny_subject(directory / f"sub0{i}", seed=i) for i in (1, 2)]
    ingest(subjects, directory / "store.zarr", "mask4_vt")
    return directory / "store.zarr"


def _image(path):
    import nibabel as nib

    return nib.load(path).get_fdata()


def test_searchlight_maps_per_metric_and_per_fold(tiny_two_subjects, client, tmp_path):
    import pandas as pd

    from nidecode.analyses.searchlight import searchlight

    common = dict(radius=5.0, categories=["face", "cat"], progress=False)
    plain = searchlight(tiny_two_subjects, tmp_path / "plain", client, **common)
    table = searchlight(tiny_two_subjects, tmp_path / "all", client, **common,
                        scoring=["accuracy", "balanced_accuracy", "roc_auc"], per_fold=True)
    maps = tmp_path / "all" / "searchlight"
    for subject in ("sub01", "sub02"):
        accuracy = _image(maps / f"{subject}_cat_vs_face.nii.gz")
        np.testing.assert_array_equal(
            accuracy, _image(tmp_path / "plain" / "searchlight" / f"{subject}_cat_vs_face.nii.gz"))
        centres = accuracy > 0
        for metric in METRICS:
            suffix = "" if metric == "accuracy" else f"_{metric}"
            mean = _image(maps / f"{subject}_cat_vs_face{suffix}.nii.gz")
            folds = _image(maps / f"{subject}_cat_vs_face_{metric}_folds.nii.gz")
            assert folds.shape == (*mean.shape, 3)  # three runs: three folds
            np.testing.assert_allclose(folds.mean(axis=-1), mean, atol=1e-6)
            assert ((mean[centres] >= 0) & (mean[centres] <= 1)).all()
        # Two balanced classes per test run: balanced accuracy is the accuracy.
        np.testing.assert_allclose(_image(maps / f"{subject}_cat_vs_face_balanced_accuracy"
                                          ".nii.gz"), accuracy, atol=1e-6)
    for metric in ("balanced_accuracy", "roc_auc"):
        for name in (f"mean_cat_vs_face_{metric}", f"group_cat_vs_face_{metric}_t",
                     f"group_cat_vs_face_{metric}_p_fwe"):
            assert (maps / f"{name}.nii.gz").exists(), name
    saved = pd.read_csv(tmp_path / "all" / "searchlight.csv")
    assert {"mean_balanced_accuracy", "mean_roc_auc"} <= set(saved.columns)
    np.testing.assert_allclose(table["mean_accuracy"], plain["mean_accuracy"])
    np.testing.assert_allclose(table["mean_balanced_accuracy"], table["mean_accuracy"])


def test_scoring_is_part_of_the_identity(tiny_two_subjects, client, tmp_path):
    from nidecode.analyses.searchlight import searchlight
    from nidecode.errors import InputError

    common = dict(radius=5.0, categories=["face", "cat"], progress=False)
    searchlight(tiny_two_subjects, tmp_path, client, **common)
    with pytest.raises(InputError):
        searchlight(tiny_two_subjects, tmp_path, client, **common, scoring="roc_auc")


@pytest.mark.parametrize(("command", "arguments", "message"), [
    ("decode", ["--per-fold"], "--per-fold: only 'nidecode searchlight' writes per-fold maps; "
                               "drop it from 'nidecode decode'"),
    ("permute", ["--n-permutations", "5", "--per-fold"],
     "--per-fold: only 'nidecode searchlight'"),
    ("searchlight", ["--radius", "5", "--scoring", "accuracy,f1"], "--scoring accuracy,f1"),
    ("searchlight", ["--radius", "5", "--class-weight", "auto"], "--class-weight auto: must "
                                                                  "be one of"),
])
def test_bad_scoring_arguments(tiny_two_subjects, tmp_path, capsys, command, arguments,
                               message):
    from nidecode.cli import main

    status = main([command, str(tiny_two_subjects), "--out", str(tmp_path / "out"), "--quiet",
                   *arguments])
    one_line_error(capsys, status, message)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def slice_imgs(haxby_slice_dir):
    """Face and cat scans of the real slice as images (test_decoding's set-up)."""
    from .test_decoding import _scans

    return _scans(haxby_slice_dir, ["face", "cat"])


def _nilearn_scored(data, scoring, process_mask=None, estimator=None):
    import warnings

    from nilearn.decoding import SearchLight

    from .test_decoding import RADIUS

    light = SearchLight(mask_img=data["mask"], process_mask_img=process_mask, radius=RADIUS,
                        estimator=estimator or SVC(kernel="linear"), cv=LeaveOneGroupOut(),
                        scoring=scoring)
    with warnings.catch_warnings():  # "Use a custom estimator at your own risk": on purpose
        warnings.simplefilter("ignore")
        return light.fit(data["imgs"], data["y"], groups=data["runs"])


@pytest.mark.slow
@pytest.mark.parametrize("scoring", ["balanced_accuracy", "roc_auc"])
def test_estimator_scoring_matches_nilearn_on_the_real_slice(slice_imgs, scoring):
    from .test_decoding import _ours

    reference = _nilearn_scored(slice_imgs, scoring)
    light = _ours(slice_imgs, SVC(kernel="linear"), scoring=scoring)
    assert light.method_ == "batched"
    equal = np.isclose(light.scores_, reference.scores_, rtol=0, atol=1e-9)
    assert equal.mean() >= 0.98


@pytest.mark.parametrize("solver", ["libsvm", "sklearn"])
@pytest.mark.parametrize("scoring", ["balanced_accuracy", "roc_auc"])
def test_estimator_scoring_matches_nilearn_exactly(slice_imgs, haxby_slice_dir, solver,
                                                   scoring):
    from .test_decoding import _ours

    centres = slice_centres(haxby_slice_dir, 53)
    reference = _nilearn_scored(slice_imgs, scoring, centres)
    light = _ours(slice_imgs, SVC(kernel="linear"), centres, solver=solver, scoring=scoring)
    assert light.method_ == solver
    np.testing.assert_allclose(light.masked_scores_, reference.masked_scores_, rtol=0,
                               atol=1e-12)
    assert 0.5 < light.masked_scores_.mean() <= 1


def test_auc_of_one_class_test_folds_is_nan_with_a_warning(tiny_two_subjects, client, tmp_path):
    """kfold:6 on 12 ordered scans (face face cat cat per run): every test fold
    holds one class, so no fold has an AUC; balanced accuracy still has one."""
    from nidecode.analyses.searchlight import searchlight
    from nidecode.errors import NidecodeWarning

    with pytest.warns(NidecodeWarning, match="roc_auc of subject 'sub0[12]', 'cat' vs 'face': "
                      "6 of 6 folds test one class only and have no score; the map is NaN"):
        table = searchlight(tiny_two_subjects, tmp_path, client, radius=5.0,
                            categories=["face", "cat"], progress=False, cv="kfold:6",
                            scoring="roc_auc,balanced_accuracy", per_fold=True)
    auc = _image(tmp_path / "searchlight" / "sub01_cat_vs_face_roc_auc.nii.gz")
    accuracy = _image(tmp_path / "searchlight" / "sub01_cat_vs_face.nii.gz")
    assert np.isnan(auc[accuracy > 0]).all()
    assert table["mean_roc_auc"].isna().all()
    assert table["mean_balanced_accuracy"].notna().all()


def test_report_of_a_per_fold_run_draws_the_3d_maps(tiny_two_subjects, client, tmp_path):
    from nidecode.analyses.searchlight import searchlight
    from nidecode.report import write_report

    searchlight(tiny_two_subjects, tmp_path, client, radius=5.0, categories=["face", "cat"],
                progress=False, scoring="balanced_accuracy", per_fold=True)
    drawn = write_report(tmp_path).read_text().split('<section id="searchlight">')[1]
    assert "searchlight/sub01_cat_vs_face_balanced_accuracy.nii.gz" in drawn
    assert "_folds.nii.gz" not in drawn  # the run.json file list names them, no figure


def test_command_line_writes_the_metric_and_fold_maps(tiny_two_subjects, tmp_path, capsys):
    from nidecode.cli import main

    assert main(["searchlight", str(tiny_two_subjects), "--out", str(tmp_path), "--quiet",
                 "--categories", "face,cat", "--radius", "5", "--workers", "1",
                 "--scoring", "roc_auc", "--per-fold"]) == 0
    maps = tmp_path / "searchlight"
    assert _image(maps / "sub01_cat_vs_face_roc_auc_folds.nii.gz").shape[-1] == 3
    assert (maps / "sub01_cat_vs_face_roc_auc.nii.gz").exists()
    assert (maps / "sub01_cat_vs_face_accuracy_folds.nii.gz").exists()
    assert not (maps / "sub01_cat_vs_face_balanced_accuracy.nii.gz").exists()


# --------------------------------------------------------------------------------------
# balanced class weights in the searchlight (the real slice with cat made rare)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rare_cat_imgs(haxby_slice_dir):
    """Face and cat scans of the real slice with 3 of every 9 cat scans kept, as images."""
    import pandas as pd
    from nilearn.maskers import NiftiMasker

    labels = pd.read_csv(haxby_slice_dir / "labels.txt", sep=" ")
    y = labels["labels"].to_numpy().copy()
    cat = np.flatnonzero(y == "cat")
    y[cat[np.arange(len(cat)) % 9 >= 3]] = "rest"
    mask = haxby_slice_dir / "mask.nii.gz"
    masker = NiftiMasker(mask_img=mask, standardize="zscore_sample")
    X = masker.fit_transform(haxby_slice_dir / "bold.nii.gz")
    keep = np.isin(y, ["face", "cat"])
    return {"imgs": masker.inverse_transform(X[keep]), "mask": mask, "y": y[keep],
            "runs": labels["chunks"].to_numpy()[keep]}


@pytest.mark.slow
@pytest.mark.parametrize("scoring", ["balanced_accuracy", "roc_auc"])
def test_class_weighted_maps_match_nilearn_on_rare_cat(rare_cat_imgs, haxby_slice_dir,
                                                       scoring):
    # Every third centre keeps nilearn to seconds. On all 530 spheres: 522
    # (accuracy, balanced accuracy) and 529 (AUC) equal nilearn's.
    from .test_decoding import _ours

    balanced = SVC(kernel="linear", class_weight="balanced")
    centres = slice_centres(haxby_slice_dir, 3)
    reference = _nilearn_scored(rare_cat_imgs, scoring, centres, balanced)
    light = _ours(rare_cat_imgs, balanced, centres, scoring=scoring)
    assert light.method_ == "batched"
    equal = np.isclose(light.masked_scores_, reference.masked_scores_, rtol=0, atol=1e-9)
    assert equal.mean() >= 0.98
    unweighted = _ours(rare_cat_imgs, SVC(kernel="linear"), centres, scoring=scoring)
    assert np.mean(unweighted.masked_scores_ != light.masked_scores_) > 0.5


def test_class_weighted_estimator_takes_the_solvers_exactly(rare_cat_imgs, haxby_slice_dir):
    from .test_decoding import _ours

    balanced = SVC(kernel="linear", class_weight="balanced")
    centres = slice_centres(haxby_slice_dir, 53)
    reference = _nilearn_scored(rare_cat_imgs, "roc_auc", centres, balanced)
    light = _ours(rare_cat_imgs, balanced, centres, solver="libsvm", scoring="roc_auc")
    assert light.method_ == "libsvm"
    np.testing.assert_allclose(light.masked_scores_, reference.masked_scores_, rtol=0,
                               atol=1e-12)


def test_class_weighted_searchlight_maps_equal_svc_on_rare_cat(rare_cat_store, haxby_slice_dir,
                                                               client, tmp_path):
    import nibabel as nib

    from nidecode import store
    from nidecode.analyses._prepare import subject_geometry
    from nidecode.analyses.searchlight import searchlight

    from .test_decoding import RADIUS

    centres_path = tmp_path / "centres.nii.gz"
    nib.save(slice_centres(haxby_slice_dir, 53), centres_path)
    searchlight(rare_cat_store, tmp_path / "out", client, radius=RADIUS,
                categories=["face", "cat"], process_mask=centres_path, solver="libsvm",
                scoring=list(METRICS), class_weight="balanced", progress=False)
    (subject, design), = store.read_designs(rare_cat_store).items()
    geometry = subject_geometry(rare_cat_store, subject, RADIUS, centres_path)
    X = store.read_timeseries(rare_cat_store, subject)
    keep = np.isin(design.labels, ["face", "cat"])
    balanced = SVC(kernel="linear", class_weight="balanced")
    expected = {metric: [] for metric in METRICS}
    for row in range(geometry.spheres.shape[0]):
        columns = geometry.spheres[row].indices
        scores = cross_validate(balanced, X[keep][:, np.sort(columns)], design.labels[keep],
                                cv=LeaveOneGroupOut(), groups=design.runs[keep],
                                scoring=list(METRICS))
        for metric in METRICS:
            expected[metric].append(scores[f"test_{metric}"].mean())
    for metric in METRICS:
        suffix = "" if metric == "accuracy" else f"_{metric}"
        image = _image(tmp_path / "out" / "searchlight" / f"{subject}_cat_vs_face{suffix}.nii.gz")
        np.testing.assert_allclose(image[geometry.mask][geometry.centres], expected[metric],
                                   rtol=0, atol=1e-6)
    assert len(expected["accuracy"]) == 10


def test_searchlight_permutations_per_metric_with_class_weights(tiny_two_subjects, tmp_path,
                                                                capsys):
    import json

    import pandas as pd

    from nidecode.cli import main

    out = tmp_path / "perm"
    assert main(["permute", str(tiny_two_subjects), "--out", str(out), "--quiet",
                 "--categories", "face,cat", "--workers", "1", "--n-permutations", "6",
                 "--searchlight", "--radius", "5", "--scoring", "balanced_accuracy,roc_auc",
                 "--class-weight", "balanced"]) == 0
    identity = json.loads((out / "run.json").read_text())["identity"]
    assert identity["class_weight"] == "balanced"
    assert identity["scoring"] == ["balanced_accuracy", "roc_auc"]
    table = pd.read_csv(out / "permutations" / "searchlight.csv")
    maps, nulls = out / "searchlight", out / "permutations" / "null"
    for metric in METRICS:
        suffix = "" if metric == "accuracy" else f"_{metric}"
        observed = _image(maps / f"sub01_cat_vs_face{suffix}.nii.gz")
        centres = _image(maps / "sub01_cat_vs_face.nii.gz") > 0
        null = np.load(nulls / f"sub01_cat_vs_face_searchlight{suffix}.npy")
        assert null.shape == (6, centres.sum())
        observed = observed[centres]
        p = _image(maps / f"sub01_cat_vs_face{suffix}_p.nii.gz")[centres]
        p_fwe = _image(maps / f"sub01_cat_vs_face{suffix}_p_fwe.nii.gz")[centres]
        np.testing.assert_allclose(p, (1 + (null >= observed - 1e-6).sum(axis=0)) / 7,
                                   atol=1e-6)
        np.testing.assert_allclose(
            p_fwe, (1 + (null.max(axis=1)[:, None] >= observed - 1e-6).sum(axis=0)) / 7,
            atol=1e-6)
        assert table[f"min_p_fwe{suffix}"].tolist() == pytest.approx(
            [p_fwe.min(), table[f"min_p_fwe{suffix}"][1]])
    # The true labelling's maps are those of 'nidecode searchlight' with the same options.
    assert main(["searchlight", str(tiny_two_subjects), "--out", str(tmp_path / "light"),
                 "--quiet", "--categories", "face,cat", "--workers", "1", "--radius", "5",
                 "--scoring", "roc_auc", "--class-weight", "balanced"]) == 0
    np.testing.assert_allclose(
        _image(tmp_path / "light" / "searchlight" / "sub02_cat_vs_face_roc_auc.nii.gz"),
        _image(maps / "sub02_cat_vs_face_roc_auc.nii.gz"), atol=1e-6)


def test_searchlight_permutations_of_an_auc_without_scores_are_nan(tiny_two_subjects, client,
                                                                   tmp_path):
    # kfold:6 on 12 ordered scans: every true test fold holds one class (no AUC).
    from nidecode.analyses.permute import permute

    table = permute(tiny_two_subjects, tmp_path, client, n_permutations=3, radius=5.0,
                    categories=["face", "cat"], cv="kfold:6", scoring="roc_auc",
                    progress=False)
    maps = tmp_path / "searchlight"
    centres = _image(maps / "sub01_cat_vs_face.nii.gz") > 0
    for statistic in ("", "_p", "_p_fwe"):
        assert np.isnan(_image(maps / f"sub01_cat_vs_face_roc_auc{statistic}.nii.gz")[centres]
                        ).all()
    assert table["peak_roc_auc"].isna().all() and (table["n_spheres_p_fwe_05_roc_auc"] == 0).all()
    assert (table["min_p_fwe"] > 0).all()  # accuracy's p maps are there


# --------------------------------------------------------------------------------------
# the report: each metric at its own chance, group tests per metric
# --------------------------------------------------------------------------------------


def test_report_draws_metric_maps_above_their_own_chance(rare_cat_store, haxby_slice_dir,
                                                         client, tmp_path):
    import nibabel as nib

    from nidecode.analyses.searchlight import searchlight
    from nidecode.report import write_report

    from .test_decoding import RADIUS

    centres = tmp_path / "centres.nii.gz"
    nib.save(slice_centres(haxby_slice_dir, 53), centres)
    table = searchlight(rare_cat_store, tmp_path / "out", client, radius=RADIUS,
                        categories=["face", "cat"], process_mask=centres,
                        scoring="balanced_accuracy,roc_auc", progress=False)
    chance = table["chance"].item()
    assert chance == pytest.approx(0.75)  # 36 cat against 108 face scans
    drawn = write_report(tmp_path / "out").read_text().split('<section id="searchlight">')[1]
    stem = f"searchlight/{table['subject'].item()}_cat_vs_face"
    assert f"{stem}.nii.gz (accuracy above {chance:.3g})" in drawn
    assert f"{stem}_balanced_accuracy.nii.gz (balanced_accuracy above 0.5)" in drawn
    assert f"{stem}_roc_auc.nii.gz (roc_auc above 0.5)" in drawn


def test_report_shows_a_group_table_per_metric(tiny_two_subjects, client, tmp_path):
    import pandas as pd

    from nidecode.analyses.decode import decode
    from nidecode.report import write_report

    decode(tiny_two_subjects, tmp_path, client, categories=["face", "cat"],
           scoring=list(METRICS), progress=False)
    group = pd.read_csv(tmp_path / "group.csv")
    section = write_report(tmp_path).read_text().split('<section id="group">')[1]
    section = section.split("</section>")[0]
    for metric in ("balanced_accuracy", "roc_auc"):
        part = section.split(f"<h3>{metric}</h3>")[1].split("<h3>")[0]
        t = group[f"t_{metric}"].item()
        cells = [f"{group[f'mean_{metric}'].item():.3f}", "0.500",
                 "" if np.isnan(t) else f"{t:.2f}"]
        assert "".join(f'<td class="num">{cell}</td>' for cell in cells) in part
