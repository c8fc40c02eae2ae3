"""Permutation tests on a Dask cluster: null distributions of decoding accuracies.

Labels are permuted within runs, blocks of a blocked design kept whole
(:func:`nidecode.stats.permute_within_runs`); every permutation is drawn from
the run's seed, the subject, the pair and its index alone, so the null does
not depend on how the work is split or resumed. The work is distributed and
resumable like :mod:`nidecode.decode`: subject x pair (x sphere batch) x chunk
of permutations per task, saved as it arrives.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dask.config
import numpy as np
import pandas as pd
from distributed import Client

from nidecode import store
from nidecode.cluster import describe
from nidecode.cv import parse_cv
from nidecode.errors import InputError
from nidecode.outdir import OutputDir, null_name, searchlight_name
from nidecode.plan import PairJob, plan_decode
from nidecode.results import PermutationScores, group_table, summary_table, to_nifti
from nidecode.run import normalise_store_path, phase_timings, run_tasks, task_key, versions
from nidecode.searchlight import SOLVERS, Geometry, subject_geometry
from nidecode.spheres import batch_centres, batch_voxel_block
from nidecode.stats import (
    count_distinct_permutations,
    max_statistic_p_values,
    permutation_p_value,
    permutation_p_values,
)
from nidecode.tasks import permutation_accuracies, permutation_sphere_accuracies

PERMUTATIONS_PER_TASK = {"roi": 50, "searchlight": 5}
SPHERES_PER_TASK = 2000


@dataclass(frozen=True)
class PermutationTask:
    """Permutations ``indices`` of one subject x pair (and one sphere batch)."""

    job: PairJob
    indices: tuple[int, ...]
    key: tuple[str, ...]
    centres: slice | None = None


@dataclass(frozen=True)
class PermuteRun:
    """A checked, planned permutation run whose output directory is claimed."""

    store_path: str
    output: OutputDir
    designs: dict[str, store.Design]
    geometry: dict[str, Geometry] | None
    tasks: list[PermutationTask]
    identity: dict
    started: float


def prepare_permute(store_path: str | Path, out: str | Path, *, n_permutations: int,
                    categories: Sequence[str] | None = None, cv: str = "logo",
                    C: float = 1.0, seed: int = 0, solver: str = "batched",
                    radius: float | None = None, overwrite: bool = False,
                    permutations_per_task: int | None = None) -> PermuteRun:
    """Check the inputs, plan the tasks and claim the output (no cluster needed).

    Parameters are those of :func:`permute`.
    """
    started = time.perf_counter()
    cv = parse_cv(cv)
    if n_permutations < 1:
        raise InputError(f"--n-permutations {n_permutations}: give at least 1 (1000 or "
                         f"more for a p-value below 0.001)")
    if solver not in SOLVERS:
        raise InputError(f"--solver {solver}: choose one of {', '.join(SOLVERS)}")
    if C <= 0:
        raise InputError(f"--C {C:g}: the SVM penalty must be positive")
    if radius is not None and not radius > 0:
        raise InputError(f"--radius {radius:g}: give a positive radius in millimetres")
    mode = "roi" if radius is None else "searchlight"
    if permutations_per_task is None:
        permutations_per_task = int(dask.config.get(f"nidecode.permutations-per-task.{mode}",
                                                    PERMUTATIONS_PER_TASK[mode]))
    store_path = normalise_store_path(store_path)
    designs = store.read_designs(store_path)
    jobs = plan_decode(list(designs.values()), cv, categories)
    geometry = None if radius is None else {
        subject: subject_geometry(store_path, subject, radius, None) for subject in designs}
    chunks = [tuple(range(start, min(start + permutations_per_task, n_permutations)))
              for start in range(-1, n_permutations, permutations_per_task)]
    tasks = []
    for job in jobs:
        batches = ([None] if geometry is None else
                   batch_centres(len(geometry[job.subject].centres), SPHERES_PER_TASK))
        for batch_index, centres in enumerate(batches):
            for chunk_index, indices in enumerate(chunks):
                where = () if centres is None else (f"{batch_index:06d}",)
                tasks.append(PermutationTask(job, indices,
                                             (*job.key, *where, f"{chunk_index:05d}"), centres))
    identity = {"command": "permute", "store": store_path,
                "subjects": {subject: design.checksum for subject, design in designs.items()},
                "categories": sorted(categories) if categories else "all", "cv": cv, "C": C,
                "n_permutations": n_permutations, "seed": seed, "solver": solver,
                "radius": radius, "permutations_per_task": permutations_per_task}
    output = OutputDir(out)
    output.start(identity, overwrite=overwrite, versions=versions())
    return PermuteRun(store_path, output, designs, geometry, tasks, identity, started)


def execute_permute(run: PermuteRun, client: Client, *, progress: bool = True) -> pd.DataFrame:
    """Compute the permutations the output lacks, then write p-values and nulls.

    Returns
    -------
    pandas.DataFrame
        The p-value table (see :func:`permute`).
    """
    saved = run.output.load_parts(PermutationScores)
    todo = [task for task in run.tasks if task.key not in saved]
    identity = run.identity
    submitted = time.perf_counter()

    def submit(task: PermutationTask):
        checksum = run.designs[task.job.subject].checksum
        common = (identity["cv"], identity["C"], identity["seed"], task.indices,
                  identity["solver"])
        key = task_key("permute", identity, [task])
        if task.centres is None:
            return client.submit(permutation_accuracies, run.store_path, task.key, checksum,
                                 *common, key=key)
        voxels, spheres = batch_voxel_block(run.geometry[task.job.subject].spheres,
                                            task.centres)
        return client.submit(permutation_sphere_accuracies, run.store_path, task.key,
                             checksum, voxels, spheres, *common, key=key)

    total = sum(len(task.indices) for task in run.tasks)
    run_tasks(client, [submit(task) for task in todo], on_result=run.output.save_part,
              count=lambda scores: len(scores.indices), total=total,
              initial=total - sum(len(task.indices) for task in todo), progress=progress,
              unit="permutation")
    computed = time.perf_counter()

    saved = run.output.load_parts(PermutationScores)
    table = (_write_roi(run, saved) if run.geometry is None else _write_searchlight(run, saved))
    run.output.write_manifest({
        "status": "complete", "identity": identity, "versions": versions(),
        "counts": {"subjects": len(run.designs), "tasks": len(run.tasks),
                   "tasks_computed": len(todo)},
        "timings": phase_timings(run.started, submitted, computed),
        "cluster": describe(client),
        "background": run.output.write_background(run.store_path, next(iter(run.designs))),
    })
    return table


def _by_job(run: PermuteRun, saved: dict) -> dict[tuple[str, str, str], list]:
    parts: dict[tuple[str, str, str], list] = {}
    for task in run.tasks:
        parts.setdefault(task.job.key, []).append(saved[task.key])
    return parts


def _observed_and_null(parts: list[PermutationScores]) -> tuple[np.ndarray, np.ndarray]:
    indices = np.concatenate([part.indices for part in parts])
    accuracy = np.concatenate([part.accuracy for part in parts])
    order = np.argsort(indices, kind="stable")
    return accuracy[order][0], accuracy[order][1:]  # index -1 sorts first


def _distinct(run: PermuteRun, subject: str, class_a: str, class_b: str) -> int:
    design = run.designs[subject]
    selected = np.isin(design.labels, (class_a, class_b))
    return count_distinct_permutations(design.labels[selected], design.runs[selected])


def _write_roi(run: PermuteRun, saved: dict) -> pd.DataFrame:
    rows, scores = [], []
    for (subject, class_a, class_b), parts in _by_job(run, saved).items():
        observed, null_folds = _observed_and_null(parts)
        null = null_folds.mean(axis=1)
        run.output.write_array(null_name(subject, class_a, class_b), null)
        rows.append({"subject": subject, "class_a": class_a, "class_b": class_b,
                     "accuracy": observed.mean(), "p_value": permutation_p_value(
                         observed.mean(), null), "n_permutations": len(null),
                     "n_distinct_permutations": _distinct(run, subject, class_a, class_b),
                     "null_mean": null.mean(), "null_std": null.std()})
        scores.append(pd.DataFrame({"subject": subject, "class_a": class_a,
                                    "class_b": class_b, "fold": np.arange(len(observed)),
                                    "accuracy": observed}))
    table = pd.DataFrame(rows)
    summary = summary_table(pd.concat(scores, ignore_index=True))
    run.output.write_table("permutations/pvalues.csv", table)
    run.output.write_table("summary.csv", summary)
    if len(run.designs) > 1:
        run.output.write_table("group.csv", group_table(summary))
    return table


def _write_searchlight(run: PermuteRun, saved: dict) -> pd.DataFrame:
    rows = []
    for (subject, class_a, class_b), parts in _by_job(run, saved).items():
        geometry = run.geometry[subject]
        by_batch: dict[str, list] = {}
        for part in parts:
            by_batch.setdefault(part.key[3], []).append(part)
        pieces = [_observed_and_null(by_batch[batch]) for batch in sorted(by_batch)]
        observed = np.concatenate([piece[0] for piece in pieces])
        null = np.concatenate([piece[1] for piece in pieces], axis=1)
        run.output.write_array(null_name(subject, class_a, class_b, searchlight=True),
                               null.astype(np.float32))
        uncorrected = permutation_p_values(observed, null)
        corrected = max_statistic_p_values(observed, null)
        for statistic, values in (("", observed), ("p", uncorrected), ("p_fwe", corrected)):
            full = np.zeros(int(geometry.mask.sum()), dtype=np.float32)
            full[geometry.centres] = values
            run.output.write_image(searchlight_name(subject, class_a, class_b, statistic),
                                   to_nifti(full, geometry.mask, geometry.affine))
        rows.append({"subject": subject, "class_a": class_a, "class_b": class_b,
                     "n_spheres": len(observed), "peak_accuracy": observed.max(),
                     "min_p_fwe": corrected.min(),
                     "n_spheres_p_fwe_05": int((corrected < 0.05).sum()),
                     "n_permutations": len(null)})
    table = pd.DataFrame(rows)
    run.output.write_table("permutations/searchlight.csv", table)
    return table


def permute(store_path: str | Path, out: str | Path, client: Client, *, n_permutations: int,
            categories: Sequence[str] | None = None, cv: str = "logo", C: float = 1.0,
            seed: int = 0, solver: str = "batched", radius: float | None = None,
            overwrite: bool = False, progress: bool = True,
            permutations_per_task: int | None = None) -> pd.DataFrame:
    """Permutation tests of the decoding accuracy of every subject x pair.

    Parameters
    ----------
    store_path : str or Path
        The Zarr store.
    out : str or Path
        Output directory. ROI decoding: ``permutations/pvalues.csv``
        (``subject,class_a,class_b,accuracy,p_value,n_permutations,
        n_distinct_permutations,null_mean,null_std``), the null distributions
        ``permutations/null/{subject}_{class_a}_vs_{class_b}.npy``,
        ``summary.csv`` and, with several subjects, ``group.csv``. With
        ``radius`` (searchlight): accuracy maps and voxel-wise p-value maps,
        uncorrected (``_p``) and family-wise corrected with the maximum
        statistic over spheres (``_p_fwe``), in ``searchlight/``, and the
        null maps in ``permutations/null/``. Subject ids and labels are
        encoded in the names (:mod:`nidecode.outdir`).
    client : distributed.Client
    n_permutations : int
        Permutations per subject x pair. The p-value is
        ``(1 + #(null >= observed)) / (1 + n_permutations)``.
    categories : sequence of str, optional
        Every pair among these; default: all pairs.
    cv : str
        ``"logo"`` or ``"kfold:K"``.
    C : float
        SVM penalty.
    seed : int
        Seed of the permutations.
    solver : {"batched", "libsvm", "sklearn"}
        ``batched`` (default) and ``libsvm``: SVC's problem solved from a Gram
        matrix computed once per task and reused by every permutation and
        fold, on libsvm's path (ROI) or with the searchlight solver of that
        name (see :func:`nidecode.searchlight.searchlight`); ``sklearn``:
        ``SVC`` refitted.
    radius : float, optional
        Searchlight permutations with spheres of this radius (mm).
    overwrite : bool
        Replace results of other parameters in ``out``.
    progress : bool
        Progress bar of the permutations.
    permutations_per_task : int, optional
        Permutations per Dask task (default 50, or 5 for a searchlight).

    Returns
    -------
    pandas.DataFrame
        The p-value table (ROI) or one row per subject x pair of the
        searchlight (spheres, peak accuracy, smallest corrected p-value).
    """
    run = prepare_permute(store_path, out, n_permutations=n_permutations,
                          categories=categories, cv=cv, C=C, seed=seed, solver=solver,
                          radius=radius, overwrite=overwrite,
                          permutations_per_task=permutations_per_task)
    return execute_permute(run, client, progress=progress)
