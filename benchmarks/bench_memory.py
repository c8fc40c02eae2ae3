"""Peak memory of a worker decoding a store much larger than its share.

20 synthetic subjects masked with the whole synthetic brain (about 2000
voxels each, so the store holds about 230 MB of float32 time series),
decoded on a LocalCluster of 2 workers. Each worker keeps at most two
subjects' time series in memory (``nidecode.analyses.tasks`` caches two), so its peak
is bounded by that, not by the store. Run::

    python benchmarks/bench_memory.py [--subjects 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from nidecode import store
from nidecode.analyses.decode import decode
from nidecode.cluster import get_client
from nidecode.run import ingest_on_cluster
from nidecode.synth import make_dataset

from _common import machine, save


def peak_rss_mib() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nidecode-memory-"))
    subjects = make_dataset(work / "data", n_subjects=args.subjects)
    store_path = work / "store.zarr"
    with get_client(workers=args.workers) as client:
        started = time.perf_counter()
        ingest_on_cluster(subjects, store_path, "mask", client, progress=False)
        ingest_s = time.perf_counter() - started
        ingest_peaks = client.run(peak_rss_mib)
        client.restart()  # fresh workers: the decode peak is measured alone
        idle = client.run(peak_rss_mib)
        started = time.perf_counter()
        decode(store_path, work / "out", client, categories=["face", "house", "cat"],
               progress=False)
        decode_s = time.perf_counter() - started
        decode_peaks = client.run(peak_rss_mib)
    store_bytes = sum(path.stat().st_size for path in store_path.rglob("*") if path.is_file())
    manifest = json.loads((work / "out" / "run.json").read_text())
    figures = {
        "benchmark": f"worker peak memory: {args.subjects} synthetic subjects, whole-brain mask, "
                     f"{args.workers} workers",
        "machine": machine(),
        "store_mib_on_disk": store_bytes / 2**20,
        "timeseries_mib": args.subjects * 1452 * manifest_voxels(store_path) * 4 / 2**20,
        "ingest_s": ingest_s,
        "ingest_worker_peak_mib": sorted(ingest_peaks.values()),
        "idle_worker_mib": sorted(idle.values()),
        "decode_s": decode_s,
        "decode_worker_peak_mib": sorted(decode_peaks.values()),
        "fits": manifest["counts"]["fits"],
        "client_peak_mib": peak_rss_mib(),
    }
    print(json.dumps({key: value for key, value in figures.items() if key != "machine"},
                     indent=2))
    print(f"saved {save('memory', figures)}")


def manifest_voxels(store_path: Path) -> int:
    return store.read_design(store_path, store.list_subjects(store_path)[0]).n_voxels


if __name__ == "__main__":
    main()
