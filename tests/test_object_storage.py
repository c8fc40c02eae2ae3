"""Stores, inputs and outputs on object storage (fsspec URLs), see docs/storage.md.

Against moto's S3 server started as a process on 127.0.0.1 (fixture ``s3``)
and ``memory://`` in-process (per process: no cluster workers in other
processes see it, so its tests stay in the client's process).
"""

import json
import uuid

import numpy as np
import pytest

from nidecode import fs, store


def _subject_arrays(seed=0, n_voxels=300):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(12, n_voxels)).astype(np.float32)
    labels = np.tile(["face", "cat", "face", "cat"], 3)
    runs = np.repeat(np.arange(3), 4)
    mask = np.zeros((10, 10, 4), bool)
    mask.flat[:n_voxels] = True
    return X, labels, runs, mask, np.eye(4)


def _write(location, subject="sub01", seed=0):
    X, labels, runs, mask, affine = _subject_arrays(seed)
    store.write_subject(location, subject, X, labels, runs, mask, affine, {"standardize": "run"},
                        {"bold": "x"}, mean_volume=np.ones(mask.shape))
    return X


@pytest.fixture
def memory_url():
    url = f"memory://nidecode-{uuid.uuid4().hex[:8]}"
    yield url
    fs.remove(url, recursive=True)


def _check_store_round_trip(location):
    X = _write(location)
    assert store.list_subjects(location) == ["sub01"]
    design = store.read_design(location, "sub01")
    assert design.checksum == store.checksum(X)
    assert design.version.startswith("sub01-")
    np.testing.assert_array_equal(store.read_timeseries(location, "sub01", verify=design.checksum),
                                  X)
    np.testing.assert_array_equal(store.read_timeseries(location, "sub01", voxels=slice(256, 300)),
                                  X[:, 256:])
    # Re-ingested: the published version changes, the planned one still reads.
    X2 = _write(location, seed=1)
    assert store.read_design(location, "sub01").checksum == store.checksum(X2)
    np.testing.assert_array_equal(store.read_timeseries(location, "sub01", verify=design.checksum),
                                  X)


def test_store_round_trip_on_s3(s3):
    _check_store_round_trip(f"{s3}/store.zarr")


def test_store_round_trip_in_memory(memory_url):
    _check_store_round_trip(f"{memory_url}/store.zarr")


def test_killed_ingest_leaves_an_unreferenced_version_swept_later(s3, monkeypatch):
    """A version written without its pointer (an ingest killed before publishing) is
    invisible; the next ingest publishes its own; the sweep removes the orphan."""
    location = f"{s3}/store.zarr"
    X = _write(location)
    killed = f"sub02-{uuid.uuid4().hex}"
    partial = f"{location}/.versions/{killed}"
    fs.write_bytes(f"{partial}/zarr.json", json.dumps(
        {"zarr_format": 3, "node_type": "group", "attributes": {"subject": "sub02"}}).encode())
    fs.write_bytes(f"{partial}/X/c/0/0", b"half")
    assert store.list_subjects(location) == ["sub01"]
    with pytest.raises(store.StoreError, match="no complete subject 'sub02'"):
        store.read_design(location, "sub02")
    X2 = _write(location, "sub02", seed=2)  # resumed: the ingest again
    assert store.list_subjects(location) == ["sub01", "sub02"]
    np.testing.assert_array_equal(store.read_timeseries(location, "sub02"), X2)
    assert killed in fs.listdir(f"{location}/.versions")
    monkeypatch.setattr(store, "ORPHAN_AGE_S", -1.0)
    store.create_store(location)  # sweeps
    versions = fs.listdir(f"{location}/.versions")
    assert killed not in versions and len(versions) == 2
    np.testing.assert_array_equal(store.read_timeseries(location, "sub01"), X)
