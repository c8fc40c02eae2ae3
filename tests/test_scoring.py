"""Issue #15: balanced accuracy, ROC AUC, balanced class weights and activation patterns."""


import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import LeaveOneGroupOut, cross_validate
from sklearn.svm import SVC

from nidecode import store
from nidecode.analyses.decode import decode
from nidecode.analyses.permute import permute
from nidecode.cli import main
from nidecode.cv import make_folds
from nidecode.errors import NidecodeWarning, ParameterError
from nidecode.ingest import ingest
from nidecode.outdir import null_name, patterns_name, weights_name
from nidecode.solvers.svc import cross_validate_svc
from nidecode.stats import haufe_pattern

METRICS = ["accuracy", "balanced_accuracy", "roc_auc"]


def _pair_data(path, pair=("cat", "face")):
    (subject, design), = store.read_designs(path).items()
    X = store.read_timeseries(path, subject)
    selected = np.isin(design.labels, pair)
    return subject, X[selected], design.labels[selected], design.runs[selected]


# C = 1 separates the slice's pairs (no penalty binds: class weights change
# nothing); C = 0.001 puts support vectors at their bound, where they do.
@pytest.mark.parametrize("C", [1.0, 0.001])
@pytest.mark.parametrize("class_weight", ["balanced", None])
def test_fold_scores_equal_sklearn_cross_validate_on_rare_cat(rare_cat_store, client, tmp_path,
                                                               class_weight, C):
    subject, X, y, runs = _pair_data(rare_cat_store)
    assert (y == "cat").sum() == 36 and (y == "face").sum() == 108
    expected = cross_validate(SVC(kernel="linear", C=C, class_weight=class_weight), X, y,
                              cv=LeaveOneGroupOut(), groups=runs, scoring=METRICS)
    decode(rare_cat_store, tmp_path / "out", client, categories=["face", "cat"], C=C,
           scoring=["roc_auc", "balanced_accuracy", "accuracy"], class_weight=class_weight,
           progress=False)
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert list(scores.columns[6:9]) == METRICS  # after subject, both pairs and fold
    for metric in METRICS:
        np.testing.assert_allclose(scores[metric], expected[f"test_{metric}"], rtol=0,
                                   atol=1e-12)
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    for metric in METRICS:
        assert summary[f"mean_{metric}"].iloc[0] == pytest.approx(
            expected[f"test_{metric}"].mean(), abs=1e-12)
        assert summary[f"std_{metric}"].iloc[0] == pytest.approx(
            expected[f"test_{metric}"].std(ddof=1), abs=1e-12)


def test_balanced_weights_change_the_fits_on_rare_cat(rare_cat_store):
    _, X, y, runs = _pair_data(rare_cat_store)
    folds = make_folds(runs, "logo")
    plain = cross_validate_svc(X, y, folds, C=0.001)
    balanced = cross_validate_svc(X, y, folds, C=0.001, class_weight="balanced")
    assert not np.allclose(plain.coef, balanced.coef)
    assert balanced.accuracy.mean() != plain.accuracy.mean()
    for index, fold in enumerate(folds):
        reference = SVC(kernel="linear", C=0.001, class_weight="balanced").fit(
            X[fold.train], y[fold.train])
        np.testing.assert_array_equal(balanced.coef[index], reference.coef_[0])
        np.testing.assert_array_equal(balanced.intercept[index], reference.intercept_[0])
        np.testing.assert_array_equal(balanced.test_decision[index],
                                      reference.decision_function(X[fold.test]))


def test_patterns_equal_cov_w_over_var_from_the_store(haxby_store, client, tmp_path):
    path = haxby_store["run"]
    decode(path, tmp_path / "out", client, categories=["face", "cat"], progress=False)
    subject, X, y, runs = _pair_data(path)
    weights = nib.load(tmp_path / "out" / weights_name(subject, "cat", "face"))
    mask = store.read_geometry(path, subject)[0]
    w = weights.get_fdata()[mask]
    coef = cross_validate_svc(X, y, make_folds(runs, "logo")).coef.mean(axis=0)
    np.testing.assert_allclose(w, coef.astype(np.float32), rtol=0, atol=0)
    X64 = X.astype(np.float64)
    by_hand = np.cov(X64, rowvar=False) @ coef / np.var(X64 @ coef, ddof=1)
    pattern = nib.load(tmp_path / "out" / patterns_name(subject, "cat", "face")).get_fdata()
    np.testing.assert_allclose(pattern[mask], by_hand, rtol=1e-5, atol=1e-6)
    assert np.count_nonzero(pattern[~mask]) == 0


