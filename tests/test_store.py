"""The Zarr store: round trip, atomic replacement, checksums, format."""

import json
import os

import numpy as np
import pandas as pd
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


def test_second_write_replaces_and_keeps_the_old_version_until_swept(tmp_path):
    path = tmp_path / "s.zarr"
    old, *_ = _write(path, seed=0)
    old_checksum = store.read_design(path, "s1").checksum
    X, *_ = _write(path, seed=1)
    np.testing.assert_array_equal(store.read_timeseries(path, "s1"), X.astype(np.float32))
    assert store.list_subjects(path) == ["s1"]
    # A run planned on the old version keeps reading it, whole or by blocks.
    versions = sorted((path / ".versions").iterdir())
    assert len(versions) == 2
    np.testing.assert_array_equal(store.read_timeseries(path, "s1", verify=old_checksum),
                                  old.astype(np.float32))
    np.testing.assert_array_equal(
        store.read_timeseries(path, "s1", voxels=slice(1, 3), verify=old_checksum),
        old[:, 1:3].astype(np.float32))
    design = store.read_design(path, "s1", checksum=old_checksum)
    assert design.checksum == old_checksum
    assert design.version != store.read_design(path, "s1").version
    # Swept once old enough: the run then fails with one line, never mixes.
    store.create_store(path)
    assert len(list((path / ".versions").iterdir())) == 2
    os.utime(path / ".versions" / design.version, (0, 0))
    store.create_store(path)
    assert [entry.name for entry in (path / ".versions").iterdir()] == [
        store.read_design(path, "s1").version]
    with pytest.raises(InputError, match="s1: ingested again since this run was planned"):
        store.read_timeseries(path, "s1", voxels=slice(1, 3), verify=old_checksum)


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


def _subject_pair(tmp_path):
    """The store of subject sub01, and a second version of it (other data, same id)."""
    from nidecode.ingest import ingest
    from tests.conftest import tiny_subject

    old = tiny_subject(tmp_path / "old" / "sub01", n_runs=4, shape=(5, 4, 3), seed=0)
    new = tiny_subject(tmp_path / "new" / "sub01", n_runs=4, shape=(5, 4, 3), seed=7)
    for name, directory in (("planned.zarr", old), ("reference.zarr", old)):
        ingest([directory], tmp_path / name, "mask4_vt")
    return new


def _maps(out):
    import nibabel as nib

    return {path.name: np.asarray(nib.load(path).dataobj)
            for path in sorted((out / "searchlight").glob("*.nii.gz"))}


def test_searchlight_planned_before_a_reingest_reads_the_planned_data(tmp_path, client):
    from nidecode.analyses.searchlight import execute_searchlight, prepare_searchlight
    from nidecode.ingest import ingest

    new = _subject_pair(tmp_path)
    common = {"radius": 4.0, "categories": ["face", "cat"], "spheres_per_task": 5}
    reference = execute_searchlight(prepare_searchlight(tmp_path / "reference.zarr",
                                                        tmp_path / "ref", **common),
                                    client, progress=False)
    run = prepare_searchlight(tmp_path / "planned.zarr", tmp_path / "out", **common)
    ingest([new], tmp_path / "planned.zarr", "mask4_vt")  # between planning and execution
    table = execute_searchlight(run, client, progress=False)
    pd.testing.assert_frame_equal(table, reference)
    old_maps, maps = _maps(tmp_path / "ref"), _maps(tmp_path / "out")
    assert old_maps.keys() == maps.keys() and len(maps) >= 2
    for name, image in maps.items():
        np.testing.assert_array_equal(image, old_maps[name])
    # The store itself holds the new data now.
    assert not np.array_equal(store.read_timeseries(tmp_path / "planned.zarr", "sub01"),
                              store.read_timeseries(tmp_path / "reference.zarr", "sub01"))


def test_decode_planned_before_a_reingest_reads_the_planned_data(tmp_path, client):
    from nidecode.analyses.decode import execute_decode, prepare_decode
    from nidecode.ingest import ingest

    new = _subject_pair(tmp_path)
    reference = execute_decode(prepare_decode(tmp_path / "reference.zarr", tmp_path / "ref"),
                               client, progress=False)
    run = prepare_decode(tmp_path / "planned.zarr", tmp_path / "out")
    ingest([new], tmp_path / "planned.zarr", "mask4_vt")
    pd.testing.assert_frame_equal(execute_decode(run, client, progress=False), reference)
    for name in ("scores.csv",):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / name),
                                      pd.read_csv(tmp_path / "ref" / name))


def test_blocks_read_across_a_reingest_come_from_one_version(tmp_path):
    # A worker caches the design once, then reads voxel blocks task after
    # task: a re-ingest between two tasks must not hand it the new blocks.
    from nidecode.analyses.tasks import searchlight_spheres
    from nidecode.ingest import ingest
    from nidecode.spheres import batch_voxel_block, sphere_neighbourhoods

    new = _subject_pair(tmp_path)
    mask, affine = store.read_geometry(tmp_path / "planned.zarr", "sub01")
    _, spheres = sphere_neighbourhoods(mask, affine, 4.0, None)
    checksum = store.read_design(tmp_path / "planned.zarr", "sub01").checksum

    def scores(path, centres):
        voxels, local = batch_voxel_block(spheres, centres)
        [result] = searchlight_spheres(str(path), [("sub01", "cat", "face", 0)], checksum,
                                       voxels, local, "logo", 1.0, "sklearn")
        return result.accuracy

    first = scores(tmp_path / "planned.zarr", np.arange(0, 4))
    ingest([new], tmp_path / "planned.zarr", "mask4_vt")
    second = scores(tmp_path / "planned.zarr", np.arange(4, 8))
    np.testing.assert_array_equal(first, scores(tmp_path / "reference.zarr", np.arange(0, 4)))
    np.testing.assert_array_equal(second, scores(tmp_path / "reference.zarr", np.arange(4, 8)))
