"""Cross-decoding (issue #16, part 1): train on some categories, test on others."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.naive_bayes import GaussianNB
from sklearn.svm import SVC

from nidecode import store
from nidecode.analyses.decode import decode
from nidecode.analyses.permute import permute
from nidecode.analyses.plan import (
    PairJob,
    cross_notes,
    pair_samples,
    permutation_groups,
    plan_cross,
)
from nidecode.analyses.tasks import relabel
from nidecode.cli import main
from nidecode.cv import make_cross_folds
from nidecode.datasets import load_haxby_slice
from nidecode.errors import InputError
from nidecode.outdir import null_name, weights_name
from nidecode.report import write_report
from nidecode.results import accuracy_matrix

READ_AS = {"faceB": "faceA", "catB": "catA"}


@pytest.fixture(scope="module")
def ab_store(tmp_path_factory):
    """The real slice, the first 5 scans of every face and cat block relabelled
    faceA/catA and the last 4 faceB/catB."""
    from nidecode.ingest import ingest

    directory = tmp_path_factory.mktemp("cross")
    data = directory / "slice"
    shutil.copytree(load_haxby_slice(), data)
    labels = pd.read_csv(data / "labels.txt", sep=" ")
    names = labels["labels"].to_numpy(dtype=object)
    for category in ("face", "cat"):
        for run in np.unique(labels["chunks"]):
            block = np.flatnonzero((names == category) & (labels["chunks"].to_numpy() == run))
            assert len(block) == 9 and np.all(np.diff(block) == 1)  # one block per run
            names[block[:5]], names[block[5:]] = f"{category}A", f"{category}B"
    labels["labels"] = names
    labels.to_csv(data / "labels.txt", sep=" ", index=False)
    path = directory / "ab.zarr"
    ingest([data], path, "mask", standardize="run")
    return path


def _stored(path):
    subject = store.list_subjects(path)[0]
    design = store.read_design(path, subject)
    return subject, store.read_timeseries(path, subject), design.labels, design.runs


def _by_hand(X, labels, train, test, estimator=None):
    """SVC fitted on the A scans of ``train``, scored on the B scans of ``test`` read as A."""
    model = (estimator or SVC(kernel="linear", C=1.0)).fit(X[train], labels[train])
    truth = np.array([READ_AS[name] for name in labels[test]])
    predicted = model.predict(X[test])
    auc = (roc_auc_score(truth == "faceA", model.decision_function(X[test]))
           if hasattr(model, "decision_function") else np.nan)
    return np.mean(predicted == truth), balanced_accuracy_score(truth, predicted), auc


def test_cross_decoding_equals_svc_by_hand_fold_by_fold(ab_store, client, tmp_path):
    subject, X, labels, runs = _stored(ab_store)
    out = tmp_path / "out"
    summary = decode(ab_store, out, client, train_categories=["faceA", "catA"],
                     test_categories=["faceB", "catB"],
                     scoring=["accuracy", "balanced_accuracy", "roc_auc"], progress=False)
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns[:6]) == ["subject", "class_a", "class_b", "test_a", "test_b",
                                        "fold"]
    pairs = scores[["class_a", "class_b", "test_a", "test_b"]].drop_duplicates()
    assert pairs.values.tolist() == [["catA", "faceA", "catB", "faceB"]]
    assert scores["fold"].tolist() == list(range(12))
    is_a, is_b = np.isin(labels, ["faceA", "catA"]), np.isin(labels, ["faceB", "catB"])
    for row in scores.itertuples():
        train = np.flatnonzero(is_a & (runs != row.fold))
        test = np.flatnonzero(is_b & (runs == row.fold))
        accuracy, balanced, auc = _by_hand(X, labels, train, test)
        assert (row.n_train, row.n_test) == (len(train), len(test)) == (110, 8)
        assert row.accuracy == pytest.approx(accuracy, abs=1e-12)
        assert row.balanced_accuracy == pytest.approx(balanced, abs=1e-12)
        assert row.roc_auc == pytest.approx(auc, abs=1e-12)
        assert row.chance == 0.5
    assert summary["mean_accuracy"].iloc[0] == pytest.approx(scores["accuracy"].mean())
    assert (out / weights_name(subject, "catA", "faceA")).is_file()
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["design"] == [{"train": ["catA", "faceA"], "test": ["catB", "faceB"]}]
    assert manifest["identity"]["test_categories"] == ["faceB", "catB"]
    assert manifest["identity"]["categories"] == ["catA", "catB", "faceA", "faceB"]
    assert not (out / "multiclass").exists()
    assert accuracy_matrix(summary).index.tolist() == ["catA vs faceA (tested on catB vs faceB)"]
    html = write_report(out).read_text()
    assert "Cross-decoding design" in html and "tested as class_a" in html


def test_cross_decoding_with_another_classifier(ab_store, client, tmp_path):
    _, X, labels, runs = _stored(ab_store)
    decode(ab_store, tmp_path / "out", client, train_categories=["faceA", "catA"],
           test_categories=["faceB", "catB"], classifier="gnb", progress=False)
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    is_a, is_b = np.isin(labels, ["faceA", "catA"]), np.isin(labels, ["faceB", "catB"])
    expected = [_by_hand(X, labels, np.flatnonzero(is_a & (runs != run)),
                         np.flatnonzero(is_b & (runs == run)),
                         GaussianNB())[0]
                for run in range(12)]
    np.testing.assert_allclose(scores["accuracy"], expected, rtol=0, atol=1e-12)


def test_cross_decoding_cv_none_on_the_command_line(ab_store, client, tmp_path, capsys):
    _, X, labels, _ = _stored(ab_store)
    out = tmp_path / "out"
    assert main(["decode", str(ab_store), "--out", str(out), "--train-categories",
                 "faceA,catA", "--test-categories", "faceB,catB", "--cv", "none", "--quiet",
                 "--scheduler", client.scheduler.address]) == 0
    scores = pd.read_csv(out / "scores.csv")
    train = np.flatnonzero(np.isin(labels, ["faceA", "catA"]))
    test = np.flatnonzero(np.isin(labels, ["faceB", "catB"]))
    assert scores[["fold", "n_train", "n_test"]].values.tolist() == [[0, 120, 96]]
    assert scores["accuracy"].iloc[0] == pytest.approx(_by_hand(X, labels, train, test)[0],
                                                       abs=1e-12)


def test_ordinary_decode_tests_each_pair_on_itself(ab_store, client, tmp_path):
    decode(ab_store, tmp_path / "out", client, categories=["faceA", "catA", "faceB"],
           progress=False)
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert len(scores) == 3 * 12
    assert (scores["test_a"] == scores["class_a"]).all()
    assert (scores["test_b"] == scores["class_b"]).all()
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert (summary["test_a"] == summary["class_a"]).all()


@pytest.mark.parametrize(("options", "message"), [
    (["--train-categories", "faceA,catA", "--test-categories", "faceB,dog"],
     "--test-categories: no subject has scans labelled 'dog'"),
    (["--train-categories", "faceA,catA", "--test-categories", "faceB"],
     "--test-categories faceB: give at least two different categories"),
    (["--train-categories", "faceA,catA,faceB", "--test-categories", "faceB,catB"],
     "give as many test as training categories"),
    (["--train-categories", "faceA,catA", "--test-categories", "catA,faceB", "--cv", "none"],
     "--cv none: 'catA' is both a training and a test category"),
    (["--train-categories", "faceA,catA", "--test-categories", "faceB,catB",
      "--categories", "faceA,catA"], "--categories and --train-categories/--test-categories"),
    (["--train-categories", "faceA,catA"], "--test-categories: missing"),
    (["--categories", "faceA,catA", "--cv", "none"], "--cv none: must be 'logo'"),
])
def test_bad_cross_designs_are_one_line(ab_store, tmp_path, capsys, options, message):
    out = tmp_path / "out"
    assert main(["decode", str(ab_store), "--out", str(out), "--quiet", *options]) == 2
    error = capsys.readouterr().err
    assert error.startswith("nidecode: error: ") and message in error
    assert error.count("\n") == 1
    assert not out.exists()  # refused before the output directory is claimed


def _design(labels, runs):
    return store.Design("s1", np.array(labels), np.array(runs), 4, "x")


def test_a_run_without_test_scans_is_no_fold_and_noted():
    design = _design(["a1", "b1", "a2", "b2", "a1", "b1", "a1", "b1", "a2", "b2"],
                     [0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    jobs = plan_cross([design], "logo", {"a1": "a2", "b1": "b2"})
    assert jobs == [PairJob("s1", "a1", "b1", 2, "a2", "b2")]
    scans, labels, folds = pair_samples(design, jobs[0], "logo")
    assert [fold.fold for fold in folds] == [0, 2]
    assert labels[folds[0].test].tolist() == ["a1", "b1"]  # a2, b2 read as a1, b1
    assert scans[folds[0].train].tolist() == [4, 5, 6, 7]
    assert cross_notes([design], jobs, "logo") == [
        "s1, a1 vs b1 tested on a2 vs b2: run(s) 1 have no test scans: no fold"]


def test_cross_kfold_never_trains_and_tests_on_one_scan():
    # Swapped roles: every scan is a training and a test sample.
    scans = np.r_[np.arange(12), np.arange(12)]
    is_train = np.arange(24) < 12
    folds = make_cross_folds(scans, np.zeros(24, int), is_train, "kfold:3")
    assert len(folds) == 3
    for fold in folds:
        assert not set(scans[fold.train]) & set(scans[fold.test])
        assert len(fold.train) == 8 and len(fold.test) == 4


def test_plan_cross_refuses_a_missing_training_category():
    design = _design(["a1", "b1", "a2", "b2"], [0, 0, 1, 1])
    with pytest.raises(InputError, match="--train-categories: no subject has scans labelled"):
        plan_cross([design], "logo", {"c1": "a2", "b1": "b2"})


def test_a_cross_fold_training_on_one_class_is_refused():
    # a1 occurs in run 0 only: the fold holding out run 0 trains on b1 alone.
    design = _design(["a1", "b1", "a2", "b2", "b1", "a2", "b2"], [0, 0, 0, 0, 1, 1, 1])
    with pytest.raises(InputError, match=r"a1 vs b1, fold 0: the training scans hold one "
                                         r"class only"):
        plan_cross([design], "logo", {"a1": "a2", "b1": "b2"})


def test_roi_permutations_of_a_cross_design(ab_store, client, tmp_path):
    subject, X, labels, runs = _stored(ab_store)
    out = tmp_path / "out"
    table = permute(ab_store, out, client, n_permutations=3, seed=7,
                    train_categories=["faceA", "catA"], test_categories=["faceB", "catB"],
                    progress=False)
    row = table.iloc[0]
    assert (row["class_a"], row["class_b"], row["test_a"], row["test_b"]) == (
        "catA", "faceA", "catB", "faceB")
    # Per run, the two A blocks exchange labels (or not), and the two B blocks apart.
    assert row["n_distinct_permutations"] == 2 ** 24
    is_a, is_b = np.isin(labels, ["faceA", "catA"]), np.isin(labels, ["faceB", "catB"])
    folds = [(np.flatnonzero(is_a & (runs != run)), np.flatnonzero(is_b & (runs == run)))
             for run in range(12)]
    assert row["accuracy"] == pytest.approx(
        np.mean([_by_hand(X, labels, train, test)[0] for train, test in folds]), abs=1e-12)
    # Permutation 0 by hand: its labels move within runs, training and test sets apart.
    job = PairJob(subject, "catA", "faceA", 12, "catB", "faceB")
    design = store.read_design(ab_store, subject)
    scans, mapped, _ = pair_samples(design, job, "logo")
    permuted = relabel(mapped, permutation_groups(design, job, scans), job.key, 7, 0)
    n_a = is_a.sum()
    for run in range(12):
        for role in (slice(0, n_a), slice(n_a, None)):
            in_run = runs[scans[role]] == run
            assert sorted(permuted[role][in_run]) == sorted(mapped[role][in_run])
    assert not np.array_equal(permuted, mapped)
    by_scan = {}
    by_scan["train"] = dict(zip(scans[:n_a], permuted[:n_a], strict=True))
    by_scan["test"] = dict(zip(scans[n_a:], permuted[n_a:], strict=True))
    accuracies = []
    for train, test in folds:
        model = SVC(kernel="linear").fit(X[train], [by_scan["train"][s] for s in train])
        accuracies.append(np.mean(model.predict(X[test]) == [by_scan["test"][s] for s in test]))
    null = np.load(out / null_name(subject, "catA", "faceA"))
    assert null[0] == pytest.approx(np.mean(accuracies), abs=1e-12)
    summary = pd.read_csv(out / "summary.csv")
    assert summary[["test_a", "test_b"]].values.tolist() == [["catB", "faceB"]]


def test_a_subject_lacking_a_category_is_noted():
    full = _design(["a1", "b1", "a2", "b2", "a1", "b1", "a2", "b2"], [0, 0, 0, 0, 1, 1, 1, 1])
    partial = store.Design("s2", np.array(["a1", "b1", "a2", "a1", "b1", "a2"]),
                           np.array([0, 0, 0, 1, 1, 1]), 4, "y")
    mapping = {"a1": "a2", "b1": "b2"}
    jobs = plan_cross([full, partial], "logo", mapping)
    assert [job.subject for job in jobs] == ["s1"]
    assert cross_notes([full, partial], jobs, "logo", mapping) == [
        "s2 has no scans labelled 'b2': the pairs of the training categories involved are "
        "skipped"]


def test_cross_kfold_equals_svc_by_hand_and_resumes(ab_store, client, tmp_path):
    import nidecode

    _, X, labels, _ = _stored(ab_store)
    out = tmp_path / "out"
    options = {"train_categories": "faceA,catA", "test_categories": ["faceB", "catB"],
               "cv": "kfold:3", "progress": False}
    nidecode.decode(ab_store, out, client, **options)
    first = pd.read_csv(out / "scores.csv")
    # KFold(3) of the pair's scans in acquisition order: scans in thirds.
    scans = np.flatnonzero(np.isin(labels, ["faceA", "catA", "faceB", "catB"]))
    part = np.repeat(np.arange(3), len(scans) // 3)
    is_a = np.isin(labels[scans], ["faceA", "catA"])
    for fold in range(3):
        train, test = scans[is_a & (part != fold)], scans[~is_a & (part == fold)]
        assert first["accuracy"][fold] == pytest.approx(_by_hand(X, labels, train, test)[0],
                                                        abs=1e-12)
    (out / "scores.csv").unlink()
    nidecode.decode(ab_store, out, client, **options)  # resumed from the saved parts
    pd.testing.assert_frame_equal(pd.read_csv(out / "scores.csv"), first)
    assert json.loads((out / "run.json").read_text())["counts"]["fits_computed"] == 0


def test_the_report_reads_test_categories_as_names(tmp_path):
    from nidecode.report.inputs import SUMMARY_COLUMNS, read_table

    path = tmp_path / "summary.csv"
    path.write_text("subject,class_a,class_b,test_a,test_b,mean_accuracy,std_accuracy,n_folds\n"
                    "s1,1,2,01,NA,0.5,0.1,12\n")
    table = read_table(path, SUMMARY_COLUMNS)
    assert table[["test_a", "test_b"]].values.tolist() == [["01", "NA"]]
