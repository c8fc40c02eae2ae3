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
    check_n_permutations,
    check_per_task,
    check_radius,
    check_scoring,
    check_seed,
)
from nidecode.analyses._prepare import Geometry, Study, claim_output, subject_geometry
from nidecode.analyses.loso import (
    ALL_SUBJECTS,
    KernelRows,
    PairSamples,
    check_common_grid,
    majority_rates,
    plan_loso,
    read_block,
    write_complete_manifest,
)
from nidecode.analyses.plan import SPHERES_PER_TASK, PairJob
from nidecode.analyses.tasks import fold_mean, relabel
from nidecode.cluster import warm_up_solvers
from nidecode.cv import LOSO
from nidecode.errors import InputError
from nidecode.outdir import OutputDir, searchlight_name
from nidecode.results import PermutationScores, SphereScores, to_nifti
from nidecode.run import normalise_store_path, run_tasks
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
    pairs: list[PairJob]
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
                             per_fold: bool = False, command: str = "searchlight",
                             **permutations) -> LosoSearchlightRun:
    """Check the inputs, plan the pairs and sphere batches, claim the output.

    Parameters are those of :func:`nidecode.analyses.searchlight.searchlight`
    with ``cv="loso"``; ``command="permute"`` plans searchlight permutations
    (``n_permutations`` and ``seed`` in ``permutations``).
    """
    started = time.perf_counter()
    C, radius = check_C(C, command), check_radius(radius, command)
    solver = check_choice(solver, "solver", command, tuple(SPHERE_SOLVERS))
    scoring = check_scoring(scoring, command)
    class_weight = check_class_weight(class_weight, command)
    classifier, shrinkage = check_classifier_options(classifier, shrinkage, class_weight,
                                                     command, solver)
    per_task = check_per_task(spheres_per_task, "spheres_per_task", command)
    extra = _check_permutations(command, scoring, **permutations)
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
        out, Study(store_path, designs, [], notes), command, overwrite=overwrite,
        categories=categories, cv=LOSO, C=C, radius=radius, solver=solver,
        spheres_per_task=per_task, process_mask=str(process_mask) if process_mask else None,
        scoring=list(scoring), classifier=classifier, shrinkage=shrinkage,
        class_weight=class_weight, **extra)
    return LosoSearchlightRun(store_path, output, rows, pairs, samples, geometry, batches,
                              identity, started, notes)


def _check_permutations(command: str, scoring: Sequence[str], n_permutations=None,
                        seed=0) -> dict:
    """``permute``'s parameters (none for ``searchlight``); accuracy is the one statistic."""
    if command != "permute":
        return {}
    if list(scoring) != ["accuracy"]:
        raise InputError(f"--scoring {','.join(scoring)}: searchlight permutations with --cv "
                         f"loso test accuracy only; drop --scoring")
    return {"n_permutations": check_n_permutations(n_permutations, command),
            "seed": check_seed(seed, command)}


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


def loso_sphere_permutations(store_path: str, rows: KernelRows, voxels: np.ndarray,
                             spheres: sp.csr_matrix,
                             pairs: Sequence[tuple[tuple[str, ...], PairSamples]], C: float,
                             solver: str, seed: int, indices: Sequence[int], classifier: str,
                             shrinkage, class_weight: str) -> list[PermutationScores]:
    """Sphere accuracies (means over held-out subjects) of a batch of spheres under every
    labelling ``indices`` (-1: the observed one), for every pair.

    The voxel block is read from every subject once and serves every pair and
    labelling. Labels move within each subject's runs; permutation ``i`` of a
    pair is the same in every batch (:func:`nidecode.analyses.tasks.relabel`
    reads the pair from ``key[:3]``), so the maps' maximum statistic is valid.

    Returns
    -------
    list of PermutationScores
        One per pair: ``accuracy`` of shape (len(indices), n_spheres).
    """
    block = read_block(store_path, rows, voxels)
    fit = sphere_solver(classifier, solver, C=C, shrinkage=shrinkage,
                        class_weight=None if class_weight == "none" else class_weight)
    results = []
    for key, samples in pairs:
        X, groups = block[samples.rows], samples.permutation_groups
        splits = [(fold.train, fold.test) for fold in samples.folds]
        accuracy = np.empty((len(indices), spheres.shape[0]))
        for row, index in enumerate(indices):
            labels = relabel(samples.labels, groups, key, seed, index)
            accuracy[row] = fit(X, labels, spheres, splits).mean(axis=1)
        results.append(PermutationScores(key, np.asarray(indices), accuracy, {}))
    return results


