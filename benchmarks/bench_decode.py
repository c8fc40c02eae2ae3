"""All 28 pairs x 12 folds for 6 subjects of the real slice: engine vs the serial loop.

The baseline is the seed tutorial's loop, ``cross_val_score(SVC(kernel="linear"),
...)`` per subject and pair, in this process; the engine runs on a LocalCluster
of 2 single-threaded workers. Both in the same run, on the same stored data;
the accuracies must be identical. A second baseline runs the engine's own
fits (libsvm called as SVC calls it on the pair's precomputed linear kernel,
without the estimator's per-call validation) in the same serial loop, to
split the speed-up into leaner fits and parallel workers. The figures of
earlier runs are kept under ``history`` in the JSON. Run::

    python benchmarks/bench_decode.py [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from distributed import get_task_stream
from sklearn.model_selection import LeaveOneGroupOut, cross_val_score
from sklearn.svm import SVC

from nidecode import store
from nidecode.analyses.decode import decode
from nidecode.analyses.plan import category_pairs
from nidecode.cluster import get_client
from nidecode.cv import make_folds
from nidecode.ingest import ingest
from nidecode.solvers.svc import cross_validate_svc

from _common import RESULTS, machine, save, spread, symlinked_subjects, timed


def serial_loop(store_path: Path, lean: bool = False) -> pd.DataFrame:
    """The seed's loop: one cross_val_score per subject and pair (or the
    engine's fits, ``lean``, in the same loop)."""
    rows = []
    for subject in store.list_subjects(store_path):
        design = store.read_design(store_path, subject)
        X = store.read_timeseries(store_path, subject)
        for class_a, class_b in category_pairs(set(design.labels) - {"rest"}):
            keep = np.isin(design.labels, [class_a, class_b])
            if lean:
                scores = cross_validate_svc(X[keep], design.labels[keep],
                                            make_folds(design.runs[keep], "logo")).accuracy
            else:
                scores = cross_val_score(SVC(kernel="linear"), X[keep], design.labels[keep],
                                         cv=LeaveOneGroupOut(), groups=design.runs[keep])
            rows += [(subject, class_a, class_b, fold, accuracy)
                     for fold, accuracy in zip(np.unique(design.runs[keep]), scores,
                                               strict=True)]
    return pd.DataFrame(rows, columns=["subject", "class_a", "class_b", "fold", "accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--subjects", type=int, default=6)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nidecode-bench-"))
    store_path = work / "store.zarr"
    ingest(symlinked_subjects(work / "data", args.subjects), store_path, "mask")

    serial_times, serial = timed(lambda: serial_loop(store_path), args.repeats)
    lean_times, lean = timed(lambda: serial_loop(store_path, lean=True), args.repeats)
    started = time.perf_counter()
    with get_client(workers=args.workers) as client:
        startup = time.perf_counter() - started
        # The workers import the task code, as a warm cluster has it.
        client.run(lambda: __import__("nidecode.analyses.tasks"))
        runs = iter(range(args.repeats))
        with get_task_stream(client) as stream:
            engine_times, _ = timed(lambda: decode(store_path, work / f"out{next(runs)}", client,
                                                   progress=False), args.repeats)
    scores = pd.read_csv(work / "out0" / "scores.csv")
    identical = bool(np.array_equal(scores["accuracy"].to_numpy(),
                                    serial.sort_values(["subject", "class_a", "class_b",
                                                        "fold"])["accuracy"].to_numpy()))
    busy = sum(task["startstops"][-1]["stop"] - task["startstops"][-1]["start"]
               for task in stream.data if task["startstops"][-1]["action"] == "compute")
    n_tasks = sum(1 for task in stream.data if task["startstops"][-1]["action"] == "compute")
    engine_total = sum(engine_times)
    manifest = json.loads((work / "out0" / "run.json").read_text())
    figures = {
        "benchmark": f"decode: {args.subjects} subjects x 28 pairs x 12 folds, real Haxby "
                     f"slice (530 voxels)",
        "machine": machine(),
        "fits": len(serial),
        "workers": args.workers,
        "serial_loop_s": spread(serial_times),
        "serial_engine_fits_s": spread(lean_times),
        "engine_s": spread(engine_times),
        "cluster_startup_s": startup,
        "speedup_vs_serial": spread(serial_times)["median"] / spread(engine_times)["median"],
        "speedup_of_fits": spread(serial_times)["median"] / spread(lean_times)["median"],
        "parallel_speedup": spread(lean_times)["median"] / spread(engine_times)["median"],
        "identical_accuracies": identical and lean.equals(serial),
        "tasks_per_run": n_tasks // args.repeats,
        "worker_busy_share": busy / (engine_total * args.workers),
        "overhead_share": 1 - busy / (engine_total * args.workers),
        "engine_breakdown_s": manifest["timings"],
    }
    print(json.dumps({key: value for key, value in figures.items() if key != "machine"},
                     indent=2))
    print(f"saved {save('decode', {**figures, 'history': _history()})}")


def _history() -> list[dict]:
    """The figures of the earlier runs, the latest first (their own history left out)."""
    path = RESULTS / "decode.json"
    if not path.exists():
        return []
    previous = json.loads(path.read_text())
    return [{key: value for key, value in previous.items() if key != "history"},
            *previous.get("history", [])]


if __name__ == "__main__":
    main()
