"""Object storage against local disk, same run: the real slice on a local S3 server (moto).

Times ingest, decode (face, cat, house: 3 pairs) and a searchlight (face vs
cat, 5.6 mm) of the real slice with the store and the outputs on local disk
and on a moto S3 server on 127.0.0.1, on one LocalCluster; and counts the
S3 requests and bytes of the store reads one task makes (in this process,
through s3fs's log of its calls), for the store's voxel chunk sizes. Run::

    python benchmarks/bench_object_storage.py [--workers 2]

Each place runs twice and the second round is reported (the first compiles
the searchlight solvers in the workers).

moto answers from memory on this machine: the figures are the overhead of
the protocol (requests, serialisation, no shared disk), not of a real
network, whose latency multiplies the request counts.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np


class _Requests(logging.Handler):
    """Counts the S3 calls s3fs logs (``CALL: get_object - ...``)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.calls: list[str] = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("CALL: "):
            self.calls.append(message.split(" ")[1])


def _server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return process, endpoint
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto did not start")


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _requests_per_read(store_url: str, subject: str) -> list[tuple[str, int, int]]:
    """S3 calls and bytes of the store reads of one task."""
    from nidecode import store

    counter = _Requests()
    logger = logging.getLogger("s3fs")
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    design = store.read_design(store_url, subject)
    reads = {
        "read_design": lambda: store.read_design(store_url, subject, checksum=design.checksum),
        "read_timeseries (all voxels, verified)":
            lambda: store.read_timeseries(store_url, subject, verify=design.checksum),
        "read_timeseries (256 voxels)":
            lambda: store.read_timeseries(store_url, subject, voxels=slice(0, 256)),
    }
    rows = []
    for name, read in reads.items():
        counter.calls.clear()
        result = read()
        size = result.nbytes if isinstance(result, np.ndarray) else 0
        rows.append((name, len(counter.calls), size))
    logger.removeHandler(counter)
    return rows


def _run_place(subject, store_path, out, client) -> tuple[float, float, float]:
    """Seconds of ingest, decode and searchlight with the store and outputs in one place."""
    from nidecode import fs
    from nidecode.analyses.decode import decode
    from nidecode.analyses.searchlight import searchlight
    from nidecode.ingest import ingest

    ingest_s = _timed(lambda: ingest([subject], store_path, "mask"))
    decode_s = _timed(lambda: decode(store_path, fs.join(out, "decode"), client,
                                     categories=["face", "cat", "house"], progress=False))
    light_s = _timed(lambda: searchlight(store_path, fs.join(out, "light"), client, radius=5.6,
                                         categories=["face", "cat"], progress=False))
    return ingest_s, decode_s, light_s


def _nifti_reads(url: str) -> list[tuple[str, float, int]]:
    """Seconds and S3 requests to read a whole .nii.gz: downloaded, or through a file object."""
    import gzip

    import nibabel as nib

    from nidecode import fs

    counter = _Requests()
    logger = logging.getLogger("s3fs")
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)

    def downloaded():
        with fs.local_copy(url) as copy:
            return np.asarray(nib.load(copy).dataobj)

    def streamed():
        with fs.open_file(url) as handle:
            image = nib.Nifti1Image.from_stream(gzip.GzipFile(fileobj=handle))
            return np.asarray(image.dataobj)

    rows = []
    for name, read in {"downloaded, then read locally": downloaded,
                       "read through an fsspec file object": streamed}.items():
        counter.calls.clear()
        seconds = _timed(read)
        rows.append((name, seconds, len(counter.calls)))
    logger.removeHandler(counter)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    process, endpoint = _server()
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint})
    try:
        import s3fs

        from nidecode import fs, store
        from nidecode.cluster import get_client
        from nidecode.datasets import load_haxby_slice

        s3fs.S3FileSystem().mkdir("bench")
        data = load_haxby_slice()
        filesystem, _ = fs.filesystem("s3://bench")
        for path in sorted(data.iterdir()):
            filesystem.put_file(str(path), f"bench/data/{data.name}/{path.name}")
        local = Path(tempfile.mkdtemp(prefix="bench-os-"))
        places = {"local disk": (data, local / "store.zarr", local, 256),
                  "S3 (moto)": (f"s3://bench/data/{data.name}", "s3://bench/store.zarr",
                                "s3://bench", 256),
                  "S3, 1024-voxel chunks": (f"s3://bench/data/{data.name}",
                                            "s3://bench/store-1024.zarr", "s3://bench/c1024",
                                            1024)}
        rows = []
        with get_client(workers=args.workers) as client:
            # A first round compiles the searchlight solvers (numba) in the workers and
            # warms the caches; the second is timed, all places with the same workers.
            for repeat in range(2):
                for place, (subject, store_path, out, chunk) in places.items():
                    store.VOXEL_CHUNK = chunk  # read by ingest, in this process
                    seconds = _run_place(subject, store_path, fs.join(out, f"r{repeat}"),
                                         client)
                    if repeat:
                        rows.append((place, *seconds))
            store.VOXEL_CHUNK = 256
        print(f"{'':22} {'ingest s':>9} {'decode s':>9} {'searchlight s':>14}")
        for place, *seconds in rows:
            print(f"{place:22} " + " ".join(f"{value:9.2f}" for value in seconds))
        for chunk, url in ((256, "s3://bench/store.zarr"), (1024, "s3://bench/store-1024.zarr")):
            print(f"\nstore chunks: (scans, {chunk}) voxels")
            for name, calls, size in _requests_per_read(url, data.name):
                print(f"{name:42} {calls:3d} requests {size / 1e6:8.2f} MB")
        print(f"\n{data.name}/bold.nii.gz")
        for name, seconds, calls in _nifti_reads(f"s3://bench/data/{data.name}/bold.nii.gz"):
            print(f"{name:42} {seconds:6.2f} s {calls:4d} requests")
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
