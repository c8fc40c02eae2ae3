"""Shared fixtures: the real Haxby slice and small synthetic datasets."""

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from nidecode.datasets import load_haxby_slice


@pytest.fixture(scope="session")
def haxby_slice_dir() -> Path:
    """The real Haxby 2001 slice of subject 1 (bold, labels, mask), shipped in the package."""
    return load_haxby_slice()


@pytest.fixture(scope="session")
def client():
    """A real LocalCluster of two single-threaded worker processes on 127.0.0.1."""
    from nidecode.cluster import get_client

    with get_client(workers=2) as dask_client:
        yield dask_client


@pytest.fixture(scope="session")
def haxby_store(haxby_slice_dir, tmp_path_factory):
    """The real slice ingested twice: z-scored within runs and over all scans."""
    from nidecode.ingest import ingest

    stores = {}
    for standardize in ("run", "global"):
        path = tmp_path_factory.mktemp(f"store-{standardize}") / "haxby.zarr"
        ingest([haxby_slice_dir], path, "mask", standardize=standardize)
        stores[standardize] = path
    return stores


@pytest.fixture(scope="session")
def rare_cat_store(haxby_slice_dir, tmp_path_factory):
    """The real slice with cat made rare: 3 of every 9 cat scans kept, the others rest."""
    import shutil

    from nidecode.ingest import ingest

    directory = tmp_path_factory.mktemp("rare-cat")
    data = directory / "slice"
    shutil.copytree(haxby_slice_dir, data)
    labels = pd.read_csv(data / "labels.txt", sep=" ")
    cat = np.flatnonzero(labels["labels"].to_numpy() == "cat")
    labels.loc[cat[np.arange(len(cat)) % 9 >= 3], "labels"] = "rest"
    labels.to_csv(data / "labels.txt", sep=" ", index=False)
    path = directory / "rare.zarr"
    ingest([data], path, "mask", standardize="run")
    return path


@pytest.fixture(scope="session")
def haxby_slice_masked(haxby_slice_dir):
    """The real slice through its mask, z-scored over all scans by nilearn's
    masker: ``(X, labels table, masker, mask image)``."""
    import warnings

    from nilearn.maskers import NiftiMasker

    mask_img = nib.load(haxby_slice_dir / "mask.nii.gz")
    masker = NiftiMasker(mask_img=mask_img, standardize="zscore_sample")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X = masker.fit_transform(nib.load(haxby_slice_dir / "bold.nii.gz"))
    return X, pd.read_csv(haxby_slice_dir / "labels.txt", sep=" "), masker, mask_img


@pytest.fixture(scope="session")
def face_cat(haxby_slice_masked):
    """The real slice's face and cat scans, its 5.6 mm spheres and
    leave-one-run-out folds: the searchlight solvers' case."""
    from sklearn.model_selection import LeaveOneGroupOut

    from nidecode.spheres import sphere_neighbourhoods

    X_all, labels, masker, mask_img = haxby_slice_masked
    keep = labels["labels"].isin(["face", "cat"]).to_numpy()
    X = X_all[keep]
    y = labels["labels"].to_numpy()[keep]
    runs = labels["chunks"].to_numpy()[keep]
    mask = np.asarray(mask_img.dataobj) != 0
    _, spheres = sphere_neighbourhoods(mask, mask_img.affine, 5.6)
    folds = list(LeaveOneGroupOut().split(X, y, runs))
    return {"X": X, "y": y, "runs": runs, "spheres": spheres, "folds": folds,
            "masker": masker, "mask_img": mask_img}  # fmt: skip


def tiny_subject(directory, n_runs=3, scans_per_run=6, shape=(4, 3, 2), seed=0):
    """A tiny subject in the Haxby layout, int16 BOLD with a flipped affine."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    affine = np.array([[-3.5, 0, 0, 60], [0, 3.75, 0, -90], [0, 0, 3.75, -20], [0, 0, 0, 1]])
    n_scans = n_runs * scans_per_run
    bold = rng.normal(800, 50, size=(*shape, n_scans)).round().astype(np.int16)
    nib.save(nib.Nifti1Image(bold, affine), directory / "bold.nii.gz")
    mask = np.zeros(shape, np.uint8)
    mask[1:3, :, :] = 1
    nib.save(nib.Nifti1Image(mask, affine), directory / "mask4_vt.nii.gz")
    labels = np.tile(["rest", "face", "face", "cat", "cat", "rest"], n_runs)[:n_scans]
    runs = np.repeat(np.arange(n_runs), scans_per_run)
    pd.DataFrame({"labels": labels, "chunks": runs}).to_csv(directory / "labels.txt", sep=" ",
                                                            index=False)
    return directory


def slice_centres(haxby_slice_dir, step):
    """Every ``step``-th voxel of the real slice's mask as an image (a process mask of
    few centres, so that nilearn's per-sphere fits take seconds)."""
    mask = nib.load(haxby_slice_dir / "mask.nii.gz")
    data = np.asarray(mask.dataobj) > 0
    keep = np.zeros(data.size, bool)
    keep[np.flatnonzero(data)[::step]] = True
    return nib.Nifti1Image(keep.reshape(data.shape).astype(np.uint8), mask.affine)


def one_line_error(capsys, status, pattern):
    """The command failed as bad input should: exit 2, one stderr line matching ``pattern``."""
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nidecode: error: ")
    assert re.search(pattern, lines[0]), lines[0]


def _free_port() -> int:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """moto's standalone S3 server as a real process on 127.0.0.1, stopped after.

    Yields the endpoint URL; the tests that use it set the dummy credentials
    and the endpoint in the environment (fixture ``s3``).
    """
    import subprocess
    import sys
    import time
    import urllib.request

    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("moto server did not start")
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def s3(s3_server):
    """A fresh bucket on the moto server, for a module: dummy credentials and the
    endpoint in the environment (inherited by the LocalClusters the module starts).

    Yields ``s3://BUCKET``; ``AWS_ENDPOINT_URL`` points at the server, so no
    storage option is needed.
    """
    import uuid

    import s3fs

    from nidecode import fs

    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1",
                            "AWS_ENDPOINT_URL": s3_server}.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv(fs.OPTIONS_VARIABLE, raising=False)
        fs.set_storage_options(None)
        s3fs.S3FileSystem.clear_instance_cache()
        bucket = f"bucket-{uuid.uuid4().hex[:8]}"
        s3fs.S3FileSystem().mkdir(bucket)
        yield f"s3://{bucket}"
        fs.set_storage_options(None)
        s3fs.S3FileSystem.clear_instance_cache()
