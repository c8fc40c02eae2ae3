"""The Zarr store: round trip, atomic replacement, checksums, format."""

import json
import os

import numpy as np
import pytest
import zarr

from nidecode import store
from nidecode.errors import InputError


def _write(path, subject="s1", seed=0, n_scans=12, shape=(3, 4, 2)):
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    mask.flat[::2] = True
    X = rng.normal(size=(n_scans, int(mask.sum())))
    labels = np.array(["face", "cat", "rest"] * (n_scans // 3))
    runs = np.repeat(np.arange(n_scans // 4), 4)
    affine = np.diag([-3.5, 3.75, 3.75, 1.0])
    store.write_subject(path, subject, X, labels, runs, mask, affine,
                        {"standardize": "run"}, {"bold": "b.nii.gz"})
    return X, labels, runs, mask, affine


def test_round_trip(tmp_path):
    path = tmp_path / "s.zarr"
    X, labels, runs, mask, affine = _write(path)
    assert store.list_subjects(path) == ["s1"]
    design = store.read_design(path, "s1")
    np.testing.assert_array_equal(design.labels, labels)
    np.testing.assert_array_equal(design.runs, runs)
    assert design.n_voxels == X.shape[1]
    data = store.read_timeseries(path, "s1", verify=design.checksum)
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, X.astype(np.float32))
    np.testing.assert_array_equal(store.read_timeseries(path, "s1", voxels=slice(2, 5)),
                                  X[:, 2:5].astype(np.float32))
    read_mask, read_affine = store.read_geometry(path, "s1")
    np.testing.assert_array_equal(read_mask, mask)
    np.testing.assert_array_equal(read_affine, affine)
    attributes = store.read_attributes(path, "s1")
    assert attributes["cleaning"] == {"standardize": "run"}
    # Chunked along voxels: a worker reads a block of voxels for all scans.
    assert zarr.open_group(str(path))["s1"]["X"].chunks[0] == X.shape[0]


def test_second_write_replaces_and_removes_the_old_version(tmp_path):
    path = tmp_path / "s.zarr"
    _write(path, seed=0)
    X, *_ = _write(path, seed=1)
    np.testing.assert_array_equal(store.read_timeseries(path, "s1"), X.astype(np.float32))
    assert len(list((path / ".versions").iterdir())) == 1
    assert store.list_subjects(path) == ["s1"]


def test_killed_ingest_leaves_the_previous_subject_and_its_leftover_is_swept(tmp_path):
    path = tmp_path / "s.zarr"
    X, *_ = _write(path)
    # A version written by a killed ingest is never published.
    leftover = path / ".versions" / "s1-dead"
    zarr.open_group(str(leftover), mode="w").create_array("X", shape=(2, 2), dtype="f4")
    zarr.open_group(str(path / ".versions" / "s2-dead"), mode="w")
    assert store.list_subjects(path) == ["s1"]
    np.testing.assert_array_equal(store.read_timeseries(path, "s1"), X.astype(np.float32))
    store.create_store(path)  # young leftovers may belong to a running ingest: kept
    assert leftover.exists()
    os.utime(leftover, (0, 0))
    store.create_store(path)
    assert not leftover.exists()
    assert store.list_subjects(path) == ["s1"]


def test_changed_data_fails_the_checksum(tmp_path):
    path = tmp_path / "s.zarr"
    _write(path)
    design = store.read_design(path, "s1")
    zarr.open_group(str(path))["s1"]["X"][0, 0] = 42.0
    with pytest.raises(InputError, match="checksum"):
        store.read_timeseries(path, "s1", verify=design.checksum)


def test_incompatible_format_and_foreign_paths(tmp_path):
    path = tmp_path / "s.zarr"
    _write(path)
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["nidecode_format"] = 99
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="format 99"):
        store.list_subjects(path)
    with pytest.raises(InputError, match="not a nidecode store"):
        store.open_store(tmp_path / "missing.zarr")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "x").write_text("x")
    with pytest.raises(InputError, match="not a nidecode store"):
        store.create_store(tmp_path / "dir")
    with pytest.raises(InputError, match="no complete subject 'nope'"):
        store.read_design(_fresh(tmp_path), "nope")


def _fresh(tmp_path):
    path = tmp_path / "fresh.zarr"
    store.create_store(path)
    return path


def test_large_run_ids_round_trip_and_int32_stores_stay_readable(tmp_path):
    path = tmp_path / "s.zarr"
    rng = np.random.default_rng(0)
    mask = np.ones((2, 2, 1), bool)
    runs = np.repeat([2**31, 2**40 + 1, 5], 2)
    store.write_subject(path, "s1", rng.normal(size=(6, 4)), ["a", "b"] * 3, runs, mask,
                        np.eye(4), {}, {})
    np.testing.assert_array_equal(store.read_design(path, "s1").runs, runs)
    # A store written before runs were int64 holds int32 runs.
    group = zarr.open_group(str(path))["s1"]
    del group["runs"]
    group.create_array("runs", data=np.repeat([0, 1, 2], 2).astype(np.int32))
    design = store.read_design(path, "s1")
    assert design.runs.dtype == np.int64
    np.testing.assert_array_equal(design.runs, np.repeat([0, 1, 2], 2))


@pytest.mark.parametrize("subject", ["zarr.json", ".versions", ".link-x", "", ".", "..",
                                     "a/b", "a\\b", ".hidden", "c\nd"])
def test_subject_ids_the_store_uses_itself_are_refused_before_writing(tmp_path, subject):
    path = tmp_path / "s.zarr"
    X, *_ = _write(path)
    before = sorted(str(entry) for entry in path.rglob("*"))
    with pytest.raises(InputError, match="subject id .*: .*rename") as error:
        _write(path, subject=subject)
    assert "\n" not in str(error.value)
    assert sorted(str(entry) for entry in path.rglob("*")) == before
    np.testing.assert_array_equal(store.read_timeseries(path, "s1"), X.astype(np.float32))
