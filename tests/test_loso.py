"""Leave one subject out (``--cv loso``): kernel summed over voxel blocks on the cluster."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import LeaveOneGroupOut, cross_val_score
from sklearn.svm import SVC

from nidecode import store
from nidecode.analyses.loso import (
    ALL_SUBJECTS,
    kernel_rows,
    plan_pairs,
    submit_kernel,
)
from nidecode.cli import main
from nidecode.stats import haufe_pattern
from nidecode.synth import make_subject, write_subject
from tests.conftest import one_line_error

PAIRS = [("cat", "face"), ("cat", "house"), ("face", "house")]


@pytest.fixture(scope="module")
def loso_store(tmp_path_factory):
    """Three synthetic subjects on one grid and mask, ingested into one store."""
    from nidecode.ingest import ingest

    root = tmp_path_factory.mktemp("loso")
    directories = [write_subject(make_subject(seed, shape=(10, 12, 6), n_runs=3,
                                              scans_per_run=28, block_length=3,
                                              pattern_seed=0), root / f"sub0{seed + 1}")
                   for seed in range(3)]
    path = root / "loso.zarr"
    ingest(directories, path, "mask", standardize="run")
    return path


def _stored_pair(path, class_a, class_b):
    """The pair's stored scans of every subject, concatenated: X, y, subject of each."""
    X, y, groups = [], [], []
    for subject in store.list_subjects(path):
        design = store.read_design(path, subject)
        keep = np.isin(design.labels, (class_a, class_b))
        X.append(store.read_timeseries(path, subject)[keep])
        y.append(design.labels[keep])
        groups.append(np.full(keep.sum(), subject))
    return np.concatenate(X), np.concatenate(y), np.concatenate(groups)


@pytest.fixture(scope="module")
def one_worker_run(loso_store, tmp_path_factory):
    """``nidecode decode --cv loso`` on one worker, voxel blocks of 64."""
    import dask.config

    out = tmp_path_factory.mktemp("loso-run") / "out"
    with dask.config.set({"nidecode.loso-block-voxels": 64}):
        assert main(["decode", str(loso_store), "--out", str(out), "--cv", "loso", "--quiet",
                     "--categories", "face,house,cat", "--workers", "1",
                     "--scoring", "accuracy,roc_auc"]) == 0
    return out


@pytest.mark.slow
def test_loso_equals_scikit_learn_and_weights_equal_svc(loso_store, one_worker_run):
    import nibabel as nib

    out = one_worker_run
    scores = pd.read_csv(out / "scores.csv", dtype={"fold": str})
    assert set(scores["subject"]) == {ALL_SUBJECTS}
    mask, _ = store.read_geometry(loso_store, "sub01")
    for class_a, class_b in PAIRS:
        X, y, groups = _stored_pair(loso_store, class_a, class_b)
        expected = cross_val_score(SVC(kernel="linear"), X, y, groups=groups,
                                   cv=LeaveOneGroupOut())
        rows = scores[(scores["class_a"] == class_a) & (scores["class_b"] == class_b)]
        assert list(rows["fold"]) == ["sub01", "sub02", "sub03"]
        np.testing.assert_array_equal(rows["accuracy"].to_numpy(), expected)
        auc = cross_val_score(SVC(kernel="linear"), X, y, groups=groups,
                              cv=LeaveOneGroupOut(), scoring="roc_auc")
        np.testing.assert_allclose(rows["roc_auc"].to_numpy(), auc, rtol=0, atol=1e-12)
        weights = nib.load(out / "weights" / f"all_{class_a}_vs_{class_b}.nii.gz")
        coef = SVC(kernel="linear").fit(X, y).coef_[0]
        np.testing.assert_allclose(np.asarray(weights.dataobj)[mask], coef.astype(np.float32),
                                   rtol=1e-5, atol=1e-6)
        pattern = nib.load(out / "patterns" / f"all_{class_a}_vs_{class_b}.nii.gz")
        np.testing.assert_allclose(np.asarray(pattern.dataobj)[mask],
                                   haufe_pattern(X, coef).astype(np.float32), rtol=1e-4,
                                   atol=1e-6)
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["n_folds"]) == [3, 3, 3]
    assert not (out / "group.csv").exists()  # one "subject": the folds are the subjects


