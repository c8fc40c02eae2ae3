"""Shared fixtures: the real Haxby slice and small synthetic datasets."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HAXBY_SLICE = REPO.parent / "shared" / "data" / "haxby2001-slice"


@pytest.fixture(scope="session")
def haxby_slice_dir() -> Path:
    """The real Haxby 2001 slice of subject 1 (bold, labels, mask), read in place."""
    if not (HAXBY_SLICE / "bold.nii.gz").exists():
        pytest.skip(f"real Haxby slice not found at {HAXBY_SLICE} (CI always has it)")
    return HAXBY_SLICE


@pytest.fixture(scope="session")
def client():
    """A real LocalCluster of two single-threaded worker processes on 127.0.0.1."""
    from engine.cluster import get_client

    with get_client(workers=2) as dask_client:
        yield dask_client


@pytest.fixture(scope="session")
def haxby_store(haxby_slice_dir, tmp_path_factory):
    """The real slice ingested twice: z-scored within runs and over all scans."""
    from engine.ingest import ingest

    stores = {}
    for standardize in ("run", "global"):
        path = tmp_path_factory.mktemp(f"store-{standardize}") / "haxby.zarr"
        ingest([haxby_slice_dir], path, "mask", standardize=standardize)
        stores[standardize] = path
    return stores
