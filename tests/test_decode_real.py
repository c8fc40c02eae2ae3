"""Decoding the real Haxby slice must equal scikit-learn and nilearn exactly."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn import signal
from nilearn.maskers import NiftiMasker
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict, cross_val_score
from sklearn.svm import SVC

from nidecode.analyses.decode import decode

# Fold accuracies for face vs cat, runs 0-11, from the data's README.
README_FOLDS = {
    "global": [.8889, .6111, .8333, .7778, .5556, 1, .5556, .8333, .5556, .6667, .6667, .9444],
    "run": [.9444, .5, .8889, .8889, .9444, 1, .9444, .9444, .5, .5, .7222, .9444],
}
README_MEAN_ALL_PAIRS = {"global": 0.8180, "run": 0.8641}


def _reference_data(slice_dir, standardize):
    """The seed tutorial's data: NiftiMasker, then per-run z-scores if asked."""
    labels = pd.read_csv(slice_dir / "labels.txt", sep=" ")
    if standardize == "global":
        masker = NiftiMasker(mask_img=slice_dir / "mask.nii.gz", standardize="zscore_sample")
        X = masker.fit_transform(slice_dir / "bold.nii.gz")
    else:
        masker = NiftiMasker(mask_img=slice_dir / "mask.nii.gz", standardize=None)
        X = signal.clean(masker.fit_transform(slice_dir / "bold.nii.gz"),
                         runs=labels["chunks"].to_numpy(), detrend=False,
                         standardize="zscore_sample")
    return masker, X, labels["labels"].to_numpy(), labels["chunks"].to_numpy()


@pytest.mark.parametrize("standardize", ["global", "run"])
def test_face_vs_cat_equals_sklearn_and_readme(haxby_slice_dir, haxby_store, client,
                                               tmp_path, standardize):
    decode(haxby_store[standardize], tmp_path, client, categories=["face", "cat"],
           progress=False)
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert list(scores["fold"]) == list(range(12))
    assert (scores[["class_a", "class_b"]] == ["cat", "face"]).all(axis=None)
    assert (scores["n_test"] == 18).all() and (scores["n_train"] == 198).all()

    masker, X, labels, runs = _reference_data(haxby_slice_dir, standardize)
    keep = np.isin(labels, ["face", "cat"])
    expected = cross_val_score(SVC(kernel="linear"), X[keep], labels[keep],
                               cv=LeaveOneGroupOut(), groups=runs[keep])
    np.testing.assert_array_equal(scores["accuracy"].to_numpy(), expected)
    np.testing.assert_allclose(scores["accuracy"], README_FOLDS[standardize], atol=5e-5)

    # Weights: the fold-mean of svc.coef_, through masker.inverse_transform.
    coefs = [SVC(kernel="linear").fit(X[keep][train], labels[keep][train]).coef_[0]
             for train, _ in LeaveOneGroupOut().split(X[keep], groups=runs[keep])]
    expected_map = masker.inverse_transform(np.mean(coefs, axis=0)).get_fdata()
    weights = nib.load(tmp_path / "weights" / "haxby2001_slice_cat_vs_face.nii.gz")
    np.testing.assert_allclose(weights.get_fdata(), expected_map, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(weights.affine, nib.load(haxby_slice_dir / "bold.nii.gz").affine)


@pytest.mark.slow
@pytest.mark.parametrize("standardize", ["global", "run"])
def test_all_pairs_mean_equals_readme(haxby_slice_dir, haxby_store, client, tmp_path,
                                      standardize):
    summary = decode(haxby_store[standardize], tmp_path, client, progress=False)
    assert len(summary) == 28
    assert summary["mean_accuracy"].mean() == pytest.approx(README_MEAN_ALL_PAIRS[standardize],
                                                            abs=5e-5)
    # Every pair equals cross_val_score on the tutorial's data.
    _, X, labels, runs = _reference_data(haxby_slice_dir, standardize)
    for row in summary.sample(6, random_state=0).itertuples():
        keep = np.isin(labels, [row.class_a, row.class_b])
        expected = cross_val_score(SVC(kernel="linear"), X[keep], labels[keep],
                                   cv=LeaveOneGroupOut(), groups=runs[keep])
        assert row.mean_accuracy == pytest.approx(expected.mean(), abs=1e-12)

    # One-vs-one multiclass from the pairwise fits equals SVC's own multiclass.
    keep = labels != "rest"
    predicted = cross_val_predict(SVC(kernel="linear"), X[keep], labels[keep],
                                  cv=LeaveOneGroupOut(), groups=runs[keep])
    confusion = pd.read_csv(tmp_path / "multiclass" / "confusion_haxby2001_slice.csv",
                            index_col=0)
    expected = pd.crosstab(pd.Series(labels[keep], name="true"),
                           pd.Series(predicted, name="predicted")).reindex(
                               index=confusion.index, columns=confusion.columns, fill_value=0)
    np.testing.assert_array_equal(confusion.to_numpy(), expected.to_numpy())
    accuracy = pd.read_csv(tmp_path / "multiclass" / "accuracy.csv")
    assert accuracy["accuracy"].item() == pytest.approx(np.mean(predicted == labels[keep]))
    assert accuracy["balanced_accuracy"].item() == pytest.approx(
        balanced_accuracy_score(labels[keep], predicted), abs=1e-12)
    assert accuracy["n_scans"].item() == 864 and accuracy["chance"].item() == 0.125


def test_kfold_reproduces_the_seed(haxby_slice_dir, haxby_store, client, tmp_path):
    from sklearn.model_selection import KFold

    decode(haxby_store["global"], tmp_path, client, categories=["face", "cat"], cv="kfold:5",
           progress=False)
    scores = pd.read_csv(tmp_path / "scores.csv")
    _, X, labels, _ = _reference_data(haxby_slice_dir, "global")
    keep = np.isin(labels, ["face", "cat"])
    expected = cross_val_score(SVC(kernel="linear"), X[keep], labels[keep], cv=KFold(5))
    assert list(scores["fold"]) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(scores["accuracy"].to_numpy(), expected)