def execute_loso_searchlight_permute(run: LosoSearchlightRun, client: Client, *,
                                     progress: bool = True) -> pd.DataFrame:
    """Searchlight permutations across subjects: one task per sphere batch runs every
    labelling on its voxel block; then null maps and p maps per pair.

    Returns
    -------
    pandas.DataFrame
        ``permutations/searchlight.csv``: one row per pair (subject ``all``).
    """
    identity = run.identity
    warm_up_solvers(client, identity["classifier"], identity["solver"])
    saved = run.output.load_parts(PermutationScores)
    indices = range(-1, identity["n_permutations"])
    submitted = time.perf_counter()
    futures = []
    for voxels, spheres, samples in _pending_batches(run, saved, _permutation_key):
        futures.append(client.submit(
            loso_sphere_permutations, run.store_path, run.rows, voxels, spheres, samples,
            identity["C"], identity["solver"], identity["seed"], indices,
            identity["classifier"], identity["shrinkage"], identity["class_weight"]))
    per_batch = len(indices) * len(run.pairs)
    run_tasks(client, futures, on_result=lambda results: [run.output.save_part(part)
                                                          for part in results],
              count=lambda results: per_batch, total=per_batch * len(run.batches),
              initial=per_batch * (len(run.batches) - len(futures)), progress=progress,
              unit="permutation")
    computed = time.perf_counter()
    table = _write_permutation_maps(run, run.output.load_parts(PermutationScores))
    write_complete_manifest(
        run, identity, client, submitted, computed, design=_design(run),
        counts={"subjects": len(run.rows.subjects), "batches": len(run.batches),
                "tasks": len(run.batches), "tasks_computed": len(futures)})
    return table


def _sphere_key(pair: PairJob, batch: int) -> tuple[str, ...]:
    """(``all``, class_a, class_b, sphere batch): the key of a batch's sphere scores."""
    return (*pair.key, f"{batch:06d}")


def _pending_batches(run: LosoSearchlightRun, saved: dict, key_of):
    """Each sphere batch with a pair not saved yet: its voxel block of the spheres, the
    spheres on it, and per pair (its key, its samples) for the task."""
    for index, centres in enumerate(run.batches):
        keys = [key_of(pair, index) for pair in run.pairs]
        if not all(key in saved for key in keys):
            voxels, spheres = batch_voxel_block(run.geometry.spheres, centres)
            yield voxels, spheres, [(key, run.samples[pair.key])
                                    for key, pair in zip(keys, run.pairs, strict=True)]


def _permutation_key(pair: PairJob, batch: int) -> tuple[str, ...]:
    """(``all``, class_a, class_b, sphere batch, chunk): the key searchlight permutations use."""
    return (*pair.key, f"{batch:06d}", "00000")


def _write_permutation_maps(run: LosoSearchlightRun, saved: dict) -> pd.DataFrame:
    from types import SimpleNamespace

    from nidecode.analyses.permute import _searchlight_metric
    from nidecode.analyses.plan import PairJob

    # _searchlight_metric reads the output and the subject's geometry only.
    view = SimpleNamespace(output=run.output, geometry={ALL_SUBJECTS: run.geometry})
    rows = []
    for pair in run.pairs:
        by_batch = {f"{index:06d}": [saved[_permutation_key(pair, index)]]
                    for index in range(len(run.batches))}
        job = PairJob(ALL_SUBJECTS, pair.class_a, pair.class_b,
                      len(run.samples[pair.key].folds))
        rows.append({"subject": ALL_SUBJECTS, "class_a": pair.class_a, "class_b": pair.class_b,
                     "test_a": "", "test_b": "",
                     **_searchlight_metric(view, job, by_batch, "accuracy")})
    table = pd.DataFrame(rows)
    run.output.write_table("permutations/searchlight.csv", table)
    return table


def _design(run: LosoSearchlightRun) -> dict:
    return {"cv": LOSO, "folds": "subjects", "subjects": list(run.rows.subjects),
            "pairs": [{"train": [pair.class_a, pair.class_b],
                       "test": [pair.class_a, pair.class_b]} for pair in run.pairs]}


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
    for voxels, spheres, samples in _pending_batches(run, saved, _sphere_key):
        futures.append(client.submit(
            loso_spheres, run.store_path, run.rows, voxels, spheres, samples,
            identity["C"], identity["solver"], identity["scoring"], identity["classifier"],
            identity["shrinkage"], identity["class_weight"]))
    total = len(run.geometry.centres) * len(run.pairs)
    run_tasks(client, futures, on_result=lambda results: [run.output.save_part(scores)
                                                          for scores in results],
              count=lambda results: sum(len(scores.accuracy) for scores in results),
              total=total, progress=progress, unit="sphere")
    computed = time.perf_counter()
    table = _write_maps(run, run.output.load_parts(SphereScores))
    write_complete_manifest(
        run, identity, client, submitted, computed, design=_design(run),
        counts={"subjects": len(run.rows.subjects), "batches": len(run.batches),
                "spheres": total, "tasks": len(futures)})
    return table


def _write_maps(run: LosoSearchlightRun, saved: dict) -> pd.DataFrame:
    geometry, rows = run.geometry, []
    for pair in run.pairs:
        parts = [saved[_sphere_key(pair, index)] for index in range(len(run.batches))]
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