@pytest.mark.slow
def test_blockwise_kernel_equals_X_XT(loso_store, client):
    designs = list(store.read_designs(loso_store).values())
    rows = kernel_rows(designs, plan_pairs(designs, ["face", "house", "cat"], None))
    X = np.concatenate([store.read_timeseries(loso_store, design.subject)[scans]
                        for design, scans in zip(designs, rows.scans, strict=True)])
    X = X.astype(np.float64)
    for block_voxels in (50, 4096):
        kernel = submit_kernel(client, str(loso_store), rows, X.shape[1], block_voxels).result()
        np.testing.assert_allclose(kernel, X @ X.T, rtol=1e-10, atol=1e-9)
    # One block: one share, packed as its upper triangle and unpacked, is X X^T bit for bit.
    np.testing.assert_array_equal(kernel, X @ X.T)


@pytest.mark.slow
def test_same_results_with_one_and_two_workers_and_other_blocks(loso_store, one_worker_run,
                                                                 client, tmp_path):
    import dask.config
    import nibabel as nib

    from nidecode import decode

    outputs = [one_worker_run]
    for block in (64, 1000):  # two workers
        out = tmp_path / f"b{block}"
        with dask.config.set({"nidecode.loso-block-voxels": block}):
            decode(loso_store, out, client, categories=["face", "house", "cat"], cv="loso",
                   scoring="accuracy,roc_auc", progress=False)
        outputs.append(out)
    first = pd.read_csv(outputs[0] / "scores.csv")
    for out in outputs[1:]:
        pd.testing.assert_frame_equal(pd.read_csv(out / "scores.csv"), first)
    # The same command again resumes: every pair is read back from parts/.
    decode(loso_store, outputs[-1], client, categories=["face", "house", "cat"], cv="loso",
           scoring="accuracy,roc_auc", progress=False)
    manifest = json.loads((outputs[-1] / "run.json").read_text())
    assert manifest["counts"]["pairs_computed"] == 0
    pd.testing.assert_frame_equal(pd.read_csv(outputs[-1] / "scores.csv"), first)
    maps = [np.asarray(nib.load(out / "weights" / "all_cat_vs_face.nii.gz").dataobj)
            for out in outputs]
    np.testing.assert_array_equal(maps[0], maps[1])  # one block size: the same sums
    np.testing.assert_allclose(maps[0], maps[2], rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_loso_permute_one_kernel_for_every_permutation(loso_store, client, tmp_path):
    from nidecode import permute

    table = permute(loso_store, tmp_path / "perm", client, n_permutations=20,
                    categories=["face", "house"], cv="loso", progress=False)
    assert list(table["subject"]) == [ALL_SUBJECTS]
    X, y, groups = _stored_pair(loso_store, "face", "house")
    expected = cross_val_score(SVC(kernel="linear"), X, y, groups=groups,
                               cv=LeaveOneGroupOut())
    assert table["accuracy"].iloc[0] == pytest.approx(expected.mean(), abs=1e-12)
    assert table["n_permutations"].iloc[0] == 20
    null = np.load(tmp_path / "perm" / "permutations" / "null" / "all_face_vs_house.npy")
    assert len(null) == 20 and len(np.unique(null)) > 1
    assert table["p_value"].iloc[0] == pytest.approx((1 + np.sum(null >= expected.mean()))
                                                     / 21)
    summary = pd.read_csv(tmp_path / "perm" / "summary.csv")
    assert summary["n_folds"].iloc[0] == 3


def test_one_subject_is_refused(tmp_path, capsys):
    from nidecode.ingest import ingest

    directory = write_subject(make_subject(0, shape=(10, 12, 6), n_runs=2, scans_per_run=28,
                                           block_length=3), tmp_path / "sub01")
    ingest([directory], tmp_path / "one.zarr", "mask")
    status = main(["decode", str(tmp_path / "one.zarr"), "--out", str(tmp_path / "o"),
                   "--cv", "loso", "--quiet"])
    one_line_error(capsys, status, r"--cv loso: the store holds 1 subject \(sub01\); "
                                   r"leave-one-subject-out needs two or more")


@pytest.mark.parametrize(("second", "message"), [
    ({"shape": (10, 12, 7)}, "subject sub02: its grid is 10x12x7, sub01's 10x12x6"),
    ({"voxel_size": (3.0, 3.75, 3.75)}, "subject sub02: its affine differs from sub01's"),
])
def test_subjects_on_different_grids_are_refused(tmp_path, capsys, second, message):
    from nidecode.ingest import ingest

    options = {"shape": (10, 12, 6), "n_runs": 2, "scans_per_run": 28, "block_length": 3}
    directories = [write_subject(make_subject(index, **{**options, **extra}),
                                 tmp_path / f"sub0{index + 1}")
                   for index, extra in enumerate([{}, second])]
    ingest(directories, tmp_path / "two.zarr", "mask")
    for command in (["decode"], ["permute", "--n-permutations", "5"]):
        status = main([*command, str(tmp_path / "two.zarr"), "--out", str(tmp_path / "o"),
                       "--cv", "loso", "--quiet"])
        one_line_error(capsys, status, f"--cv loso: {message}; leave-one-subject-out needs "
                                       f"every subject on one grid")


def test_subjects_with_different_masks_are_refused(tmp_path, capsys):
    import nibabel as nib

    from nidecode.ingest import ingest

    options = {"shape": (10, 12, 6), "n_runs": 2, "scans_per_run": 28, "block_length": 3}
    directories = [write_subject(make_subject(index, **options), tmp_path / f"sub0{index + 1}")
                   for index in range(2)]
    image = nib.load(directories[1] / "mask.nii.gz")
    mask = np.asarray(image.dataobj).copy()
    mask[tuple(np.argwhere(mask)[0])] = 0  # one voxel less
    nib.save(nib.Nifti1Image(mask, image.affine), directories[1] / "mask.nii.gz")
    ingest(directories, tmp_path / "two.zarr", "mask")
    status = main(["decode", str(tmp_path / "two.zarr"), "--out", str(tmp_path / "o"),
                   "--cv", "loso", "--quiet"])
    n = int(mask.sum())
    one_line_error(capsys, status, rf"--cv loso: subject sub02: its mask \({n} voxels\) "
                                   rf"differs from sub01's \({n + 1} voxels\)")


@pytest.mark.parametrize(("options", "message"), [
    (["--classifier", "lda"], "--classifier lda: --cv loso fits the linear SVM from the kernel"),
    (["--categories", "face,dog"], "--categories: no subject has scans labelled 'dog'"),
])
def test_bad_loso_options_are_refused(loso_store, tmp_path, capsys, options, message):
    status = main(["decode", str(loso_store), "--out", str(tmp_path / "o"), "--cv", "loso",
                   "--quiet", *options])
    one_line_error(capsys, status, message)


@pytest.mark.parametrize("options, message", [
    (["--scoring", "accuracy,roc_auc"], "--scoring accuracy,roc_auc: searchlight permutations "
                                        "with --cv loso test accuracy only"),
    (["--train-categories", "face,house", "--test-categories", "cat,chair"],
     "--train-categories: searchlight permutations with --cv loso do not cross-decode"),
])
def test_searchlight_permutations_refuse_what_loso_lacks(loso_store, tmp_path, capsys,
                                                         options, message):
    status = main(["permute", str(loso_store), "--out", str(tmp_path / "o"), "--cv", "loso",
                   "--quiet", "--n-permutations", "5", "--searchlight", "--radius", "5",
                   *options])
    one_line_error(capsys, status, message)


@pytest.mark.slow
def test_searchlight_permutations_across_subjects(loso_store, client, tmp_path):
    """``permute --searchlight --cv loso``: the observed map is the loso searchlight's; a
    null map is LeaveOneGroupOut's SVC per sphere on the labels permuted within runs."""
    import nibabel as nib

    from nidecode import permute, searchlight
    from nidecode.analyses.loso import plan_loso, read_block
    from nidecode.analyses.tasks import relabel
    from nidecode.spheres import sphere_neighbourhoods

    options = {"radius": 4.0, "cv": "loso", "categories": ["face", "house"],
               "solver": "libsvm", "progress": False}
    table = permute(loso_store, tmp_path / "perm", client, n_permutations=2, seed=3, **options)
    searchlight(loso_store, tmp_path / "sl", client, **options)
    assert list(table["subject"]) == [ALL_SUBJECTS] and table["n_permutations"].iloc[0] == 2
    name = "all_face_vs_house.nii.gz"
    observed = np.asarray(nib.load(tmp_path / "perm" / "searchlight" / name).dataobj)
    np.testing.assert_array_equal(
        observed, np.asarray(nib.load(tmp_path / "sl" / "searchlight" / name).dataobj))
    for statistic in ("p", "p_fwe"):
        assert (tmp_path / "perm" / "searchlight" / f"all_face_vs_house_{statistic}.nii.gz"
                ).exists()
    null = np.load(tmp_path / "perm" / "permutations" / "null" /
                   "all_face_vs_house_searchlight.npy")
    mask, affine = store.read_geometry(loso_store, "sub01")
    centres, spheres = sphere_neighbourhoods(mask, affine, 4.0)
    assert null.shape == (2, len(centres))
    designs = list(store.read_designs(loso_store).values())
    rows, _, samples, _ = plan_loso(designs, ["face", "house"])
    pair = samples[(ALL_SUBJECTS, "face", "house")]
    X = read_block(str(loso_store), rows, slice(0, int(mask.sum())))[pair.rows]
    permuted = relabel(pair.labels, pair.permutation_groups, (ALL_SUBJECTS, "face", "house"),
                       3, 1)
    assert not np.array_equal(permuted, pair.labels)
    for centre in np.linspace(0, len(centres) - 1, 4).astype(int):
        voxels = spheres[centre].indices
        expected = cross_val_score(SVC(kernel="linear"), X[:, voxels], permuted,
                                   groups=pair.groups, cv=LeaveOneGroupOut()).mean()
        assert null[1, centre] == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_report_shows_the_subjects_as_folds(one_worker_run):
    assert main(["report", str(one_worker_run), "--quiet"]) == 0
    page = (one_worker_run / "report.html").read_text()
    assert "Leave-one-subject-out design" in page
    assert "leave-one-subject-out cross-validation (folds = subjects)" in page
    assert "held-out subject" in page and "sub03" in page
    assert "all_cat_vs_face" in page or "Weight maps" in page


@pytest.mark.slow
def test_cross_decoding_across_subjects(loso_store, client, tmp_path):
    """Trained on face/house of two subjects, tested on the third's cat/chair read as them."""
    from nidecode import decode

    decode(loso_store, tmp_path / "cross", client, cv="loso", progress=False,
           train_categories=["face", "house"], test_categories=["cat", "chair"])
    scores = pd.read_csv(tmp_path / "cross" / "scores.csv", dtype={"fold": str})
    X, y, groups = _stored_pair(loso_store, "face", "house")
    X_test, y_test, groups_test = _stored_pair(loso_store, "cat", "chair")
    y_test = np.where(y_test == "cat", "face", "house")
    expected = [SVC(kernel="linear").fit(X[groups != subject], y[groups != subject])
                .score(X_test[groups_test == subject], y_test[groups_test == subject])
                for subject in ["sub01", "sub02", "sub03"]]
    assert list(scores["fold"]) == ["sub01", "sub02", "sub03"]
    assert list(scores["test_a"]) == ["cat"] * 3 and list(scores["test_b"]) == ["chair"] * 3
    np.testing.assert_array_equal(scores["accuracy"].to_numpy(), expected)


@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_fit_svc_kernel_is_svc_precomputed_bit_for_bit(class_weight):
    from nidecode.solvers.svc import fit_svc_kernel, svc_kernel_decisions

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 30))
    codes = (rng.random(50) < 0.4).astype(int)
    K = X @ X.T
    train, test = np.arange(35), np.arange(35, 50)
    dual_coef, support, intercept = fit_svc_kernel(K[np.ix_(train, train)], codes[train], 1.0,
                                                   class_weight)
    svc = SVC(kernel="precomputed", class_weight=class_weight).fit(K[np.ix_(train, train)],
                                                                   codes[train])
    np.testing.assert_array_equal(dual_coef, svc.dual_coef_[0])
    np.testing.assert_array_equal(support, svc.support_)
    assert intercept == svc.intercept_[0]
    decision = svc_kernel_decisions(K[np.ix_(test, train)], dual_coef, support, intercept)
    np.testing.assert_allclose(decision, svc.decision_function(K[np.ix_(test, train)]),
                               rtol=0, atol=1e-12)
    linear = SVC(kernel="linear", class_weight=class_weight).fit(X[train], codes[train])
    np.testing.assert_allclose(dual_coef @ X[train][support], linear.coef_[0], atol=1e-10)


