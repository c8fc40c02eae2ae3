"""Scaling of decode, searchlight and ingest, and the cost model of the full Haxby study.

Runs ``nidecode bench`` for each workload (decode on the real Haxby slice
when present, searchlight and ingest on synthetic subjects) into
``benchmarks/results/scaling/{workload}/`` (bench.json and the plots), then
projects the time of the full Haxby study from the measured figures:
6 subjects x 28 pairs, ROI decoding with leave-one-run-out, and a
whole-brain searchlight on a 40 x 64 x 64 grid with ~30 000 brain voxels,
on 2 to 1000 cores. Saves the projection in ``benchmarks/results/cost_model.json``.
Run::

    python benchmarks/bench_scaling.py [--workers 1,2] [--repeats 3] [--quick]
    python benchmarks/bench_scaling.py --model-only   # projection from saved runs
"""

from __future__ import annotations

import argparse
import json
import math
import statistics

import numpy as np

from nidecode.bench.runner import run_bench
from nidecode.bench.settings import HAXBY_SLICE, make_settings
from nidecode.spheres import batch_voxel_block, sphere_neighbourhoods
from nidecode.synth import make_affine, make_masks

from _common import RESULTS, machine, save

STUDY = {"subjects": 6, "pairs": 28, "folds": 12, "scans": 1452, "brain_voxels": 30_000,
         "grid": (40, 64, 64), "radius_mm": 5.6, "spheres_per_task": 2000}
CORES = (1, 2, 4, 8, 100, 1000)
#: Aggregate read bandwidth of the store's file system: a parallel file system
#: (Lustre, GPFS, object storage) and one NFS server.
STORAGE_BYTES_PER_S = {"parallel": 2e9, "nfs": 1e8}


def run_workloads(args: argparse.Namespace) -> dict[str, dict]:
    """Run the three benchmarks; returns their bench.json contents."""
    real = (HAXBY_SLICE / "bold.nii.gz").is_file()
    benches = {}
    for workload, data in (("decode", "real" if real else "synthetic"),
                           ("searchlight", "synthetic"), ("ingest", "synthetic")):
        settings = make_settings(out=RESULTS / "scaling" / workload, workload=workload,
                                 workers=args.workers, data=data, repeats=args.repeats,
                                 quick=args.quick, label=f"{workload}-{data}")
        benches[workload] = run_bench(settings)
    return benches


def load_workloads() -> dict[str, dict]:
    return {workload: json.loads((RESULTS / "scaling" / workload / "bench.json").read_text())
            for workload in ("decode", "searchlight", "ingest")}


def unit_cost(bench: dict) -> float:
    """Worker seconds per unit of work at the smallest worker count (reading included)."""
    repeats = bench["strong"][0]["repeats"]
    return statistics.median(repeat["busy_s"] / repeat["units"] for repeat in repeats)


def task_overhead(bench: dict) -> float:
    """Scheduler seconds per task: empty tasks on the largest cluster measured."""
    return bench["cluster"]["sessions"][-1]["scheduler_ms_per_task"]["median"] / 1000


def read_rate(bench: dict) -> float:
    """Bytes per second one worker read (median over the smallest cluster's repeats)."""
    repeats = bench["strong"][0]["repeats"]
    return statistics.median(repeat["read_bytes"] / repeat["read_s"] for repeat in repeats
                             if repeat["read_s"] > 0)


