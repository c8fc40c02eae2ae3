"""Searchlight across subjects (``nidecode searchlight --cv loso``): folds are subjects.

The subjects share one grid and mask (:func:`nidecode.analyses.loso.check_common_grid`),
so they share the spheres. A task takes a batch of sphere centres, reads the
voxel block those spheres need from every subject (the pair scans of all
subjects, concatenated) and hands it to the sphere solver with one fold per
held-out subject; spheres are small, so the block is too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dask.config
import numpy as np
import pandas as pd
import scipy.sparse as sp
from distributed import Client

from nidecode._validation import (
    check_C,
    check_choice,
    check_class_weight,
    check_classifier_options,
    check_per_task,
    check_radius,
    check_scoring,
)
from nidecode.analyses._prepare import Geometry, Study, claim_output, subject_geometry
from nidecode.analyses.loso import (
    ALL_SUBJECTS,
    KernelRows,
    LosoPair,
    PairSamples,
    check_common_grid,
    majority_rates,
    plan_loso,
    read_block,
)
from nidecode.analyses.plan import SPHERES_PER_TASK
from nidecode.analyses.tasks import fold_mean
from nidecode.cluster import describe, warm_up_solvers
from nidecode.cv import LOSO
from nidecode.errors import InputError
from nidecode.outdir import OutputDir, searchlight_name
from nidecode.results import SphereScores, to_nifti
from nidecode.run import normalise_store_path, phase_timings, run_tasks, versions
from nidecode.solvers import SPHERE_SOLVERS, sphere_solver
from nidecode.spheres import batch_centres, batch_voxel_block
from nidecode.stats import sphere_fold_metrics
from nidecode.store import read_designs


@dataclass(frozen=True)
class LosoSearchlightRun:
    """A checked, planned searchlight across subjects whose output directory is claimed."""

    store_path: str
    output: OutputDir
    rows: KernelRows
    pairs: list[LosoPair]
    samples: dict[tuple[str, str, str], PairSamples]
    geometry: Geometry
    batches: list[slice]
    identity: dict
    started: float
    notes: list[str] = field(default_factory=list)


def prepare_loso_searchlight(store_path: str | Path, out: str | Path, *, radius: float,
                             categories: Sequence[str] | None = None,
                             process_mask: str | Path | None = None, C: float = 1.0,
                             solver: str = "batched", overwrite: bool = False,
                             spheres_per_task: int | None = None,
                             scoring: str | Sequence[str] = "accuracy",
                             classifier: str = "svc", shrinkage: str | float | None = None,
                             class_weight: str | None = None,
                             per_fold: bool = False) -> LosoSearchlightRun:
    """Check the inputs, plan the pairs and sphere batches, claim the output.

    Parameters are those of :func:`nidecode.analyses.searchlight.searchlight`
    with ``cv="loso"``.
    """
    started = time.perf_counter()
    C, radius = check_C(C, "searchlight"), check_radius(radius, "searchlight")
    solver = check_choice(solver, "solver", "searchlight", tuple(SPHERE_SOLVERS))
    scoring = check_scoring(scoring, "searchlight")
    class_weight = check_class_weight(class_weight, "searchlight")
    classifier, shrinkage = check_classifier_options(classifier, shrinkage, class_weight,
                                                     "searchlight", solver)
    per_task = check_per_task(spheres_per_task, "spheres_per_task", "searchlight")
    if per_fold:
        raise InputError("--per-fold: a searchlight with --cv loso writes no per-fold maps "
                         "yet; drop --per-fold")
    store_path = normalise_store_path(store_path)
    designs = read_designs(store_path)
    check_common_grid(store_path, designs)
    ordered = list(designs.values())
    rows, pairs, samples, notes = plan_loso(ordered, categories)
    first = ordered[0]
    geometry = subject_geometry(store_path, first.subject, radius, process_mask,
                                first.checksum)
    # A sphere's fits grow with the scans of every subject: fewer spheres per task.
    per_task = per_task or int(dask.config.get("nidecode.spheres-per-task", SPHERES_PER_TASK))
    batches = batch_centres(len(geometry.centres),
                            max(1, per_task // (len(ordered) * max(1, len(pairs)))))
    identity, output = claim_output(
        out, Study(store_path, designs, [], notes), "searchlight", overwrite=overwrite,
        categories=categories, cv=LOSO, C=C, radius=radius, solver=solver,
        spheres_per_task=per_task, process_mask=str(process_mask) if process_mask else None,
        scoring=list(scoring), classifier=classifier, shrinkage=shrinkage,
        class_weight=class_weight)
    return LosoSearchlightRun(store_path, output, rows, pairs, samples, geometry, batches,
                              identity, started, notes)


def loso_spheres(store_path: str, rows: KernelRows, voxels: np.ndarray,
                 spheres: sp.csr_matrix, pairs: Sequence[tuple[tuple[str, ...], PairSamples]],
                 C: float, solver: str, metrics: Sequence[str], classifier: str,
                 shrinkage, class_weight: str) -> list[SphereScores]:
    """Scores per sphere and held-out subject of a batch of spheres, for every pair.

    The voxel block is read from every subject once and serves every pair.
    """
    block = read_block(store_path, rows, voxels)
    fit = sphere_solver(classifier, solver, C=C, shrinkage=shrinkage,
                        class_weight=None if class_weight == "none" else class_weight)
    others = [metric for metric in metrics if metric != "accuracy"]
    results = []
    for key, samples in pairs:
        X, labels = block[samples.rows], samples.labels
        splits = [(fold.train, fold.test) for fold in samples.folds]
        scores = {}
        if others:
            accuracy, decisions = fit(X, labels, spheres, splits, return_decisions=True)
            y01 = np.unique(labels, return_inverse=True)[1]
            scores = sphere_fold_metrics(decisions, y01, [test for _, test in splits], others)
        else:
            accuracy = fit(X, labels, spheres, splits)
        results.append(SphereScores(key, accuracy,
                                    np.array([fold.fold for fold in samples.folds]), scores))
    return results


def execute_loso_searchlight(run: LosoSearchlightRun, client: Client, *,
                             progress: bool = True) -> pd.DataFrame:
    """Compute the sphere batches the output lacks, then write one map per pair and metric.

    Returns
    -------
    pandas.DataFrame
        One row per pair (subject ``all``): spheres, mean and peak accuracy.
    """
    identity = run.identity
    warm_up_solvers(client, identity["classifier"], identity["solver"])
    saved = run.output.load_parts(SphereScores)
    submitted = time.perf_counter()
    futures = []
    for index, centres in enumerate(run.batches):
        keys = [(*pair.key, f"{index:06d}") for pair in run.pairs]
        if all(key in saved for key in keys):
            continue
        voxels, spheres = batch_voxel_block(run.geometry.spheres, centres)
        futures.append(client.submit(
            loso_spheres, run.store_path, run.rows, voxels, spheres,
            [(key, run.samples[pair.key]) for key, pair in zip(keys, run.pairs, strict=True)],
            identity["C"], identity["solver"], identity["scoring"], identity["classifier"],
            identity["shrinkage"], identity["class_weight"]))
    total = len(run.geometry.centres) * len(run.pairs)
    run_tasks(client, futures, on_result=lambda results: [run.output.save_part(scores)
                                                          for scores in results],
              count=lambda results: sum(len(scores.accuracy) for scores in results),
              total=total, progress=progress, unit="sphere")
    computed = time.perf_counter()
    table = _write_maps(run, run.output.load_parts(SphereScores))
    run.output.write_manifest({
        "status": "complete", "identity": identity, "versions": versions(),
        "counts": {"subjects": len(run.rows.subjects), "batches": len(run.batches),
                   "spheres": total, "tasks": len(futures)},
        "timings": phase_timings(run.started, submitted, computed),
        "cluster": describe(client),
        "background": run.output.write_background(run.store_path, run.rows.subjects[0],
                                                  run.rows.checksums[0]),
        "notes": run.notes,
        "design": {"cv": LOSO, "folds": "subjects", "subjects": list(run.rows.subjects),
                   "pairs": [{"train": [pair.class_a, pair.class_b],
                              "test": [pair.class_a, pair.class_b]} for pair in run.pairs]},
    })
    return table


def _write_maps(run: LosoSearchlightRun, saved: dict) -> pd.DataFrame:
    geometry, rows = run.geometry, []
    for pair in run.pairs:
        parts = [saved[(*pair.key, f"{index:06d}")] for index in range(len(run.batches))]
        means = {}
        for metric in run.identity["scoring"]:
            folds = np.concatenate([part.metric(metric) for part in parts])
            means[metric] = folds.mean(axis=1) if metric == "accuracy" else fold_mean(folds)
            values = np.zeros(int(geometry.mask.sum()), dtype=np.float32)
            values[geometry.centres] = means[metric]
            run.output.write_image(searchlight_name(*pair.key, metric),
                                   to_nifti(values, geometry.mask, geometry.affine))
        rows.append({"subject": ALL_SUBJECTS, "class_a": pair.class_a, "class_b": pair.class_b,
                     "n_spheres": len(means["accuracy"]),
                     "mean_accuracy": float(means["accuracy"].mean()),
                     "chance": float(majority_rates(run.samples[pair.key]).mean()),
                     "peak_accuracy": float(means["accuracy"].max())})
    table = pd.DataFrame(rows)
    run.output.write_table("searchlight.csv", table)
    return table
