"""Stores, inputs and outputs on object storage (fsspec URLs), see docs/storage.md.

Against moto's S3 server started as a process on 127.0.0.1 (fixture ``s3``)
and ``memory://`` in-process (per process: no cluster workers in other
processes see it, so its tests stay in the client's process).
"""

import json
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from nidecode import fs, store
from nidecode.cli import main
from tests.conftest import one_line_error, tiny_subject
from tests.test_bids import _tiny_bids


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
    with pytest.raises(store.StoreError, match="no complete subject 'sub02'"):
        store.read_design(location, "sub02")
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
    _check_store_round_trip(f"{s3}/round-trip.zarr")


def test_store_round_trip_in_memory(memory_url):
    _check_store_round_trip(f"{memory_url}/store.zarr")


def test_killed_ingest_leaves_an_unreferenced_version_swept_later(s3, monkeypatch):
    """A version written without its pointer (an ingest killed before publishing) is
    invisible; the next ingest publishes its own; the sweep removes the orphan."""
    location = f"{s3}/killed.zarr"
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


def _upload(folder: Path, url: str) -> str:
    filesystem, inner = fs.filesystem(url)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            filesystem.put_file(str(path), f"{inner}/{path.relative_to(folder).as_posix()}")
    return url


def _same_results(local: Path, remote: str, names: list[str]) -> None:
    """Every named file of a local run equals the remote run's: tables byte for
    byte, images array for array (and header)."""
    for name in names:
        with fs.local_copy(f"{remote}/{name}") as copy:
            if name.endswith(".nii.gz"):
                here, there = nib.load(local / name), nib.load(copy)
                np.testing.assert_array_equal(np.asarray(here.dataobj),
                                              np.asarray(there.dataobj))
                np.testing.assert_array_equal(here.affine, there.affine)
            else:
                assert (local / name).read_bytes() == copy.read_bytes(), name


def _written(local: Path) -> list[str]:
    files = json.loads((local / "run.json").read_text())["files"]
    assert files
    return files