def centres_per_task() -> int:
    """A task does every pair of its centres: spheres x pairs per task / pairs."""
    return max(1, STUDY["spheres_per_task"] // STUDY["pairs"])


def searchlight_task_bytes() -> float:
    """Bytes one searchlight task reads on the full grid: its voxel block x scans x float32."""
    brain, _, _ = make_masks(STUDY["grid"])
    _, spheres = sphere_neighbourhoods(brain, make_affine(STUDY["grid"]), STUDY["radius_mm"])
    step = centres_per_task()
    blocks = [len(batch_voxel_block(spheres, slice(start, start + step))[0])
              for start in range(0, spheres.shape[0], step)]
    return float(np.mean(blocks)) * STUDY["scans"] * 4


def project(units: float, cost: float, tasks: int, task_bytes: float, overhead: float,
            cores: int) -> dict:
    """Time of ``units`` of work in ``tasks`` equal tasks on ``cores`` workers, and its limit.

    The run lasts at least as long as each of: the work spread over the
    cores in whole tasks (``ceil(tasks / cores)`` task durations), the
    scheduler handing out every task (``tasks x overhead``), and the store
    delivering every task's bytes (parallel file system and NFS).
    """
    task_s = units * cost / tasks
    bounds = {"compute": math.ceil(tasks / cores) * task_s, "scheduler": tasks * overhead}
    for name, bandwidth in STORAGE_BYTES_PER_S.items():
        bounds[f"storage_{name}"] = tasks * task_bytes / bandwidth
    parallel = max(bounds["compute"], bounds["scheduler"], bounds["storage_parallel"])
    nfs = max(bounds["compute"], bounds["scheduler"], bounds["storage_nfs"])
    limit = max(("compute", "scheduler", "storage_parallel"), key=bounds.get)
    return {"cores": cores, "seconds": parallel, "seconds_on_nfs": nfs, "limited_by": limit,
            "ideal_seconds": units * cost / cores, **{f"{k}_s": v for k, v in bounds.items()}}


def limits(units: float, cost: float, tasks: int, task_bytes: float, overhead: float) -> dict:
    """Where adding cores stops helping: each floor of the run time, and the cores reaching it.

    The ideal time ``units x cost / cores`` meets a floor at ``cores =
    units x cost / floor``; beyond that, more cores do not shorten the run.
    """
    work = units * cost
    floors = {"one_task": work / tasks, "scheduler": tasks * overhead,
              **{f"storage_{name}": tasks * task_bytes / bandwidth
                 for name, bandwidth in STORAGE_BYTES_PER_S.items()}}
    return {name: {"floor_s": floor, "cores": work / floor} for name, floor in floors.items()}


def cost_model(benches: dict[str, dict]) -> dict:
    """The projection of the full study from the measured figures."""
    decode, searchlight, ingest = benches["decode"], benches["searchlight"], benches["ingest"]
    overhead = task_overhead(decode)
    fits = STUDY["subjects"] * STUDY["pairs"] * STUDY["folds"]
    roi_voxels = decode["problem"]["strong"]["voxels"]
    roi_bytes = STUDY["scans"] * roi_voxels * 4
    spheres = STUDY["subjects"] * STUDY["pairs"] * STUDY["brain_voxels"]
    sphere_tasks = STUDY["subjects"] * math.ceil(STUDY["brain_voxels"] / centres_per_task())
    task_bytes = searchlight_task_bytes()
    return {
        "study": STUDY,
        "measured": {
            "decode_s_per_fit": unit_cost(decode), "decode_roi_voxels": roi_voxels,
            "decode_baseline_s_per_fit": 1 / decode["baseline"]["rate"]["median"],
            "searchlight_s_per_sphere": unit_cost(searchlight),
            "searchlight_voxels_per_sphere": searchlight["problem"]["strong"]
            ["voxels_per_sphere"],
            "searchlight_baseline_s_per_sphere": 1 / searchlight["baseline"]["rate"]["median"],
            "ingest_s_per_subject": unit_cost(ingest),
            "ingest_nifti_bytes_per_subject": ingest["problem"]["strong"]["nifti_bytes_on_disk"]
            / ingest["problem"]["strong"]["subjects"],
            "scheduler_s_per_task": overhead,
            "scheduler_tasks_per_s": 1 / overhead,
            "store_read_bytes_per_s_per_worker": read_rate(decode),
            "searchlight_bytes_per_task": task_bytes,
        },
        "roi_decode": {
            "fits": fits, "bytes_per_task_subject": roi_bytes,
            "one_task_per_subject": [project(fits, unit_cost(decode), STUDY["subjects"],
                                             roi_bytes, overhead, cores) for cores in CORES],
            "one_task_per_pair": [project(fits, unit_cost(decode),
                                          STUDY["subjects"] * STUDY["pairs"], roi_bytes,
                                          overhead, cores) for cores in CORES],
            "limits_per_subject": limits(fits, unit_cost(decode), STUDY["subjects"], roi_bytes,
                                         overhead),
            "limits_per_pair": limits(fits, unit_cost(decode),
                                      STUDY["subjects"] * STUDY["pairs"], roi_bytes, overhead),
        },
        "searchlight": {
            "spheres": spheres, "fits": spheres * STUDY["folds"], "tasks": sphere_tasks,
            "projection": [project(spheres, unit_cost(searchlight), sphere_tasks, task_bytes,
                                   overhead, cores) for cores in CORES],
            "limits": limits(spheres, unit_cost(searchlight), sphere_tasks, task_bytes,
                             overhead),
            "nilearn_1_core_s": spheres / searchlight["baseline"]["rate"]["median"],
        },
    }


def print_model(model: dict) -> None:
    measured = model["measured"]
    print(json.dumps(measured, indent=2))
    for name, rows in (("ROI decode, one task per subject", model["roi_decode"]
                        ["one_task_per_subject"]),
                       ("ROI decode, one task per pair", model["roi_decode"]["one_task_per_pair"]),
                       ("whole-brain searchlight", model["searchlight"]["projection"])):
        print(f"\n{name}")
        print(f"{'cores':>6} {'time (s)':>10} {'on NFS (s)':>11} {'ideal (s)':>10}  limited by")
        for row in rows:
            print(f"{row['cores']:6d} {row['seconds']:10.4g} {row['seconds_on_nfs']:11.4g} "
                  f"{row['ideal_seconds']:10.4g}  {row['limited_by']}")
    for name, found in (("ROI decode, one task per subject", model["roi_decode"]
                         ["limits_per_subject"]),
                        ("ROI decode, one task per pair", model["roi_decode"]["limits_per_pair"]),
                        ("whole-brain searchlight", model["searchlight"]["limits"])):
        print(f"\n{name}: stops scaling at " + ", ".join(
            f"{limit}: {value['cores']:.4g} cores ({value['floor_s']:.3g} s)"
            for limit, value in found.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default=None, help="worker counts (default: up to cores)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model-only", action="store_true",
                        help="only the projection, from the runs saved before")
    args = parser.parse_args()
    benches = load_workloads() if args.model_only else run_workloads(args)
    model = cost_model(benches)
    model["machine"] = machine()
    print_model(model)
    print(f"saved {save('cost_model', model)}")


if __name__ == "__main__":
    main()
