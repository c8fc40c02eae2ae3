"""Cross-decoding searchlights (issue #16): `searchlight` and `permute --searchlight` with
--train-categories/--test-categories, and nidecode.SearchLight's cv/groups and test_labels."""

import json
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.decoding import SearchLight as NilearnSearchLight
from nilearn.masking import apply_mask, unmask
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.naive_bayes import GaussianNB
from sklearn.svm import SVC

from nidecode import SearchLight, store
from nidecode.analyses.permute import permute
from nidecode.analyses.plan import PairJob, pair_samples, permutation_groups
from nidecode.analyses.searchlight import searchlight
from nidecode.analyses.tasks import relabel
from nidecode.cli import main
from nidecode.errors import InputError
from nidecode.outdir import (
    cross_group_map_name,
    cross_searchlight_name,
    inference_map_name,
    null_name,
)
from nidecode.report import write_report
from nidecode.synth import make_subject
from tests.conftest import one_line_error, slice_centres, tiny_subject
from tests.test_cross_decoding import READ_AS, ab_store  # noqa: F401 (a fixture)

CROSS = {"train_categories": ["faceA", "catA"], "test_categories": ["faceB", "catB"]}
CLI_CROSS = ["--train-categories", "faceA,catA", "--test-categories", "faceB,catB"]
RADIUS = 5.6


@pytest.fixture(scope="module")
def process_mask(haxby_slice_dir, tmp_path_factory):
    """59 centres of the slice, so that nilearn's per-sphere fits take seconds."""
    path = tmp_path_factory.mktemp("process") / "process.nii.gz"
    nib.save(slice_centres(haxby_slice_dir, 9), path)
    return path


@pytest.fixture(scope="module")
def stored(ab_store, haxby_slice_dir):  # noqa: F811 (the imported fixture)
    """The stored (cleaned) series of the relabelled slice as images, labels and runs."""
    subject = store.list_subjects(ab_store)[0]
    design = store.read_design(ab_store, subject)
    mask = nib.load(haxby_slice_dir / "mask.nii.gz")
    imgs = unmask(store.read_timeseries(ab_store, subject).astype(np.float64), mask)
    return subject, imgs, mask, design.labels, design.runs


def _cross_folds(labels, runs, held_out):
    """By hand: per held-out run, the A scans of the other runs and its B scans."""
    is_a, is_b = np.isin(labels, ["faceA", "catA"]), np.isin(labels, ["faceB", "catB"])
    return [(np.flatnonzero(is_a & (runs != run)), np.flatnonzero(is_b & (runs == run)))
            for run in held_out]


def _nilearn(imgs, mask, process_mask, y, folds, estimator):
    """nilearn's SearchLight of ``estimator`` over the given (train, test) folds."""
    light = NilearnSearchLight(mask_img=mask, process_mask_img=process_mask, radius=RADIUS,
                               estimator=estimator, cv=folds, n_jobs=1)
    with warnings.catch_warnings():  # "Use a custom estimator at your own risk": on purpose
        warnings.simplefilter("ignore")
        light.fit(imgs, y)
    return light.scores_img_.get_fdata()


def _read_as_a(labels):
    return np.array([READ_AS.get(name, name) for name in labels])


