"""All 28 pairs x 12 folds for 6 subjects of the real slice: engine vs the serial loop.

The baseline is the seed tutorial's loop, ``cross_val_score(SVC(kernel="linear"),
...)`` per subject and pair, in this process; the engine runs on a LocalCluster
of 2 single-threaded workers. Both in the same run, on the same stored data;
the accuracies must be identical. A second baseline runs the engine's own
fits (libsvm called as SVC calls it on the pair's precomputed linear kernel,
without the estimator's per-call validation) in the same serial loop, to
split the speed-up into leaner fits and parallel workers. The three are
timed in turn within each repeat, on a warm cluster (it has run the decode
once). The figures of earlier runs are kept under ``history`` in the JSON.
Run::

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

from _common import RESULTS, machine, save, spread, symlinked_subjects


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


def _once(function, *args, **kwargs) -> tuple[float, object]:
    """Wall seconds of one call, and its result."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--subjects", type=int, default=6)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nidecode-bench-"))
    store_path = work / "store.zarr"
    ingest(symlinked_subjects(work / "data", args.subjects), store_path, "mask")

    started = time.perf_counter()
    with get_client(workers=args.workers) as client:
        startup = time.perf_counter() - started
        # A warm cluster: the workers have imported the task code and run a
        # decode once (numba's compiled kernel loaded from its cache).
        decode(store_path, work / "warm-up", client, progress=False)
        serial_times, lean_times, engine_times = [], [], []
        with get_task_stream(client) as stream:
            # Interleaved, so that the baselines and the engine share the
            # machine's load alike (the machine is shared).
            for repeat in range(args.repeats):
                seconds, serial = _once(serial_loop, store_path)
                serial_times.append(seconds)
                seconds, lean = _once(serial_loop, store_path, lean=True)
                lean_times.append(seconds)
                engine_times.append(_once(decode, store_path, work / f"out{repeat}", client,
                                          progress=False)[0])
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