@pytest.mark.slow
def test_searchlight_across_subjects_equals_svc_per_sphere(loso_store, client, tmp_path):
    """``--cv loso --solver libsvm``: each sphere's accuracy is LeaveOneGroupOut's SVC on
    its voxels of the concatenated subjects."""
    import nibabel as nib

    from nidecode import searchlight
    from nidecode.spheres import sphere_neighbourhoods

    table = searchlight(loso_store, tmp_path / "sl", client, radius=4.0, cv="loso",
                        categories=["face", "house"], solver="libsvm", progress=False)
    assert list(table["subject"]) == [ALL_SUBJECTS]
    mask, affine = store.read_geometry(loso_store, "sub01")
    centres, spheres = sphere_neighbourhoods(mask, affine, 4.0)
    image = nib.load(tmp_path / "sl" / "searchlight" / "all_face_vs_house.nii.gz")
    values = np.asarray(image.dataobj)[mask][centres]
    X, y, groups = _stored_pair(loso_store, "face", "house")
    for centre in np.linspace(0, len(centres) - 1, 6).astype(int):
        voxels = spheres[centre].indices
        expected = cross_val_score(SVC(kernel="linear"), X[:, voxels], y, groups=groups,
                                   cv=LeaveOneGroupOut()).mean()
        assert values[centre] == pytest.approx(expected, abs=1e-6)
    assert table["n_spheres"].iloc[0] == len(centres)