@pytest.fixture(scope="module")
def cloud_client(s3):
    """A LocalCluster started once the moto server's environment is set."""
    from nidecode.cluster import get_client

    with get_client(workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def stores(s3, haxby_slice_dir, tmp_path_factory, cloud_client):
    """A tiny subject and the real slice, uploaded, then ingested from S3 into
    an S3 store by the cluster's workers, and from disk into a local store."""
    from nidecode.ingest import ingest
    from nidecode.run import ingest_on_cluster

    data = tmp_path_factory.mktemp("data")
    tiny = tiny_subject(data / "tiny01")
    local = tmp_path_factory.mktemp("local") / "store.zarr"
    remote = f"{s3}/store.zarr"
    ingest([tiny], local, "mask4_vt")
    ingest([haxby_slice_dir], local, "mask")
    ingest_on_cluster([_upload(tiny, f"{s3}/data/tiny01")], remote, "mask4_vt", cloud_client,
                      progress=False)
    ingest_on_cluster([_upload(haxby_slice_dir, f"{s3}/data/haxby2001_slice")], remote,
                      "mask", cloud_client, progress=False)
    return local, remote


@pytest.mark.slow
def test_ingest_from_s3_into_s3_gives_the_local_store(stores):
    local, remote = stores
    assert store.list_subjects(remote) == store.list_subjects(local) == \
        ["haxby2001_slice", "tiny01"]
    for subject in ("haxby2001_slice", "tiny01"):
        assert store.read_design(remote, subject).checksum == \
            store.read_design(local, subject).checksum
        for (here, there) in zip(store.read_geometry(local, subject),
                                 store.read_geometry(remote, subject), strict=True):
            np.testing.assert_array_equal(here, there)
    assert store.read_attributes(remote, "tiny01")["source"]["bold"].startswith("s3://")


@pytest.mark.slow
@pytest.mark.cluster
def test_decode_searchlight_permute_into_s3_are_byte_identical(stores, s3, cloud_client,
                                                               tmp_path):
    from nidecode.analyses.decode import decode
    from nidecode.analyses.permute import permute
    from nidecode.analyses.searchlight import searchlight

    local, remote = stores
    runs = {
        "decode": lambda store_path, out: decode(
            store_path, out, cloud_client, categories=["face", "cat", "house"],
            progress=False),
        "searchlight": lambda store_path, out: searchlight(
            store_path, out, cloud_client, radius=5.0, categories=["face", "cat"],
            progress=False),
        "permute": lambda store_path, out: permute(
            store_path, out, cloud_client, n_permutations=4, categories=["face", "cat"],
            progress=False),
    }
    for name, run in runs.items():
        run(local, tmp_path / name)
        run(remote, f"{s3}/out-{name}")
        _same_results(tmp_path / name, f"{s3}/out-{name}", _written(tmp_path / name))
        manifest = json.loads(fs.read_bytes(f"{s3}/out-{name}/run.json"))
        assert manifest["status"] == "complete"


@pytest.mark.slow
@pytest.mark.cluster
def test_killed_decode_into_s3_resumes_to_the_same_results(stores, s3, cloud_client,
                                                           monkeypatch, tmp_path):
    from nidecode.analyses.decode import decode
    from nidecode.outdir import OutputDir

    local, remote = stores
    out = f"{s3}/out-killed"
    save_part = OutputDir.save_part
    saved = []

    def killed_after_two(self, part):
        if len(saved) == 2:
            raise KeyboardInterrupt
        saved.append(part.key)
        save_part(self, part)

    monkeypatch.setattr(OutputDir, "save_part", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        decode(remote, out, cloud_client, categories=["face", "cat", "house"], progress=False)
    assert json.loads(fs.read_bytes(f"{out}/run.json"))["status"] == "running"
    assert len(fs.listdir(f"{out}/parts")) == 2
    monkeypatch.setattr(OutputDir, "save_part", save_part)
    decode(remote, out, cloud_client, categories=["face", "cat", "house"], progress=False)
    decode(local, tmp_path / "decode", cloud_client, categories=["face", "cat", "house"],
           progress=False)
    _same_results(tmp_path / "decode", out, _written(tmp_path / "decode"))


@pytest.mark.slow
def test_bids_dataset_read_from_s3(s3, tmp_path):
    from nidecode.errors import InputError
    from nidecode.ingest import find_bids_subjects, ingest_bids

    root = _tiny_bids(tmp_path / "ds")
    url = _upload(root, f"{s3}/bids/ds")
    local_source, = find_bids_subjects(root, "tiny", root / "mask.nii.gz")
    source, = find_bids_subjects(url, "tiny", f"{url}/mask.nii.gz")
    assert source.subject == "sub-01"
    assert [str(image) for image in source.images] == [
        f"{url}/sub-01/func/sub-01_task-tiny_run-{run}_bold.nii.gz" for run in (1, 2)]
    pd.testing.assert_frame_equal(source.scans, local_source.scans)
    ingest_bids(root, tmp_path / "store.zarr", "tiny", root / "mask.nii.gz")
    ingest_bids(url, f"{s3}/bids-store.zarr", "tiny", f"{url}/mask.nii.gz")
    np.testing.assert_array_equal(store.read_timeseries(tmp_path / "store.zarr", "sub-01"),
                                  store.read_timeseries(f"{s3}/bids-store.zarr", "sub-01"))
    assert main(["ingest", url, "--task", "tiny", "--mask", f"{url}/mask.nii.gz", "--store",
                 f"{s3}/bids-cli.zarr", "--quiet"]) == 0
    assert store.read_design(f"{s3}/bids-cli.zarr", "sub-01").checksum == \
        store.read_design(tmp_path / "store.zarr", "sub-01").checksum
    fs.remove(f"{url}/sub-01/func/sub-01_task-tiny_run-2_events.tsv")
    with pytest.raises(InputError, match=rf"^{url}/sub-01/func/sub-01_task-tiny_run-2_bold"
                       rf".nii.gz: no events file; add sub-01_task-tiny_run-2_events.tsv"):
        find_bids_subjects(url, "tiny", f"{url}/mask.nii.gz")


@pytest.mark.slow
def test_cli_ingest_and_report_at_urls(s3, tmp_path, monkeypatch):
    """The command line end to end on S3: ingest, decode (one worker), report, with
    the endpoint and keys given only by --storage-options (also to the worker)."""
    import os

    tiny = _upload(tiny_subject(tmp_path / "sub01"), f"{s3}/cli/sub01")
    options = json.dumps({"key": "testing", "secret": "testing",
                          "client_kwargs": {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}})
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    try:
        for arguments in (["ingest", tiny, "--store", f"{s3}/cli/store.zarr", "--mask",
                           "mask4_vt"],
                          ["decode", f"{s3}/cli/store.zarr", "--out", f"{s3}/cli/out",
                           "--workers", "1"],
                          ["report", f"{s3}/cli/out", "--anat", f"{tiny}/bold.nii.gz",
                           "--mask", f"{tiny}/mask4_vt.nii.gz"]):
            assert main([*arguments, "--quiet", "--storage-options", options]) == 0
        page = fs.read_bytes(f"{s3}/cli/out/report.html").decode()
        assert "<html" in page[:200].lower()
        assert f"Background: {tiny}/bold.nii.gz (mean of its 18 volumes)" in page
        assert f"Mask: {tiny}/mask4_vt.nii.gz" in page
        assert json.loads(fs.read_bytes(f"{s3}/cli/out/run.json"))["status"] == "complete"
    finally:
        fs.set_storage_options(None)


@pytest.mark.parametrize("arguments, message", [
    (["decode", "foo://bucket/store.zarr", "--out", "OUT"], r"foo://bucket/store.zarr: unknown "
     r"protocol foo://; give a local path or an s3://"),
    (["decode", "gs://bucket/store.zarr", "--out", "OUT"], r"gs://bucket/store.zarr: gs:// needs "
     r"gcsfs; install it with pip install 'nidecode\[cloud\]'"),
    (["decode", "s3://no-such-bucket-x/store.zarr", "--out", "OUT"], r"s3://no-such-bucket-x/"
     r"store.zarr: no such bucket 'no-such-bucket-x'"),
    (["decode", "STORE", "--out", "s3://no-such-bucket-x/out"], r"s3://no-such-bucket-x/out: "
     r"no such bucket"),
    (["decode", "BUCKET/missing.zarr", "--out", "OUT"], r"BUCKET/missing.zarr: not a nidecode "
     r"store"),
    (["decode", "STORE", "--out", "OUT", "--storage-options", "{anon"], r"--storage-options "
     r"\{anon: not JSON"),
    (["ingest", "BUCKET/data/nobody", "--store", "OUT", "--mask", "mask"], r"BUCKET/data/nobody: "
     r"no such subject directory \(no object under it\); give a prefix holding bold.nii.gz"),
])
def test_bad_urls_are_one_line(s3, tiny_store, tmp_path, capsys, arguments, message):
    replaced = {"OUT": str(tmp_path / "out"), "STORE": str(tiny_store)}
    arguments = [replaced.get(argument, argument.replace("BUCKET", s3))
                 for argument in arguments]
    if "gs://" in arguments[1] and fs.PACKAGES["gs"] in _installed():
        pytest.skip("gcsfs is installed")
    one_line_error(capsys, main([*arguments, "--workers", "1", "--quiet"]),
                   message.replace("BUCKET", s3))


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    """A local store of one tiny subject (ingested in-process: no cluster)."""
    from nidecode.ingest import ingest

    directory = tmp_path_factory.mktemp("tiny")
    ingest([tiny_subject(directory / "tiny01")], directory / "store.zarr", "mask4_vt")
    return directory / "store.zarr"


def _installed() -> set[str]:
    import importlib.util

    return {name for name in ("gcsfs", "adlfs") if importlib.util.find_spec(name)}


def test_missing_credentials_are_one_line(s3, monkeypatch, tmp_path, capsys):
    import s3fs

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        one_line_error(capsys, main(["decode", f"{s3}/store.zarr", "--out",
                                     str(tmp_path / "out"), "--workers", "1", "--quiet"]),
                       rf"{s3}/store.zarr: no credentials found; set them in the environment")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


def test_memory_store_and_outputs_in_process(memory_url, tmp_path, client_threads):
    """memory:// is per process: ingest in-process, decode on a threads-only cluster."""
    from nidecode.analyses.decode import decode
    from nidecode.ingest import ingest

    tiny = tiny_subject(tmp_path / "tiny01")
    ingest([tiny], tmp_path / "store.zarr", "mask4_vt")
    ingest([tiny], f"{memory_url}/store.zarr", "mask4_vt")
    decode(tmp_path / "store.zarr", tmp_path / "out", client_threads, progress=False)
    decode(f"{memory_url}/store.zarr", f"{memory_url}/out", client_threads, progress=False)
    _same_results(tmp_path / "out", f"{memory_url}/out", _written(tmp_path / "out"))


@pytest.fixture(scope="module")
def client_threads():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        yield client


def test_masks_at_urls_read_as_local_ones(s3, haxby_slice_dir):
    """A --process-mask (or any mask) at a URL: downloaded, read, named by its URL."""
    from nidecode.errors import InputError
    from nidecode.io.haxby import load_mask_like

    local = haxby_slice_dir / "mask.nii.gz"
    url = _upload(haxby_slice_dir, f"{s3}/masks") + "/mask.nii.gz"
    image = nib.load(local)
    np.testing.assert_array_equal(load_mask_like(url, image.shape, image.affine, "{what}"),
                                  load_mask_like(local, image.shape, image.affine, "{what}"))
    with pytest.raises(InputError, match=rf"^{s3}/masks/labels.txt: not a readable NIfTI"):
        load_mask_like(f"{s3}/masks/labels.txt", image.shape, image.affine, "{what}")
    with pytest.raises(InputError, match=rf"^{s3}/masks/none.nii.gz: not found"):
        load_mask_like(f"{s3}/masks/none.nii.gz", image.shape, image.affine, "{what}")


# The command line with each saved result followed by a pause, so that a kill lands
# between two results whatever the machine's speed.
_SLOW_PARTS = """
import sys, time
from nidecode import outdir
save_part = outdir.OutputDir.save_part
def slow(self, part):
    save_part(self, part)
    time.sleep(2)
outdir.OutputDir.save_part = slow
from nidecode.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _kill_when_a_version_appears(arguments, versions: str, timeout=60.0,
                                 slow_parts=False) -> bool:
    """Run ``nidecode`` and SIGKILL it as soon as a new object shows under
    ``versions`` (a version of a store, a part of a run): mid-write. Returns
    whether it was killed before it ended."""
    import os
    import signal
    import subprocess
    import sys
    import time

    before = set(fs.listdir(versions))
    command = ["-c", _SLOW_PARTS] if slow_parts else ["-m", "nidecode.cli"]
    process = subprocess.Popen([sys.executable, *command, *arguments, "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if set(fs.listdir(versions)) - before:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    return process.wait(timeout=60) == -signal.SIGKILL


@pytest.mark.slow
def test_ingest_into_s3_killed_mid_write(s3, stores):
    """Real ``nidecode ingest`` processes killed (SIGKILL) while writing a version: the
    S3 store holds the previous complete subject or none, and the next ingest gives the
    local store's data; the killed versions are never read."""
    local, _ = stores
    source = f"{s3}/data/haxby2001_slice"  # uploaded by the stores fixture
    target = f"{s3}/killed-ingest.zarr"
    expected = store.read_timeseries(local, "haxby2001_slice")
    arguments = ["ingest", source, "--store", target, "--mask", "mask"]
    assert _kill_when_a_version_appears(arguments, f"{target}/.versions")
    assert store.list_subjects(target) == []  # killed before its pointer was written
    assert main([*arguments, "--quiet"]) == 0
    published = store.read_design(target, "haxby2001_slice").version
    assert _kill_when_a_version_appears(arguments, f"{target}/.versions")  # a re-ingest
    assert store.read_design(target, "haxby2001_slice").version == published
    np.testing.assert_array_equal(store.read_timeseries(target, "haxby2001_slice"), expected)
    assert len(fs.listdir(f"{target}/.versions")) == 3  # two unreferenced, swept after 24 h


def test_output_prefix_in_memory(memory_url):
    """OutputDir at a URL: parts round trip, a corrupt part is removed with a warning,
    another run's identity needs --overwrite (which removes its files), a foreign
    non-empty prefix is refused."""
    from nidecode.errors import OutputDirError
    from nidecode.outdir import OutputDir
    from nidecode.results import SphereScores

    out = f"{memory_url}/out"
    output = OutputDir(out)
    output.start({"command": "x"})
    good = SphereScores(("s", "a", "b", "000000"), np.ones((2, 1)), np.zeros(1))
    output.save_part(good)
    output.save_part(SphereScores(("s", "a", "b", "000001"), np.ones((2, 1)), np.zeros(1)))
    output.write_table("scores.csv", pd.DataFrame({"a": [1]}))
    broken = f"{out}/parts/{fs.listdir(f'{out}/parts')[1]}"
    fs.write_bytes(broken, b"PK half a file")
    with pytest.warns(UserWarning, match=f"{broken}: unreadable saved result"):
        assert list(OutputDir(out).load_parts(SphereScores)) == [good.key]
    assert not fs.isfile(broken)
    assert json.loads(fs.read_bytes(f"{out}/run.json"))["files"] == ["scores.csv"]
    with pytest.raises(OutputDirError, match=rf"^{out}: holds results of a run with other "
                       rf"parameters \(command\)"):
        OutputDir(out).start({"command": "y"})
    OutputDir(out).start({"command": "y"}, overwrite=True)
    assert fs.listdir(out) == ["run.json"]
    fs.write_bytes(f"{memory_url}/notes/mine.txt", b"mine")
    with pytest.raises(OutputDirError, match=rf"^{memory_url}/notes: not empty and holds no "
                       rf"run.json; choose an empty or new --out prefix"):
        OutputDir(f"{memory_url}/notes").start({"command": "x"})


@pytest.mark.slow
@pytest.mark.cluster
def test_storage_options_reach_the_workers_of_a_running_scheduler(monkeypatch):
    """Workers started before the options were set (a remote cluster) get them from
    the client through a worker plugin, also workers that join later."""
    import os

    from distributed import LocalCluster

    from nidecode.cluster import get_client

    monkeypatch.delenv(fs.OPTIONS_VARIABLE, raising=False)
    options = {"anon": True, "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        try:
            fs.set_storage_options(options)
            with get_client(scheduler=cluster.scheduler_address) as client:
                assert list(client.run(fs.storage_options).values()) == [options]
                # Not inherited (monkeypatch would restore it after the test): from the plugin.
                os.environ.pop(fs.OPTIONS_VARIABLE)
                cluster.scale(2)
                client.wait_for_workers(2)
                assert list(client.run(fs.storage_options).values()) == [options, options]
        finally:
            fs.set_storage_options(None)


@pytest.mark.slow
@pytest.mark.cluster
def test_decode_into_s3_killed_mid_run_then_resumed(s3, stores, cloud_client, tmp_path):
    """A real ``nidecode decode`` (its process group: client and workers) killed with
    SIGKILL once its first result is saved in S3: run.json says running, no scores;
    the same command resumes to results identical to a run on disk."""
    local, remote = stores
    out = f"{s3}/out-sigkill"
    from nidecode.analyses.decode import decode

    arguments = ["decode", remote, "--out", out, "--categories", "face,cat,house",
                 "--workers", "1"]
    assert _kill_when_a_version_appears(arguments, f"{out}/parts", slow_parts=True)
    assert json.loads(fs.read_bytes(f"{out}/run.json"))["status"] == "running"
    assert not fs.isfile(f"{out}/scores.csv")
    # Resumed (the command's own call, on the module's cluster: no second start-up).
    decode(remote, out, cloud_client, categories=["face", "cat", "house"], progress=False)
    decode(local, tmp_path / "decode", cloud_client, categories=["face", "cat", "house"],
           progress=False)
    _same_results(tmp_path / "decode", out, _written(tmp_path / "decode"))