@pytest.fixture(scope="module")
def by_hand(stored, process_mask):
    """nilearn's maps of SVC, GaussianNB and LDA trained on A scans, tested on B scans read
    as A: leave-one-run-out, and (SVC) every A scan against every B scan."""
    _, imgs, mask, labels, runs = stored
    y = _read_as_a(labels)
    folds = _cross_folds(labels, runs, range(12))
    estimators = {"svc": SVC(kernel="linear"), "gnb": GaussianNB(),
                  "lda": LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")}
    maps = {name: _nilearn(imgs, mask, process_mask, y, folds, estimator)
            for name, estimator in estimators.items()}
    is_a, is_b = np.isin(labels, ["faceA", "catA"]), np.isin(labels, ["faceB", "catB"])
    maps["none"] = _nilearn(imgs, mask, process_mask, y,
                            [(np.flatnonzero(is_a), np.flatnonzero(is_b))], SVC(kernel="linear"))
    return maps


def _centres(process_mask):
    return nib.load(process_mask).get_fdata() > 0


@pytest.mark.slow
@pytest.mark.parametrize("classifier", ["svc", "gnb", "lda"])
def test_cross_searchlight_equals_nilearn_by_hand(ab_store, stored, process_mask,  # noqa: F811
                                                  by_hand, client, tmp_path, classifier):
    subject = stored[0]
    out = tmp_path / "out"
    table = searchlight(ab_store, out, client, radius=RADIUS, process_mask=process_mask,
                        classifier=classifier, progress=False, per_fold=True, **CROSS)
    assert table[["class_a", "class_b", "test_a", "test_b"]].values.tolist() == [
        ["catA", "faceA", "catB", "faceB"]]
    ours = nib.load(out / cross_searchlight_name(subject, "catA", "faceA", "catB", "faceB"))
    centres = _centres(process_mask)
    values, expected = ours.get_fdata()[centres], by_hand[classifier][centres]
    if classifier == "svc":  # the batched solver: SVC's accuracy on >= 98 % of the spheres
        assert np.isclose(values, expected, atol=1e-6).mean() >= 0.98
        assert np.abs(values - expected).max() <= 1 / 8 + 1e-9  # one test scan of one fold
    else:  # closed forms: exact
        np.testing.assert_allclose(values, expected, atol=1e-6)
    folds = nib.load(out / cross_searchlight_name(subject, "catA", "faceA", "catB", "faceB",
                                                  "accuracy_folds"))
    assert folds.shape[-1] == 12
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["design"] == [{"train": ["catA", "faceA"], "test": ["catB", "faceB"]}]
    assert manifest["identity"]["train_categories"] == ["faceA", "catA"]
    assert table["chance"].iloc[0] == 0.5


@pytest.fixture(scope="module")
def few_centres(haxby_slice_dir, tmp_path_factory):
    """7 of the 59 centres of ``process_mask``, for the slower solvers."""
    path = tmp_path_factory.mktemp("few") / "few.nii.gz"
    nib.save(slice_centres(haxby_slice_dir, 81), path)
    return path


def test_cross_searchlight_libsvm_and_logreg_equal_nilearn_by_hand(
        ab_store, stored, few_centres, by_hand, client, tmp_path):  # noqa: F811
    """libsvm's path (SVC's own) and the generic per-sphere path (logistic regression)."""
    from sklearn.linear_model import LogisticRegression

    subject, imgs, mask, labels, runs = stored
    centres = _centres(few_centres)
    name = cross_searchlight_name(subject, "catA", "faceA", "catB", "faceB")
    searchlight(ab_store, tmp_path / "libsvm", client, radius=RADIUS, process_mask=few_centres,
                solver="libsvm", progress=False, **CROSS)
    np.testing.assert_allclose(nib.load(tmp_path / "libsvm" / name).get_fdata()[centres],
                               by_hand["svc"][centres], atol=1e-6)
    searchlight(ab_store, tmp_path / "logreg", client, radius=RADIUS, process_mask=few_centres,
                classifier="logreg", progress=False, **CROSS)
    expected = _nilearn(imgs, mask, few_centres, _read_as_a(labels),
                        _cross_folds(labels, runs, range(12)), LogisticRegression())
    np.testing.assert_allclose(nib.load(tmp_path / "logreg" / name).get_fdata()[centres],
                               expected[centres], atol=1e-6)


@pytest.mark.slow
def test_cross_searchlight_cv_none_and_every_metric_on_the_command_line(
        ab_store, stored, process_mask, by_hand, client, tmp_path, capsys):  # noqa: F811
    subject = stored[0]
    out = tmp_path / "out"
    assert main(["searchlight", str(ab_store), "--out", str(out), "--radius", str(RADIUS),
                 "--process-mask", str(process_mask), *CLI_CROSS, "--cv", "none",
                 "--scoring", "accuracy,balanced_accuracy,roc_auc", "--quiet",
                 "--scheduler", client.scheduler.address]) == 0
    centres = _centres(process_mask)
    names = {metric: cross_searchlight_name(subject, "catA", "faceA", "catB", "faceB", metric)
             for metric in ("accuracy", "balanced_accuracy", "roc_auc")}
    assert all((out / name).is_file() for name in names.values())
    ours = nib.load(out / names["accuracy"]).get_fdata()[centres]
    assert np.isclose(ours, by_hand["none"][centres], atol=1e-6).mean() >= 0.98
    # Balanced test classes (48 B scans of each): balanced accuracy = accuracy.
    balanced = nib.load(out / names["balanced_accuracy"]).get_fdata()[centres]
    np.testing.assert_allclose(balanced, ours, atol=1e-6)
    html = write_report(out).read_text()
    assert "Cross-decoding design" in html and "tested as class_a" in html
    assert "cross-decoding searchlight of 1 subject(s)" in html


# nilearn's TFCE (permuted_ols) divides by zero at voxels where every subject's score
# equals chance exactly, which small synthetic GaussianNB maps have.
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:divide by zero encountered in divide:RuntimeWarning")
def test_cross_searchlight_group_maps_are_named_after_both_pairs(tmp_path, client):
    """Two synthetic subjects on one grid: the mean and group maps of the cross pair, and
    'nidecode group' reading the maps named after both pairs."""
    from nidecode.ingest import ingest
    from nidecode.synth import make_dataset

    directory = tmp_path / "data"
    paths = make_dataset(directory, n_subjects=2, shape=(8, 8, 4), n_runs=3,
                         scans_per_run=72)
    for path in paths:  # the second half of every face and house block: faceB, houseB
        labels = pd.read_csv(path / "labels.txt", sep=" ")
        names = labels["labels"].to_numpy(dtype=object)
        for category in ("face", "house"):
            for run in np.unique(labels["chunks"]):
                block = np.flatnonzero((names == category) & (labels["chunks"] == run))
                names[block[5:]] = f"{category}B"
        labels["labels"] = names
        labels.to_csv(path / "labels.txt", sep=" ", index=False)
    ingest(paths, tmp_path / "store.zarr", "mask", standardize="run")
    out = tmp_path / "out"
    searchlight(tmp_path / "store.zarr", out, client, radius=4.0, classifier="gnb",
                train_categories="face,house", test_categories="faceB,houseB",
                progress=False)
    for statistic in ("mean", "t", "p_fwe"):
        assert (out / cross_group_map_name("face", "house", "faceB", "houseB",
                                           statistic)).is_file()
    table = pd.read_csv(out / "searchlight.csv")
    assert table[["test_a", "test_b"]].drop_duplicates().values.tolist() == [
        ["faceB", "houseB"]]
    # Group inference reads the maps named after both pairs.
    assert main(["group", str(out), "--method", "tfce", "--n-draws", "20", "--quiet",
                 "--scheduler", client.scheduler.address]) == 0
    mean = nib.load(out / cross_group_map_name("face", "house", "faceB", "houseB", "mean"))
    tfce = nib.load(out / "group" / inference_map_name("face", "house", "tfce", "tfce"))
    assert tfce.shape == mean.shape


def test_a_run_without_test_scans_is_no_fold_and_noted(tmp_path, client, capsys):
    """A tiny subject whose run 1 has no B scans: 3 folds of 4 runs, and a note."""
    directory = tiny_subject(tmp_path / "sub01", n_runs=4)
    labels = pd.read_csv(directory / "labels.txt", sep=" ")
    labels["labels"] = np.tile(["rest", "faceA", "faceB", "catA", "catB", "rest"], 4)
    labels.loc[labels["chunks"] == 1, "labels"] = ["rest", "faceA", "faceA", "catA", "catA",
                                                   "rest"]
    labels.to_csv(directory / "labels.txt", sep=" ", index=False)
    assert main(["ingest", str(directory), "--store", str(tmp_path / "s.zarr"),
                 "--mask", "mask4_vt", "--quiet"]) == 0
    out = tmp_path / "out"
    assert main(["searchlight", str(tmp_path / "s.zarr"), "--out", str(out), "--radius", "4",
                 *CLI_CROSS, "--classifier", "gnb", "--per-fold",
                 "--scheduler", client.scheduler.address]) == 0
    note = "sub01, catA vs faceA tested on catB vs faceB: run(s) 1 have no test scans: no fold"
    assert f"note: {note}" in capsys.readouterr().err
    assert note in json.loads((out / "run.json").read_text())["notes"]
    folds = nib.load(out / cross_searchlight_name("sub01", "catA", "faceA", "catB", "faceB",
                                                  "accuracy_folds"))
    assert folds.shape[-1] == 3


@pytest.mark.slow
def test_cross_searchlight_permutations(ab_store, stored, process_mask, by_hand,  # noqa: F811
                                        client, tmp_path):
    """The observed map is the cross searchlight's; each null map is the map of labels
    permuted within the runs of the training scans and of the test scans apart."""
    subject, imgs, mask, labels, runs = stored
    out = tmp_path / "out"
    table = permute(ab_store, out, client, n_permutations=3, radius=RADIUS,
                    classifier="gnb", progress=False, **CROSS)
    assert table[["test_a", "test_b"]].values.tolist() == [["catB", "faceB"]]
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["design"] == [{"train": ["catA", "faceA"], "test": ["catB", "faceB"]}]
    mask_voxels = int(np.asarray(mask.dataobj).astype(bool).sum())
    null = np.load(out / null_name(subject, "catA", "faceA", searchlight=True))
    assert null.shape == (3, mask_voxels)  # every mask voxel is a centre here
    observed = nib.load(out / cross_searchlight_name(subject, "catA", "faceA", "catB",
                                                     "faceB"))
    centres = _centres(process_mask)
    np.testing.assert_allclose(observed.get_fdata()[centres], by_hand["gnb"][centres],
                               atol=1e-6)
    for statistic in ("p", "p_fwe"):
        assert (out / cross_searchlight_name(subject, "catA", "faceA", "catB", "faceB",
                                             statistic)).is_file()
    # Permutation 1 by hand: the relabelled samples through nilearn.
    design = store.read_design(ab_store, subject)
    job = PairJob(subject, "catA", "faceA", 0, "catB", "faceB")
    scans, samples, folds = pair_samples(design, job, "logo")
    groups = permutation_groups(design, job, scans)
    permuted = relabel(samples, groups, (subject, "catA", "faceA"), 0, 1)
    n_train = np.count_nonzero(np.isin(labels, ["faceA", "catA"]))
    for part in (slice(None, n_train), slice(n_train, None)):  # each set within its runs
        for run in range(12):
            in_run = runs[scans[part]] == run
            assert sorted(permuted[part][in_run]) == sorted(samples[part][in_run])
    sample_imgs = nib.Nifti1Image(imgs.get_fdata()[..., scans], imgs.affine)
    expected = _nilearn(sample_imgs, mask, process_mask, permuted,
                        [(fold.train, fold.test) for fold in folds], GaussianNB())
    full = np.zeros(mask_voxels)
    full[:] = null[1]
    np.testing.assert_allclose(unmask(full, mask).get_fdata()[centres], expected[centres],
                               atol=1e-6)


@pytest.mark.slow
def test_searchlight_estimator_cross_decoding_equals_nilearn_by_hand(stored, process_mask,
                                                                     by_hand, client):
    _, imgs, mask, labels, runs = stored
    keep = np.flatnonzero(np.isin(labels, ["faceA", "catA", "faceB", "catB"]))
    imgs = nib.Nifti1Image(imgs.get_fdata()[..., keep], imgs.affine)
    for estimator, expected, cluster in ((GaussianNB(), by_hand["gnb"], None),
                                         (SVC(kernel="linear"), by_hand["svc"], client)):
        light = SearchLight(mask, process_mask_img=process_mask, radius=RADIUS,
                            estimator=estimator, cv=LeaveOneGroupOut(), test_labels=READ_AS,
                            client=cluster)
        light.fit(imgs, labels[keep], groups=runs[keep])
        centres = _centres(process_mask)
        assert light.n_folds_ == 12
        same = np.isclose(light.scores_[centres], expected[centres], atol=1e-6)
        assert same.mean() >= (1.0 if isinstance(estimator, GaussianNB) else 0.98)


def test_searchlight_estimator_leave_one_subject_out_equals_nilearn():
    """Three synthetic subjects on one grid, concatenated: LeaveOneGroupOut over subjects."""
    subjects = [make_subject(seed, shape=(8, 8, 4), n_runs=2, scans_per_run=72)
                for seed in range(3)]
    mask = subjects[0].vt_mask
    X, y, groups = [], [], []
    for index, subject in enumerate(subjects):
        keep = subject.labels["labels"].isin(["face", "house"]).to_numpy()
        data = apply_mask(subject.bold, mask)[keep].astype(np.float64)
        X.append((data - data.mean(axis=0)) / data.std(axis=0))  # each subject z-scored
        y.extend(subject.labels["labels"][keep])
        groups.extend([index] * int(keep.sum()))
    imgs = unmask(np.concatenate(X), mask)
    y, groups = np.array(y), np.array(groups)
    for estimator in (GaussianNB(), SVC(kernel="linear")):
        ours = SearchLight(mask, radius=4.0, estimator=estimator, cv=LeaveOneGroupOut())
        ours.fit(imgs, y, groups=groups)
        theirs = NilearnSearchLight(mask_img=mask, radius=4.0, estimator=estimator,
                                    cv=LeaveOneGroupOut(), n_jobs=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs.fit(imgs, y, groups=groups)
        assert ours.n_folds_ == 3
        same = np.isclose(ours.scores_, theirs.scores_, atol=1e-6)
        assert same.mean() >= (1.0 if isinstance(estimator, GaussianNB) else 0.98)


@pytest.mark.parametrize(("arguments", "pattern"), [
    (["--train-categories", "faceA,catA"], r"--test-categories: missing"),
    (["--train-categories", "faceA,catA", "--test-categories", "faceA,catB", "--cv", "none"],
     r"--cv none: 'faceA' is both a training and a test category"),
    (["--categories", "faceA,catA", *CLI_CROSS], r"--categories and --train-categories"),
    ([*CLI_CROSS[:2], "--test-categories", "faceB,dogB"],
     r"--test-categories: no subject has scans labelled 'dogB'"),
    ([*CLI_CROSS, "--cv", "loo"], r"cv"),
])
@pytest.mark.parametrize("command", [["searchlight"], ["permute", "--searchlight",
                                                        "--n-permutations", "2"]])
def test_bad_cross_searchlight_input_is_one_line(ab_store, tmp_path, capsys,  # noqa: F811
                                                 command, arguments, pattern):
    status = main([command[0], str(ab_store), "--out", str(tmp_path / "out"), "--radius", "5",
                   *command[1:], *arguments, "--quiet"])
    one_line_error(capsys, status, pattern)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("test_labels", "message"), [
    ({}, "test_labels: the mapping is empty"),
    ({"dogB": "faceA"}, "test_labels: no scan of y is labelled 'dogB'"),
    ({"faceB": "dog"}, "test_labels: 'faceB' is read as 'dog', which no training scan"),
])
def test_searchlight_estimator_refuses_bad_test_labels(stored, process_mask, test_labels,
                                                       message):
    _, imgs, mask, labels, runs = stored
    light = SearchLight(mask, process_mask_img=process_mask, radius=RADIUS,
                        estimator=GaussianNB(), cv=LeaveOneGroupOut(), test_labels=test_labels)
    with pytest.raises(InputError, match=message):
        light.fit(imgs, labels, groups=runs)


def test_searchlight_estimator_refuses_folds_without_test_scans(stored, process_mask):
    _, imgs, mask, labels, runs = stored
    light = SearchLight(mask, process_mask_img=process_mask, radius=RADIUS,
                        estimator=GaussianNB(), test_labels=READ_AS,
                        cv=[(np.flatnonzero(runs > 0), np.flatnonzero(runs == 0)[:1])])
    with pytest.raises(InputError, match="test_labels: no fold of cv tests a test scan"):
        light.fit(imgs, labels, groups=runs)
