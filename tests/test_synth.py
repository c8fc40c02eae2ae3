"""Tests of the synthetic Haxby-like dataset generator (nidecode.synth)."""

from __future__ import annotations

import filecmp
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nilearn.signal import clean
from sklearn.model_selection import LeaveOneGroupOut, cross_val_score
from sklearn.svm import SVC

from nidecode import synth

SUBJECT_FILES = {
    "bold.nii.gz",
    "labels.txt",
    "mask4_vt.nii.gz",
    "mask.nii.gz",
    "signal_mask.nii.gz",
}


@pytest.fixture(scope="module")
def subject() -> synth.SyntheticSubject:
    """The default subject (seed 0), generated once."""
    return synth.make_subject(0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A written 2-subject dataset with the default parameters."""
    return synth.make_dataset(tmp_path_factory.mktemp("synth") / "data", n_subjects=2, seed=0)


def _mask(img: nib.Nifti1Image) -> np.ndarray:
    return np.asarray(img.dataobj).astype(bool)


def _decode(sub: synth.SyntheticSubject, mask: np.ndarray, pair: tuple[str, str]) -> float:
    """Mean leave-one-run-out accuracy of a linear SVC, z-scoring each run."""
    bold = np.asarray(sub.bold.dataobj)
    y = sub.labels["labels"].to_numpy()
    runs = sub.labels["chunks"].to_numpy()
    X = clean(
        bold[mask].T.astype(np.float64), runs=runs, standardize="zscore_sample", detrend=False
    )
    keep = np.isin(y, pair)
    scores = cross_val_score(
        SVC(kernel="linear"), X[keep], y[keep], cv=LeaveOneGroupOut(), groups=runs[keep]
    )
    assert scores.size == 12
    return float(scores.mean())


def test_categories() -> None:
    assert synth.CATEGORIES == (
        "bottle",
        "cat",
        "chair",
        "face",
        "house",
        "scissors",
        "scrambledpix",
        "shoe",
    )


def test_dataset_layout(dataset: list[Path]) -> None:
    assert [p.name for p in dataset] == ["subj1", "subj2"]
    assert dataset[0].parent == dataset[1].parent
    for path in dataset:
        assert path.is_dir()
        assert {p.name for p in path.iterdir()} == SUBJECT_FILES
    bold = nib.load(dataset[0] / "bold.nii.gz")
    assert bold.shape == (20, 24, 10, 1452)
    assert bold.get_data_dtype() == np.int16
    assert bold.header.get_zooms() == pytest.approx((3.5, 3.75, 3.75, 2.5))
    for name in ("mask4_vt.nii.gz", "mask.nii.gz", "signal_mask.nii.gz"):
        mask = nib.load(dataset[0] / name)
        assert mask.shape == (20, 24, 10)
        assert mask.get_data_dtype() == np.uint8
        assert set(np.unique(np.asarray(mask.dataobj))) == {0, 1}


def test_labels_file_format(dataset: list[Path]) -> None:
    path = dataset[0] / "labels.txt"
    lines = path.read_text().splitlines()
    assert lines[0] == "labels chunks"
    assert len(lines) == 1 + 1452
    assert all(len(line.split(" ")) == 2 for line in lines[1:])
    labels = pd.read_csv(path, sep=" ")
    assert list(labels.columns) == ["labels", "chunks"]
    assert labels["chunks"].dtype.kind == "i"
    assert sorted(labels["chunks"].unique()) == list(range(12))
    assert (labels["chunks"].value_counts() == 121).all()
    assert np.all(np.diff(labels["chunks"].to_numpy()) >= 0)  # runs are contiguous
    counts = labels["labels"].value_counts()
    assert counts["rest"] == 12 * 49
    assert set(counts.index) == {*synth.CATEGORIES, "rest"}
    for cat in synth.CATEGORIES:
        assert counts[cat] == 108
    per_run = pd.crosstab(labels["chunks"], labels["labels"])
    assert (per_run[list(synth.CATEGORIES)] == 9).all().all()
    # The file round-trips to the in-memory labels.
    pd.testing.assert_frame_equal(
        labels.astype({"labels": object}),
        synth.make_subject(synth.subject_seed(0, 0), n_runs=12).labels.astype({"labels": object}),
    )


def test_labels_blocks(subject: synth.SyntheticSubject) -> None:
    labels = subject.labels
    orders = []
    for _, run in labels.groupby("chunks"):
        values = run["labels"].to_numpy()
        # Run-length encoding: rest, block, rest, block, ..., rest.
        change = np.flatnonzero(values[1:] != values[:-1]) + 1
        starts = np.r_[0, change]
        lengths = np.diff(np.r_[starts, values.size])
        kinds = values[starts]
        assert list(kinds[::2]) == ["rest"] * 9
        assert sorted(kinds[1::2]) == sorted(synth.CATEGORIES)
        assert (lengths[1::2] == 9).all()
        assert lengths[::2].sum() == 49 and lengths[::2].min() >= 5
        orders.append(tuple(kinds[1::2]))
    assert len(set(orders)) > 6  # category order shuffled per run


@settings(max_examples=25, deadline=None)
@given(
    n_runs=st.integers(1, 5),
    block_length=st.integers(1, 6),
    extra_rest=st.integers(0, 20),
    seed=st.integers(0, 2**32 - 1),
)
def test_make_labels_counts(n_runs: int, block_length: int, extra_rest: int, seed: int) -> None:
    scans = 8 * block_length + extra_rest
    labels = synth.make_labels(
        np.random.default_rng(seed), n_runs=n_runs, scans_per_run=scans, block_length=block_length
    )
    assert len(labels) == n_runs * scans
    assert (labels["chunks"].value_counts().sort_index().to_numpy() == scans).all()
    counts = labels["labels"].value_counts()
    assert all(counts[c] == n_runs * block_length for c in synth.CATEGORIES)
    assert counts.get("rest", 0) == n_runs * extra_rest


def test_make_labels_rejects_too_short_runs() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        synth.make_labels(np.random.default_rng(0), scans_per_run=71)


def test_affine(subject: synth.SyntheticSubject) -> None:
    affine = subject.bold.affine
    assert affine[0, 0] == pytest.approx(-3.5)  # x flipped
    assert np.diag(affine)[1:3] == pytest.approx([3.75, 3.75])
    assert np.count_nonzero(affine[:3, :3] - np.diag(np.diag(affine[:3, :3]))) == 0
    assert np.all(affine[:3, 3] != 0)
    assert len(set(np.round(np.abs(np.diag(affine)[:3]), 6))) == 2  # anisotropic
    for img in (subject.vt_mask, subject.brain_mask, subject.signal_mask):
        np.testing.assert_array_equal(img.affine, affine)
    assert subject.bold.header.get_sform(coded=True)[1] > 0
    unflipped = synth.make_subject(0, n_runs=1, flip_x=False, voxel_size=(3.0, 3.0, 4.0))
    assert np.diag(unflipped.bold.affine)[:3] == pytest.approx([3.0, 3.0, 4.0])


def test_masks_nested(subject: synth.SyntheticSubject) -> None:
    brain, vt, sig = (_mask(m) for m in (subject.brain_mask, subject.vt_mask, subject.signal_mask))
    assert not np.any(sig & ~vt)
    assert not np.any(vt & ~brain)
    n_brain, n_vt, n_sig = int(brain.sum()), int(vt.sum()), int(sig.sum())
    assert 0.35 * brain.size < n_brain < 0.6 * brain.size  # fills most of the box
    assert 300 <= n_vt <= 600
    assert 30 <= n_sig <= n_vt // 3
    # The ROI lies in the posterior (low y) and inferior (low z) part of the brain.
    affine = subject.bold.affine
    brain_com = nib.affines.apply_affine(affine, np.argwhere(brain).mean(axis=0))
    vt_com = nib.affines.apply_affine(affine, np.argwhere(vt).mean(axis=0))
    assert vt_com[1] < brain_com[1] - 10
    assert vt_com[2] < brain_com[2] - 5
    # Nothing outside the brain.
    bold = np.asarray(subject.bold.dataobj)
    assert not bold[~brain].any()


def test_bold_values(subject: synth.SyntheticSubject) -> None:
    bold = np.asarray(subject.bold.dataobj)
    brain, vt = _mask(subject.brain_mask), _mask(subject.vt_mask)
    assert bold.dtype == np.int16
    mean = bold[brain].mean(axis=1)
    assert 750 < mean.mean() < 850
    assert 50 < mean.std() < 150
    # Temporally correlated noise: lag-1 autocorrelation of non-ROI voxels within a run.
    run = bold[brain & ~vt][:, :121].astype(np.float64)
    run -= run.mean(axis=1, keepdims=True)
    lag1 = (run[:, 1:] * run[:, :-1]).sum(axis=1) / (run**2).sum(axis=1)
    assert 0.25 < np.median(lag1) < 0.9


def test_deterministic(subject: synth.SyntheticSubject, tmp_path: Path) -> None:
    again = synth.make_subject(0)
    np.testing.assert_array_equal(np.asarray(again.bold.dataobj), np.asarray(subject.bold.dataobj))
    pd.testing.assert_frame_equal(again.labels, subject.labels)
    other = synth.make_subject(1)
    assert not np.array_equal(np.asarray(other.bold.dataobj), np.asarray(subject.bold.dataobj))
    assert not other.labels["labels"].equals(subject.labels["labels"])
    a = synth.write_subject(subject, tmp_path / "a")
    b = synth.write_subject(again, tmp_path / "b")
    for name in SUBJECT_FILES:
        assert filecmp.cmp(a / name, b / name, shallow=False), name


def test_dataset_subjects_differ(dataset: list[Path]) -> None:
    bolds = [np.asarray(nib.load(p / "bold.nii.gz").dataobj) for p in dataset]
    assert not np.array_equal(bolds[0], bolds[1])
    assert synth.subject_seed(0, 0) != synth.subject_seed(0, 1) != synth.subject_seed(1, 0)
    # The same masks (same geometry) for every subject.
    for name in ("mask4_vt.nii.gz", "mask.nii.gz"):
        masks = [np.asarray(nib.load(p / name).dataobj) for p in dataset]
        np.testing.assert_array_equal(masks[0], masks[1])


def test_decoding_in_vt(subject: synth.SyntheticSubject) -> None:
    vt = _mask(subject.vt_mask)
    face_house = _decode(subject, vt, ("face", "house"))
    chair_scissors = _decode(subject, vt, ("chair", "scissors"))
    bottle_shoe = _decode(subject, vt, ("bottle", "shoe"))
    assert 0.7 < face_house < 0.99
    assert 0.7 < chair_scissors < 0.99
    assert bottle_shoe < 0.65


def test_signal_only_in_signal_mask(subject: synth.SyntheticSubject) -> None:
    vt, sig = _mask(subject.vt_mask), _mask(subject.signal_mask)
    assert _decode(subject, sig, ("face", "house")) > 0.7
    assert _decode(subject, vt & ~sig, ("face", "house")) < 0.65


def test_null_pair_is_decodable_without_shared_pattern() -> None:
    sub = synth.make_subject(0, null_categories=())
    assert _decode(sub, _mask(sub.vt_mask), ("bottle", "shoe")) > 0.7


def test_no_signal_means_chance() -> None:
    sub = synth.make_subject(0, signal=0.0)
    assert _decode(sub, _mask(sub.vt_mask), ("face", "house")) < 0.65


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="unknown null categories"):
        synth.make_subject(0, null_categories=("bottle", "dog"))
    with pytest.raises(ValueError, match="do not fit"):
        synth.make_subject(0, scans_per_run=60)
    with pytest.raises(ValueError, match="shape"):
        synth.make_subject(0, shape=(20, 24))


def test_whole_brain_size() -> None:
    sub = synth.make_subject(0, shape=(40, 64, 64), n_runs=1)
    assert sub.bold.shape == (40, 64, 64, 121)
    brain, vt = _mask(sub.brain_mask), _mask(sub.vt_mask)
    assert 20_000 < brain.sum() < 40_000
    assert 300 <= vt.sum() <= 700
    assert not np.any(_mask(sub.signal_mask) & ~vt)