def test_noise_cancelling_voxel_has_a_large_weight_and_a_near_zero_pattern():
    rng = np.random.default_rng(0)
    n = 1200
    y = np.repeat([0, 1], n // 2)
    noise = 2 * rng.normal(size=n)
    # Voxel 0: signal plus a strong noise; voxel 1: that noise only. The
    # classifier subtracts voxel 1 from voxel 0; voxel 1 holds no class information.
    X = np.column_stack([y + noise + 0.2 * rng.normal(size=n), noise])
    folds = make_folds(np.repeat(np.arange(4), n // 4), "logo")
    w = cross_validate_svc(X, y.astype(str), folds).coef.mean(axis=0)
    assert abs(w[1]) > 0.95 * abs(w[0])  # as large a weight on the noise voxel
    pattern = haufe_pattern(X, w)
    assert abs(pattern[1]) < 0.02 * abs(pattern[0])  # but next to no pattern
    assert pattern[0] > 0 and w[0] > 0  # positive favours the second class, as the weights


def test_permute_p_values_per_metric_from_saved_nulls(rare_cat_store, client, tmp_path):
    out = tmp_path / "perm"
    table = permute(rare_cat_store, out, client, n_permutations=9, categories=["face", "cat"],
                    scoring="accuracy,balanced_accuracy,roc_auc", class_weight="balanced",
                    progress=False)
    row = table.iloc[0]
    subject = row["subject"]
    for metric, column in (("accuracy", "p_value"), ("balanced_accuracy",
                                                    "p_value_balanced_accuracy"),
                           ("roc_auc", "p_value_roc_auc")):
        null = np.load(out / null_name(subject, "cat", "face", metric=metric))
        assert len(null) == 9
        assert row[column] == (1 + np.sum(null >= row[metric])) / (1 + 9)
    # The observed scores are decode's.
    decode(rare_cat_store, tmp_path / "dec", client, categories=["face", "cat"],
           scoring=METRICS, class_weight="balanced", progress=False)
    summary = pd.read_csv(tmp_path / "dec" / "summary.csv")
    for metric in METRICS:
        assert row[metric] == pytest.approx(summary[f"mean_{metric}"].iloc[0], abs=1e-12)


def test_one_class_fold_gets_an_empty_auc_and_a_warning(tmp_path, client):
    from tests.conftest import tiny_subject

    # 16 face/cat scans ffcc ffcc ...: 6 contiguous folds of 3, 3, 3, 3, 2, 2
    # scans; the last two hold face only and cat only.
    subject = tiny_subject(tmp_path / "sub-01", n_runs=4)
    path = tmp_path / "store.zarr"
    ingest([subject], path, "mask4_vt")
    with pytest.warns(NidecodeWarning, match="test scans of one class only"):
        decode(path, tmp_path / "out", client, cv="kfold:6", scoring="roc_auc",
               progress=False)
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert scores["roc_auc"].isna().tolist() == [False] * 4 + [True] * 2
    assert scores["accuracy"].notna().all()


def test_group_table_tests_each_metric_against_one_half():
    from nidecode.results import group_table

    summary = pd.DataFrame({"subject": ["s1", "s2", "s3"], "class_a": "cat",
                            "class_b": "face", "mean_accuracy": [0.8, 0.7, 0.75],
                            "chance": [0.75, 0.75, 0.75],
                            "mean_roc_auc": [0.6, 0.7, 0.8]})
    group = group_table(summary)
    assert group["chance"].iloc[0] == 0.75 and group["chance_roc_auc"].iloc[0] == 0.5
    assert group["mean_roc_auc"].iloc[0] == pytest.approx(0.7)
    assert group["t_roc_auc"].iloc[0] == pytest.approx(0.2 / (0.1 / np.sqrt(3)))


@pytest.mark.parametrize(("argv", "message"), [
    (["--scoring", "accuracy,f1"], "--scoring accuracy,f1: must be one or more of "),
    (["--class-weight", "auto"], "--class-weight auto: must be one of 'none', 'balanced'"),
])
@pytest.mark.parametrize("command", ["decode", "permute"])
def test_bad_scoring_and_class_weight_one_line_exit_2(haxby_store, tmp_path, capsys, argv,
                                                      message, command):
    extra = ["--n-permutations", "5"] if command == "permute" else []
    status = main([command, str(haxby_store["run"]), "--out", str(tmp_path / "out"), *extra,
                   *argv])
    error = capsys.readouterr().err
    assert status == 2
    assert error.startswith(f"nidecode: error: {message}") and error.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("scoring", ["", [], ["accuracy", "auc"], 3])
def test_bad_scoring_in_the_api(haxby_store, tmp_path, client, scoring):
    with pytest.raises(ParameterError, match="'scoring' parameter of decode"):
        decode(haxby_store["run"], tmp_path / "out", client, scoring=scoring)


def test_multiclass_balanced_accuracy_equals_sklearn_on_rare_cat(rare_cat_store, client,
                                                                 tmp_path):
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import cross_val_predict

    (subject, design), = store.read_designs(rare_cat_store).items()
    X = store.read_timeseries(rare_cat_store, subject)
    keep = np.isin(design.labels, ["cat", "face", "house"])
    predicted = cross_val_predict(SVC(kernel="linear"), X[keep], design.labels[keep],
                                  cv=LeaveOneGroupOut(), groups=design.runs[keep])
    decode(rare_cat_store, tmp_path / "out", client, categories=["cat", "face", "house"],
           progress=False)
    table = pd.read_csv(tmp_path / "out" / "multiclass" / "accuracy.csv")
    expected = balanced_accuracy_score(design.labels[keep], predicted)
    assert table["balanced_accuracy"].item() == pytest.approx(expected, abs=1e-12)
    assert table["balanced_accuracy"].item() != table["accuracy"].item()


def test_scoring_and_class_weight_are_part_of_the_identity(haxby_store, client, tmp_path):
    from nidecode.errors import OutputDirError

    decode(haxby_store["run"], tmp_path / "out", client, categories=["face", "cat"],
           progress=False)
    for options in ({"scoring": "roc_auc"}, {"class_weight": "balanced"}):
        with pytest.raises(OutputDirError):
            decode(haxby_store["run"], tmp_path / "out", client, categories=["face", "cat"],
                   progress=False, **options)
    # The same scoring written otherwise is the same run (resumed).
    decode(haxby_store["run"], tmp_path / "out", client, categories=["face", "cat"],
           scoring=["accuracy"], class_weight="none", progress=False)


def test_scores_table_rows_of_several_pairs():
    """One row per fold, sorted by subject, pair and fold; each pair's names on its rows."""
    from nidecode.results import PairResult, scores_table

    def result(subject, class_a, class_b, folds, accuracy, test_a=""):
        n = len(folds)
        return PairResult(subject, class_a, class_b, np.array(folds), np.array(accuracy),
                          np.full(n, 10), np.full(n, 2), np.zeros((n, 3)), np.empty(0, int),
                          np.empty(0), np.array(accuracy) / 2, np.full(n, np.nan),
                          np.zeros(3), test_a, "y" if test_a else "")

    results = [result("s2", "a", "b", [1, 0], [0.5, 1.0]),
               result("s1", "c", "d", [0, 1, 2], [0.25, 0.75, 1.0], test_a="x")]
    chance = {("s2", "a", "b"): np.array([0.5, 0.6]), ("s1", "c", "d"): np.array([0.5] * 3)}
    table = scores_table(results, chance, ("accuracy", "roc_auc"))
    assert list(table.columns) == ["subject", "class_a", "class_b", "test_a", "test_b", "fold",
                                   "accuracy", "roc_auc", "n_train", "n_test", "chance"]
    assert table[["subject", "class_a", "test_a", "test_b", "fold"]].values.tolist() == [
        ["s1", "c", "x", "y", 0], ["s1", "c", "x", "y", 1], ["s1", "c", "x", "y", 2],
        ["s2", "a", "a", "b", 0], ["s2", "a", "a", "b", 1]]
    assert table["accuracy"].tolist() == [0.25, 0.75, 1.0, 1.0, 0.5]
    assert table["chance"].tolist() == [0.5, 0.5, 0.5, 0.6, 0.5]
    assert table["roc_auc"].isna().all() and table["n_train"].tolist() == [10] * 5
