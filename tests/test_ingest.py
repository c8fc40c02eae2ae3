"""Ingest: NIfTI + labels + mask into the store, equal to nilearn's masking."""

import numpy as np
import pytest
from nilearn import signal
from nilearn.maskers import NiftiMasker

from nidecode import store
from nidecode.errors import InputError
from nidecode.ingest import ingest
from nidecode.io.haxby import read_labels
from tests.conftest import tiny_subject


def test_real_slice_global_equals_nifti_masker_bit_for_bit(haxby_slice_dir, haxby_store):
    X = store.read_timeseries(haxby_store["global"], "haxby2001_slice")
    expected = NiftiMasker(mask_img=haxby_slice_dir / "mask.nii.gz",
                           standardize="zscore_sample").fit_transform(
                               haxby_slice_dir / "bold.nii.gz")
    np.testing.assert_array_equal(X, expected)
    design = store.read_design(haxby_store["global"], "haxby2001_slice")
    labels = read_labels(haxby_slice_dir / "labels.txt")
    np.testing.assert_array_equal(design.labels, labels["labels"])
    np.testing.assert_array_equal(design.runs, labels["chunks"])


def test_drop_scans_and_detrend(tmp_path):
    directory = tiny_subject(tmp_path / "sub01")
    path = tmp_path / "s.zarr"
    ingest([directory], path, "mask4_vt", standardize="run", detrend=True, drop_scans=2)
    design = store.read_design(path, "sub01")
    assert len(design.labels) == 3 * 4
    np.testing.assert_array_equal(design.labels[:4], ["face", "cat", "cat", "rest"])
    raw = NiftiMasker(mask_img=directory / "mask4_vt.nii.gz", standardize=None).fit_transform(
        directory / "bold.nii.gz")
    keep = np.tile(np.arange(6) >= 2, 3)
    expected = signal.clean(raw[keep], runs=design.runs, detrend=True,
                            standardize="zscore_sample")
    np.testing.assert_allclose(store.read_timeseries(path, "sub01"), expected, atol=1e-6)
    cleaning = store.read_attributes(path, "sub01")["cleaning"]
    assert cleaning == {"standardize": "run", "detrend": True, "drop_scans": 2,
                        "n_constant_voxels": 0}


def test_mask_by_path_and_small_blocks_give_the_same_store(tmp_path):
    directory = tiny_subject(tmp_path / "sub01")
    ingest([directory], tmp_path / "a.zarr", "mask4_vt", block_size=64)
    ingest([directory], tmp_path / "b.zarr", directory / "mask4_vt.nii.gz", block_size=5)
    np.testing.assert_array_equal(store.read_timeseries(tmp_path / "a.zarr", "sub01"),
                                  store.read_timeseries(tmp_path / "b.zarr", "sub01"))


def test_duplicate_subject_ids_are_refused(tmp_path):
    first = tiny_subject(tmp_path / "a" / "sub01")
    second = tiny_subject(tmp_path / "b" / "sub01")
    with pytest.raises(InputError, match="subject id 'sub01' already used"):
        ingest([first, second], tmp_path / "s.zarr", "mask4_vt")
