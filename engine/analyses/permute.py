"""Permutation tests on a Dask cluster: null distributions of decoding accuracies.

Labels are permuted within runs, blocks of a blocked design kept whole
(:func:`nidecode.stats.permute_within_runs`); every permutation is drawn from
the run's seed, the subject, the pair and its index alone, so the null does
not depend on how the work is split or resumed. The work is distributed and
resumable like :mod:`nidecode.analyses.decode`: subject x pair (x sphere batch) x chunk
of permutations per task, saved as it arrives.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dask.config
import numpy as np
import pandas as pd
from distributed import Client

from nidecode import store
from nidecode._validation import (
    check_C,
    check_choice,
    check_class_weight,
    check_classifier_options,
    check_cross_cv,
    check_cv,
    check_n_permutations,
    check_per_task,
    check_radius,
    check_scoring,
    check_seed,
)
from nidecode.analyses._prepare import (
    Geometry,
    claim_output,
    plan_study,
    subject_geometry,
    warn_if_unstandardized,
)
from nidecode.analyses.decode import cross_design, plan_cross_study
from nidecode.analyses.loso import LosoRun, execute_loso_permute, prepare_loso
from nidecode.analyses.loso_searchlight import (
    LosoSearchlightRun,
    execute_loso_searchlight_permute,
    prepare_loso_searchlight,
)
from nidecode.analyses.plan import (
    SPHERES_PER_TASK,
    PairJob,
    category_list,
    cross_mapping,
    pair_samples,
    permutation_groups,
    used_categories,
)
from nidecode.analyses.searchlight import map_name
from nidecode.analyses.tasks import permutation_accuracies, permutation_sphere_accuracies
from nidecode.cluster import describe
from nidecode.cv import is_loso
from nidecode.errors import InputError, NidecodeWarning
from nidecode.outdir import OutputDir, null_name
from nidecode.results import PermutationScores, group_table, summary_table, to_nifti
from nidecode.run import phase_timings, run_tasks, task_key, versions
from nidecode.solvers import SPHERE_SOLVERS, has_closed_form
from nidecode.spheres import batch_centres, batch_voxel_block
from nidecode.stats import (
    count_distinct_permutations,
    max_statistic_p_values,
    permutation_p_value,
    permutation_p_values,
)

PERMUTATIONS_PER_TASK = {"roi": 50, "searchlight": 5}
# A closed-form searchlight (gnb, lda) scores a batch of spheres ~10-20x faster
# than the SVM: more labellings per task keep a task's work above its overhead.
CLOSED_FORM_PERMUTATIONS_PER_TASK = 50
# Planning estimates from the README's benchmarks (one core): ROI fits on a
# reused Gram matrix, and searchlight spheres of 12 folds at about 1000 spheres/s.
FITS_PER_CORE_SECOND = 200
SPHERE_FOLDS_PER_FIT = 60
# A searchlight sphere's cost relative to the SVM's (README, the searchlight
# benchmarks: closed-form GaussianNB ~23x and LDA ~7x faster per sphere,
# logistic regression fitted per sphere ~500x slower). ROI fits: the SVM's.
SPHERE_SPEED_VS_SVC = {"svc": 1.0, "gnb": 20.0, "lda": 7.0, "logreg": 0.002}
WARN_CORE_HOURS = 1.0
TASKS_IN_FLIGHT = 10_000


@dataclass(frozen=True)
class PermutationTask:
    """Permutations ``indices`` of one subject x pair (and one sphere batch)."""

    job: PairJob
    indices: range
    key: tuple[str, ...]
    centres: slice | None = None


@dataclass(frozen=True)
class PermutationPlan(Sequence):
    """Every task of a permutation run, made on the fly from a few descriptors.

    Index -1 is the observed labelling; indices 0 .. n_permutations - 1 are
    cut into chunks of ``per_task``. Each (job, sphere batch) unit has every
    chunk; the plan holds the units only, so 10^6 permutations cost no more
    client memory than ten.
    """

    units: tuple[tuple[PairJob, int, slice | None], ...]  # job, sphere batch index, centres
    n_permutations: int
    per_task: int

    @property
    def n_chunks(self) -> int:
        """Tasks per unit."""
        return len(range(-1, self.n_permutations, self.per_task))

    def __len__(self) -> int:
        return len(self.units) * self.n_chunks

    def __getitem__(self, index: int) -> PermutationTask:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        unit, chunk = divmod(index % len(self), self.n_chunks)
        job, batch, centres = self.units[unit]
        start = -1 + chunk * self.per_task
        where = () if centres is None else (f"{batch:06d}",)
        return PermutationTask(job, range(start, min(start + self.per_task, self.n_permutations)),
                               (*job.key, *where, f"{chunk:05d}"), centres)

    def __iter__(self) -> Iterator[PermutationTask]:
        return (self[index] for index in range(len(self)))


@dataclass(frozen=True)
class PermuteRun:
    """A checked, planned permutation run whose output directory is claimed."""

    store_path: str
    output: OutputDir
    designs: dict[str, store.Design]
    geometry: dict[str, Geometry] | None
    tasks: PermutationPlan
    identity: dict
    started: float
    notes: list[str] = field(default_factory=list)  # what the plan leaves out, to print


def prepare_permute(store_path: str | Path, out: str | Path, *, n_permutations: int,
                    categories: Sequence[str] | None = None, cv: str = "logo",
                    C: float = 1.0, seed: int = 0, solver: str = "batched",
                    radius: float | None = None, overwrite: bool = False,
                    permutations_per_task: int | None = None,
                    scoring: str | Sequence[str] = "accuracy",
                    class_weight: str | None = None, classifier: str = "svc",
                    shrinkage: str | float | None = None,
                    train_categories: Sequence[str] | None = None,
                    test_categories: Sequence[str] | None = None
                    ) -> PermuteRun | LosoRun | LosoSearchlightRun:
    """Check the inputs, plan the tasks and claim the output (no cluster needed).

    Parameters are those of :func:`permute`; ``cv="loso"`` plans a
    :class:`~nidecode.analyses.loso.LosoRun`.
    """
    if is_loso(cv) and radius is not None:
        return _prepare_loso_searchlight(store_path, out, radius, n_permutations, categories,
                                         C, seed, solver, overwrite, scoring, class_weight,
                                         classifier, shrinkage, train_categories,
                                         test_categories)
    if is_loso(cv):
        return prepare_loso(store_path, out, "permute", categories=categories, C=C,
                            scoring=scoring, class_weight=class_weight, overwrite=overwrite,
                            classifier=classifier, shrinkage=shrinkage,
                            train_categories=train_categories, test_categories=test_categories,
                            n_permutations=n_permutations, seed=seed,
                            permutations_per_task=permutations_per_task, radius=radius,
                            solver=solver)
    started = time.perf_counter()
    cross = train_categories is not None or test_categories is not None
    cv = check_cross_cv(cv, "permute") if cross else check_cv(cv, "permute")
    C = check_C(C, "permute")
    n_permutations = check_n_permutations(n_permutations, "permute")
    seed = check_seed(seed, "permute")
    solver = check_choice(solver, "solver", "permute", tuple(SPHERE_SOLVERS))
    radius = None if radius is None else check_radius(radius, "permute")
    scoring = check_scoring(scoring, "permute")
    class_weight = check_class_weight(class_weight, "permute")
    classifier, shrinkage = check_classifier_options(classifier, shrinkage, class_weight,
                                                     "permute", solver)
    permutations_per_task = check_per_task(permutations_per_task, "permutations_per_task",
                                           "permute")
    mode = "roi" if radius is None else "searchlight"
    if permutations_per_task is None:
        default = (CLOSED_FORM_PERMUTATIONS_PER_TASK
                   if mode == "searchlight" and has_closed_form(classifier, solver)
                   else PERMUTATIONS_PER_TASK[mode])
        permutations_per_task = int(dask.config.get(f"nidecode.permutations-per-task.{mode}",
                                                    default))
    mapping = cross_mapping(category_list(train_categories), category_list(test_categories),
                            cv, categories)
    # Searchlight permutations make no group test: no note about pairs of one subject.
    study = (plan_study(store_path, cv, categories, group=radius is None) if mapping is None
             else plan_cross_study(store_path, cv, mapping))
    design = {} if mapping is None else {"train_categories": list(mapping),
                                         "test_categories": list(mapping.values())}
    designs, jobs = study.designs, study.jobs
    if radius is not None and classifier == "svc":  # the warning is about the SVM's C
        warn_if_unstandardized(study, C)
    geometry = None if radius is None else {
        subject: subject_geometry(study.store_path, subject, radius, None, design.checksum)
        for subject, design in designs.items()}
    units = tuple((job, batch, centres) for job in jobs for batch, centres in enumerate(
        [None] if geometry is None else
        batch_centres(len(geometry[job.subject].centres), SPHERES_PER_TASK)))
    tasks = PermutationPlan(units, n_permutations, permutations_per_task)
    _warn_expected_time(tasks, classifier)
    identity, output = claim_output(
        out, study, "permute", overwrite=overwrite,
        categories=used_categories(categories, mapping), cv=cv, C=C,
        n_permutations=n_permutations, seed=seed, solver=solver, radius=radius,
        permutations_per_task=permutations_per_task, scoring=list(scoring),
        class_weight=class_weight, classifier=classifier, shrinkage=shrinkage, **design)
    return PermuteRun(study.store_path, output, designs, geometry, tasks, identity, started,
                      study.notes)


def _prepare_loso_searchlight(store_path, out, radius, n_permutations, categories, C, seed,
                              solver, overwrite, scoring, class_weight, classifier, shrinkage,
                              train_categories, test_categories) -> LosoSearchlightRun:
    """``permute --searchlight --cv loso``: every sphere task runs all the labellings."""
    if train_categories is not None or test_categories is not None:
        raise InputError("--train-categories: searchlight permutations with --cv loso do not "
                         "cross-decode yet; drop --train-categories and --test-categories")
    return prepare_loso_searchlight(store_path, out, radius=radius, categories=categories,
                                    C=C, solver=solver, overwrite=overwrite, scoring=scoring,
                                    classifier=classifier, shrinkage=shrinkage,
                                    class_weight=class_weight, command="permute",
                                    n_permutations=n_permutations, seed=seed)


def _warn_expected_time(plan: PermutationPlan, classifier: str = "svc") -> None:
    """Warn when the permutations take more than :data:`WARN_CORE_HOURS` of one core."""
    spheres = SPHERE_FOLDS_PER_FIT * SPHERE_SPEED_VS_SVC[classifier]
    per_permutation = sum(job.n_folds if centres is None else
                          (centres.stop - centres.start) * job.n_folds / spheres
                          for job, _, centres in plan.units)
    fits = per_permutation * plan.n_permutations
    hours = fits / FITS_PER_CORE_SECOND / 3600
    if hours > WARN_CORE_HOURS:
        warnings.warn(f"{plan.n_permutations} permutations ({classifier}): about "
                      f"{hours:.3g} core-hours, as {fits:.3g} SVM fits at "
                      f"{FITS_PER_CORE_SECOND} fits/s per core; use fewer permutations or "
                      f"more workers", NidecodeWarning, stacklevel=3)


def execute_permute(run: PermuteRun | LosoRun | LosoSearchlightRun, client: Client, *,
                    progress: bool = True) -> pd.DataFrame:
    """Compute the permutations the output lacks, then write p-values and nulls.

    Returns
    -------
    pandas.DataFrame
        The p-value table (see :func:`permute`).
    """
    if isinstance(run, LosoRun):
        return execute_loso_permute(run, client, progress=progress)
    if isinstance(run, LosoSearchlightRun):
        return execute_loso_searchlight_permute(run, client, progress=progress)
    saved = run.output.load_parts(PermutationScores)
    todo = (task for task in run.tasks if task.key not in saved)  # lazy: the plan may be long
    identity = run.identity
    submitted = time.perf_counter()

    def submit(task: PermutationTask):
        checksum = run.designs[task.job.subject].checksum
        common = (identity["cv"], identity["C"], identity["seed"], task.indices,
                  identity["solver"])
        model = {"classifier": identity["classifier"], "shrinkage": identity["shrinkage"]}
        key = task_key("permute", identity, [task])
        if task.centres is None:
            return client.submit(permutation_accuracies, run.store_path, task.key, checksum,
                                 *common, identity["scoring"], identity["class_weight"],
                                 **model, key=key,
                                 test_pair=task.job.test_pair if task.job.is_cross else None)
        voxels, spheres = batch_voxel_block(run.geometry[task.job.subject].spheres,
                                            task.centres)
        return client.submit(permutation_sphere_accuracies, run.store_path, task.key,
                             checksum, voxels, spheres, *common, identity["scoring"],
                             identity["class_weight"], **model, key=key,
                             test_pair=task.job.test_pair if task.job.is_cross else None)

    total = (run.tasks.n_permutations + 1) * len(run.tasks.units)
    done = sum(len(part.indices) for part in saved.values())
    n_computed = 0
    # A window of tasks at a time bounds the client's and scheduler's memory.
    while window := list(itertools.islice(todo, TASKS_IN_FLIGHT)):
        run_tasks(client, [submit(task) for task in window], on_result=run.output.save_part,
                  count=lambda scores: len(scores.indices), total=total, initial=done,
                  progress=progress, unit="permutation")
        done += sum(len(task.indices) for task in window)
        n_computed += len(window)
    computed = time.perf_counter()

    saved = run.output.load_parts(PermutationScores)
    table = (_write_roi(run, saved) if run.geometry is None else _write_searchlight(run, saved))
    run.output.write_manifest({
        "status": "complete", "identity": identity, "versions": versions(),
        "counts": {"subjects": len(run.designs), "tasks": len(run.tasks),
                   "tasks_computed": n_computed},
        "timings": phase_timings(run.started, submitted, computed),
        "cluster": describe(client),
        "background": run.output.write_background(
            run.store_path, next(iter(run.designs)), next(iter(run.designs.values())).checksum),
        "notes": run.notes,
        **({"design": cross_design(list(_jobs(run).values()))}
           if "train_categories" in identity else {}),
    })
    return table


def _by_job(run: PermuteRun, saved: dict) -> dict[tuple[str, str, str], list]:
    parts: dict[tuple[str, str, str], list] = {}
    for task in run.tasks:
        parts.setdefault(task.job.key, []).append(saved[task.key])
    return parts


def _observed_and_null(parts: list[PermutationScores],
                       metric: str = "accuracy") -> tuple[np.ndarray, np.ndarray]:
    indices = np.concatenate([part.indices for part in parts])
    scores = np.concatenate([part.accuracy if metric == "accuracy" else part.metrics[metric]
                             for part in parts])
    order = np.argsort(indices, kind="stable")
    return scores[order][0], scores[order][1:]  # index -1 sorts first


def _jobs(run: PermuteRun) -> dict[tuple[str, str, str], PairJob]:
    return {job.key: job for job, _, _ in run.tasks.units}


def _distinct(run: PermuteRun, job: PairJob) -> int:
    design = run.designs[job.subject]
    scans, labels, _ = pair_samples(design, job, run.identity["cv"])
    return count_distinct_permutations(labels, permutation_groups(design, job, scans))


def _write_roi(run: PermuteRun, saved: dict) -> pd.DataFrame:
    rows, scores = [], []
    others = [metric for metric in run.identity["scoring"] if metric != "accuracy"]
    jobs = _jobs(run)
    for (subject, class_a, class_b), parts in _by_job(run, saved).items():
        job = jobs[(subject, class_a, class_b)]
        observed, null_folds = _observed_and_null(parts)
        null = null_folds.mean(axis=1)
        run.output.write_array(null_name(subject, class_a, class_b), null)
        # test_a, test_b: the categories tested as class_a and class_b (cross-decoding).
        pair = {"subject": subject, "class_a": class_a, "class_b": class_b,
                "test_a": job.test_pair[0], "test_b": job.test_pair[1]}
        row = {**pair,
               "accuracy": observed.mean(), "p_value": permutation_p_value(observed.mean(), null),
               "n_permutations": len(null),
               "n_distinct_permutations": _distinct(run, job),
               "null_mean": null.mean(), "null_std": null.std()}
        # Chance of each fold: its mean accuracy under the permutations.
        fold_scores = {"accuracy": observed, "chance": null_folds.mean(axis=0)}
        for metric in others:
            row.update(_metric_p_value(run, parts, (subject, class_a, class_b), metric))
            fold_scores[metric] = _observed_and_null(parts, metric)[0]
        rows.append(row)
        scores.append(pd.DataFrame({**pair, "fold": np.arange(len(observed)),
                                    **fold_scores}))
    table = pd.DataFrame(rows)
    summary = summary_table(pd.concat(scores, ignore_index=True))
    run.output.write_table("permutations/pvalues.csv", table)
    run.output.write_table("summary.csv", summary)
    if len(run.designs) > 1:
        run.output.write_table("group.csv", group_table(summary))
    return table


def _metric_p_value(run: PermuteRun, parts: list[PermutationScores],
                    key: tuple[str, str, str], metric: str) -> dict:
    """A metric's observed fold mean, its p-value against its own null, and the null saved.

    Folds without a value (ROC AUC of a fold of one class) are left out of
    each mean; a relabelling keeps the scans of each fold, so the same folds.
    """
    observed, null_folds = _observed_and_null(parts, metric)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all folds empty: NaN, said below
        value, null = np.nanmean(observed), np.nanmean(null_folds, axis=1)
    run.output.write_array(null_name(*key, metric=metric), null)
    p_value = permutation_p_value(value, null) if np.isfinite(value) else np.nan
    return {metric: value, f"p_value_{metric}": p_value, f"null_mean_{metric}": null.mean(),
            f"null_std_{metric}": null.std()}


def _write_searchlight(run: PermuteRun, saved: dict) -> pd.DataFrame:
    rows = []
    others = [metric for metric in run.identity["scoring"] if metric != "accuracy"]
    jobs = _jobs(run)
    for key, parts in _by_job(run, saved).items():
        by_batch: dict[str, list] = {}
        for part in parts:
            by_batch.setdefault(part.key[3], []).append(part)
        job = jobs[key]
        # test_a, test_b: the categories tested as class_a and class_b (cross-decoding).
        row = {"subject": job.subject, "class_a": job.class_a, "class_b": job.class_b,
               "test_a": job.test_pair[0], "test_b": job.test_pair[1]}
        for metric in ("accuracy", *others):
            row.update(_searchlight_metric(run, job, by_batch, metric))
        rows.append(row)
    table = pd.DataFrame(rows)
    run.output.write_table("permutations/searchlight.csv", table)
    return table


def _searchlight_metric(run: PermuteRun, job: PairJob, by_batch: dict,
                        metric: str) -> dict:
    """One metric's map, null maps and p maps (uncorrected, max-statistic FWE) of a
    subject x pair; its columns of ``searchlight.csv`` (suffixed but for accuracy).
    Maps of a cross-decoding pair are named after both pairs (:func:`map_name`)."""
    key = job.key
    geometry = run.geometry[key[0]]
    pieces = [_observed_and_null(by_batch[batch], metric) for batch in sorted(by_batch)]
    observed = np.concatenate([piece[0] for piece in pieces])
    null = np.concatenate([piece[1] for piece in pieces], axis=1)
    run.output.write_array(null_name(*key, searchlight=True, metric=metric),
                           null.astype(np.float32))
    if np.isfinite(observed).all() and np.isfinite(null).all():
        uncorrected = permutation_p_values(observed, null)
        corrected = max_statistic_p_values(observed, null)
    else:  # an AUC map of folds that all test one class: no score, no p-value
        uncorrected = corrected = np.full(len(observed), np.nan)
    prefix = "" if metric == "accuracy" else f"{metric}_"
    for statistic, values in ((metric, observed), (f"{prefix}p", uncorrected),
                              (f"{prefix}p_fwe", corrected)):
        full = np.zeros(int(geometry.mask.sum()), dtype=np.float32)
        full[geometry.centres] = values
        run.output.write_image(map_name(job, statistic),
                               to_nifti(full, geometry.mask, geometry.affine))
    suffix = "" if metric == "accuracy" else f"_{metric}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN map: NaN columns
        return {**({"n_spheres": len(observed)} if metric == "accuracy" else {}),
                f"peak_{metric}": np.nanmax(observed) if len(observed) else np.nan,
                f"min_p_fwe{suffix}": np.nanmin(corrected) if len(corrected) else np.nan,
                f"n_spheres_p_fwe_05{suffix}": int((corrected < 0.05).sum()),
                **({"n_permutations": null.shape[0]} if metric == "accuracy" else {})}


def permute(store_path: str | Path, out: str | Path, client: Client, *, n_permutations: int,
            categories: Sequence[str] | None = None, cv: str = "logo", C: float = 1.0,
            seed: int = 0, solver: str = "batched", radius: float | None = None,
            overwrite: bool = False, progress: bool = True,
            permutations_per_task: int | None = None,
            scoring: str | Sequence[str] = "accuracy",
            class_weight: str | None = None, classifier: str = "svc",
            shrinkage: str | float | None = None,
            train_categories: Sequence[str] | None = None,
            test_categories: Sequence[str] | None = None) -> pd.DataFrame:
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
        ``summary.csv`` (its ``chance``: the permutation null mean) and, with
        several subjects, ``group.csv`` (a t-test across subjects of the
        accuracy minus that chance; a pair of one subject has no p-value). With
        ``radius`` (searchlight): accuracy maps and voxel-wise p-value maps,
        uncorrected (``_p``) and family-wise corrected with the maximum
        statistic over spheres (``_p_fwe``), in ``searchlight/``, and the
        null maps in ``permutations/null/``. Subject ids and labels are
        encoded in the names (:mod:`nidecode.outdir`).
    client : distributed.Client
    n_permutations : int
        Permutations per subject x pair, 1 to 10^6
        (:data:`nidecode._validation.MAX_PERMUTATIONS`). The p-value is
        ``(1 + #(null >= observed)) / (1 + n_permutations)``. The tasks are
        planned lazily and submitted :data:`TASKS_IN_FLIGHT` at a time; a
        :class:`~nidecode.errors.NidecodeWarning` says when the work is
        expected to exceed a core-hour.
    categories : sequence of str, optional
        Every pair among these that a subject has; default: each subject's pairs.
    cv : str
        ``"logo"``, ``"kfold:K"`` or ``"loso"``: leave one subject out
        (see :func:`nidecode.analyses.decode.decode`); the labels are permuted
        within each subject's runs and every permutation reuses one kernel
        between the scans (ROI: ``solver`` is unused; searchlight: each
        sphere batch runs every permutation, accuracy only); p-values per
        pair, subject ``all`` in the tables and map names.
    C : float
        SVM penalty.
    seed : int
        Seed of the permutations.
    solver : {"batched", "libsvm", "sklearn"}
        ``batched`` (default) and ``libsvm``: SVC's problem solved from a Gram
        matrix computed once per task and reused by every permutation and
        fold, on libsvm's path (ROI) or with the searchlight solver of that
        name (see :func:`nidecode.analyses.searchlight.searchlight`); ``sklearn``:
        ``SVC`` refitted.
    radius : float, optional
        Searchlight permutations with spheres of this radius (mm).
    overwrite : bool
        Replace results of other parameters in ``out``.
    progress : bool
        Progress bar of the permutations.
    permutations_per_task : int, optional
        Permutations per Dask task (default 50, or 5 for a searchlight of
        ``svc`` or ``logreg``; 50 for the closed forms of ``gnb`` and ``lda``).
    scoring : str or sequence of str
        Metrics among ``"accuracy"``, ``"balanced_accuracy"`` and ``"roc_auc"``
        (see :func:`nidecode.analyses.decode.decode`). Every permutation scores
        each. ROI: ``pvalues.csv`` gets ``<metric>, p_value_<metric>,
        null_mean_<metric>, null_std_<metric>`` per other metric than accuracy
        (its p-value against the null of that metric, saved as
        ``permutations/null/{subject}_{pair}_<metric>.npy``), and
        ``summary.csv`` / ``group.csv`` their columns as for ``decode``.
        Searchlight: per other metric its map and p maps
        (``searchlight/{subject}_{pair}_<metric>[_p|_p_fwe].nii.gz``, against
        that metric's null maps ``permutations/null/{subject}_{pair}_searchlight_<metric>.npy``)
        and ``peak_<metric>, min_p_fwe_<metric>, n_spheres_p_fwe_05_<metric>``
        columns in ``permutations/searchlight.csv``.
    class_weight : {None, "none", "balanced"}
        ``SVC``'s (and ``logreg``'s) class weights (see
        :func:`~nidecode.analyses.decode.decode`). ROI: ``"balanced"`` refits
        the estimator per permutation whatever the ``solver``; searchlight: the
        sphere solvers weigh the classes.
    classifier : {"svc", "lda", "gnb", "logreg"}
        See :func:`nidecode.analyses.decode.decode`; ROI permutations of
        classifiers other than ``svc`` refit the scikit-learn estimator, and
        their searchlight permutations use the sphere functions of
        :func:`nidecode.analyses.searchlight.searchlight`.
    shrinkage : {None, "auto"} or float in [0, 1]
        ``lda`` only.
    train_categories, test_categories : sequence of str, optional
        Cross-decoding, as in :func:`nidecode.analyses.decode.decode`
        (``cv="none"`` too): the training labels and the test labels are
        each permuted within their runs. With ``radius``: the maps of
        :func:`nidecode.analyses.searchlight.searchlight`'s cross design,
        named after both pairs, and ``test_a, test_b`` columns in
        ``permutations/searchlight.csv``; the null maps keep the training
        pair's name (``permutations/null/{subject}_{class_a}_vs_{class_b}_searchlight.npy``).

    Returns
    -------
    pandas.DataFrame
        The p-value table (ROI) or one row per subject x pair of the
        searchlight (spheres, peak accuracy, smallest corrected p-value).
    """
    run = prepare_permute(store_path, out, n_permutations=n_permutations,
                          categories=categories, cv=cv, C=C, seed=seed, solver=solver,
                          radius=radius, overwrite=overwrite,
                          permutations_per_task=permutations_per_task, scoring=scoring,
                          class_weight=class_weight, classifier=classifier,
                          shrinkage=shrinkage, train_categories=train_categories,
                          test_categories=test_categories)
    return execute_permute(run, client, progress=progress)