def test_a_fold_trained_on_one_class_is_refused(tmp_path, capsys):
    from nidecode.ingest import ingest

    options = {"shape": (10, 12, 6), "n_runs": 2, "scans_per_run": 28, "block_length": 3}
    directories = [write_subject(make_subject(index, **options), tmp_path / f"sub0{index + 1}")
                   for index in range(2)]
    labels = pd.read_csv(directories[1] / "labels.txt", sep=" ")
    labels.loc[labels["labels"] == "house", "labels"] = "rest"  # sub02: face, no house
    labels.to_csv(directories[1] / "labels.txt", sep=" ", index=False)
    ingest(directories, tmp_path / "two.zarr", "mask")
    status = main(["decode", str(tmp_path / "two.zarr"), "--out", str(tmp_path / "o"),
                   "--cv", "loso", "--categories", "face,house", "--quiet"])
    one_line_error(capsys, status, "--cv loso: face vs house, held-out subject sub01: the "
                                   "other subjects' scans hold one class only")


def test_searchlight_per_fold_refuses_loso(loso_store, tmp_path, capsys):
    status = main(["searchlight", str(loso_store), "--out", str(tmp_path / "o"), "--cv", "loso",
                   "--quiet", "--radius", "5", "--per-fold"])
    one_line_error(capsys, status, "--per-fold: a searchlight with --cv loso writes no per-fold")


def test_searchlight_refuses_a_cross_design_across_subjects(loso_store, tmp_path, capsys):
    status = main(["searchlight", str(loso_store), "--out", str(tmp_path / "o"), "--cv", "loso",
                   "--quiet", "--radius", "5", "--train-categories", "face,house",
                   "--test-categories", "house,face"])
    one_line_error(capsys, status, "a searchlight with --cv loso does not cross-decode yet")
