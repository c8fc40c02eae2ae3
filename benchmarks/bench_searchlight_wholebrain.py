"""A whole-brain searchlight at the Haxby size, one pair, on a LocalCluster.

A synthetic subject of 40 x 64 x 64 voxels (about 28 000 in the brain mask),
1452 scans, 3.5 x 3.75 x 3.75 mm voxels with a flipped x axis; face vs house
(216 scans), radius 5.6 mm, leave-one-run-out, the batched solver, on
``--workers`` single-threaded workers. Prints the time, the spheres per
second, and the projected cost of the full Haxby study (6 subjects x 28
pairs) on 2, 100 and 1000 cores from the measured per-sphere cost. Run::

    python benchmarks/bench_searchlight_wholebrain.py [--workers 2] [--radius 5.6]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from nidecode.analyses.searchlight import searchlight
from nidecode.cluster import get_client
from nidecode.ingest import ingest
from nidecode.synth import make_subject, write_subject

from _common import machine, save

STUDY_SUBJECTS, STUDY_PAIRS = 6, 28


def warm_solver() -> None:
    """Run the batched solver once on a tiny problem (loads numba's cache)."""
    import numpy as np
    import scipy.sparse as sp

    from nidecode.solvers.batched import searchlight_accuracies

    X = np.random.default_rng(0).normal(size=(8, 3))
    folds = [(np.arange(4, 8), np.arange(4)), (np.arange(4), np.arange(4, 8))]
    searchlight_accuracies(X, np.tile([0, 1], 4), sp.csr_matrix(np.ones((1, 3))), folds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--radius", type=float, default=5.6)
    parser.add_argument("--spheres-per-task", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nidecode-wholebrain-"))
    started = time.perf_counter()
    subject = write_subject(make_subject(seed=3, shape=(40, 64, 64)), work / "sub-01")
    ingest([subject], work / "store.zarr", "mask")
    prepared = time.perf_counter() - started
    with get_client(workers=args.workers) as client:
        client.run(warm_solver)  # imports and numba's compiled code, before timing
        started = time.perf_counter()
        table = searchlight(work / "store.zarr", work / "out", client, radius=args.radius,
                            categories=["face", "house"], progress=False,
                            spheres_per_task=args.spheres_per_task)
        wall = time.perf_counter() - started
    manifest = json.loads((work / "out" / "run.json").read_text())
    n_spheres = int(table["n_spheres"].item())
    core_seconds_per_sphere = wall * args.workers / n_spheres
    study_core_seconds = core_seconds_per_sphere * n_spheres * STUDY_SUBJECTS * STUDY_PAIRS
    tasks = STUDY_SUBJECTS * STUDY_PAIRS * -(-n_spheres // args.spheres_per_task)
    figures = {
        "benchmark": "whole-brain searchlight, synthetic 40x64x64 subject, face vs house",
        "machine": machine(),
        "workers": args.workers, "radius_mm": args.radius, "spheres": n_spheres,
        "spheres_per_task": args.spheres_per_task,
        "data_generation_and_ingest_s": prepared,
        "searchlight_wall_s": wall, "spheres_per_s": n_spheres / wall,
        "compute_s": manifest["timings"]["compute_s"],
        "core_seconds_per_sphere": core_seconds_per_sphere,
        "peak_accuracy": float(table["peak_accuracy"].item()),
        "study": {"subjects": STUDY_SUBJECTS, "pairs": STUDY_PAIRS, "tasks": tasks,
                  "core_hours": study_core_seconds / 3600,
                  "projected_hours": {str(cores): study_core_seconds / cores / 3600
                                      for cores in (2, 100, 1000)}},
    }
    print(json.dumps({key: value for key, value in figures.items() if key != "machine"},
                     indent=2))
    print(f"saved {save('searchlight_wholebrain', figures)}")


if __name__ == "__main__":
    main()
