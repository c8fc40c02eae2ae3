"""Searchlight on a Dask cluster: sphere batches per subject x pair, accuracy maps.

Spheres are defined as nilearn's ``SearchLight`` defines them (mask voxels
within ``radius`` mm of the centre, through the affine; see
:mod:`nidecode.spheres`). Every subject's centres are cut into batches of
``spheres_per_task // n_pairs`` centres; a task does one batch for every
pair: it reads from the store, once, only the voxel block its spheres need
and fits every sphere x fold of each pair at once with a batched solver
(:data:`nidecode.solvers.SPHERE_SOLVERS`; or one by one with scikit-learn's
``SVC``, to verify). Results are saved
per pair and batch.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dask.config
import nibabel as nib
import numpy as np
import pandas as pd
from distributed import Client

from nidecode._validation import (
    check_C,
    check_choice,
    check_class_weight,
    check_classifier_options,
    check_cross_cv,
    check_cv,
    check_per_task,
    check_radius,
    check_scoring,
    is_loso,
)
from nidecode.analyses._prepare import (
    Geometry,
    claim_output,
    plan_study,
    subject_geometry,
    warn_if_unstandardized,
)
from nidecode.analyses.decode import cross_design, plan_cross_study
from nidecode.analyses.plan import (
    SPHERES_PER_TASK,
    PairJob,
    category_list,
    cross_mapping,
    job_majority_rates,
    used_categories,
)
from nidecode.analyses.tasks import fold_mean, searchlight_spheres
from nidecode.cluster import describe, warm_up_solvers
from nidecode.errors import InputError, NidecodeWarning
from nidecode.outdir import (
    OutputDir,
    cross_group_map_name,
    cross_searchlight_name,
    group_map_name,
    searchlight_name,
    sphere_size_name,
)
from nidecode.results import SphereScores, to_nifti
from nidecode.run import phase_timings, run_tasks, task_key, versions
from nidecode.solvers import SPHERE_SOLVERS
from nidecode.spheres import batch_centres, batch_voxel_block
from nidecode.stats import sign_flip_test

SIGN_FLIPS = 10000


@dataclass(frozen=True)
class SphereBatch:
    """A run of consecutive sphere centres of one subject x pair: the unit saved.

    One task does the batches of every pair with the same subject and index,
    so each voxel block is read once for all pairs.
    """

    job: PairJob
    index: int
    centres: slice

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (*self.job.key, f"{self.index:06d}")


@dataclass(frozen=True)
class SearchlightRun:
    """A checked, planned searchlight whose output directory is claimed."""

    store_path: str
    output: OutputDir
    checksums: dict[str, str]
    geometry: dict[str, Geometry]
    batches: list[SphereBatch]
    identity: dict
    started: float
    # Chance of each subject x pair: the fold mean of its majority-class rates.
    chance: dict[tuple[str, str, str], float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the plan leaves out, to print
    per_fold: bool = False  # also write each metric's fold scores as 4D images


def prepare_searchlight(store_path: str | Path, out: str | Path, *, radius: float,
                        categories: Sequence[str] | None = None,
                        process_mask: str | Path | None = None, cv: str = "logo",
                        C: float = 1.0, solver: str = "batched", overwrite: bool = False,
                        spheres_per_task: int | None = None,
                        scoring: str | Sequence[str] = "accuracy",
                        per_fold: bool = False, classifier: str = "svc",
                        shrinkage: str | float | None = None,
                        class_weight: str | None = None,
                        train_categories: Sequence[str] | None = None,
                        test_categories: Sequence[str] | None = None) -> SearchlightRun:
    """Check the inputs, build the spheres, plan the batches, claim the output.

    Parameters are those of :func:`searchlight`; every problem is raised
    here as :class:`~nidecode.errors.InputError`, before any cluster starts.
    ``cv="loso"``: :mod:`nidecode.analyses.loso_searchlight` plans it.
    """
    if is_loso(cv):
        from nidecode.analyses.loso_searchlight import prepare_loso_searchlight

        if train_categories is not None or test_categories is not None:
            raise InputError("--train-categories: a searchlight with --cv loso does not "
                             "cross-decode yet; drop --train-categories and --test-categories "
                             "(decode --cv loso does)")
        return prepare_loso_searchlight(
            store_path, out, radius=radius, categories=categories, process_mask=process_mask,
            C=C, solver=solver, overwrite=overwrite, spheres_per_task=spheres_per_task,
            scoring=scoring, classifier=classifier, shrinkage=shrinkage,
            class_weight=class_weight, per_fold=per_fold)
    started = time.perf_counter()
    cross = train_categories is not None or test_categories is not None
    cv = check_cross_cv(cv, "searchlight") if cross else check_cv(cv, "searchlight")
    C = check_C(C, "searchlight")
    radius = check_radius(radius, "searchlight")
    solver = check_choice(solver, "solver", "searchlight", tuple(SPHERE_SOLVERS))
    scoring = check_scoring(scoring, "searchlight")
    class_weight = check_class_weight(class_weight, "searchlight")
    classifier, shrinkage = check_classifier_options(classifier, shrinkage, class_weight,
                                                     "searchlight", solver)
    spheres_per_task = check_per_task(spheres_per_task, "spheres_per_task", "searchlight")
    if spheres_per_task is None:
        spheres_per_task = int(dask.config.get("nidecode.spheres-per-task", SPHERES_PER_TASK))
    mapping = cross_mapping(category_list(train_categories), category_list(test_categories),
                            cv, categories)
    study = (plan_study(store_path, cv, categories) if mapping is None
             else plan_cross_study(store_path, cv, mapping))
    # Recorded only for cross-decoding: ordinary runs keep the identity they had.
    design = {} if mapping is None else {"train_categories": list(mapping),
                                         "test_categories": list(mapping.values())}
    designs, jobs = study.designs, study.jobs
    chance = {job.key: float(job_majority_rates(designs[job.subject], job, cv).mean())
              for job in jobs}
    if classifier == "svc":  # the warning is about the SVM's C
        warn_if_unstandardized(study, C)
    geometry = {subject: subject_geometry(study.store_path, subject, radius, process_mask,
                                          design.checksum)
                for subject, design in designs.items()}
    pairs = Counter(job.subject for job in jobs)
    batches = [SphereBatch(job, index, centres) for job in jobs
               for index, centres in enumerate(batch_centres(
                   len(geometry[job.subject].centres),
                   max(1, spheres_per_task // pairs[job.subject])))]
    identity, output = claim_output(
        out, study, "searchlight", overwrite=overwrite,
        categories=used_categories(categories, mapping), cv=cv, C=C,
        radius=radius, solver=solver, spheres_per_task=spheres_per_task,
        process_mask=_mask_digest(geometry) if process_mask else None, scoring=list(scoring),
        classifier=classifier, shrinkage=shrinkage, class_weight=class_weight, **design)
    return SearchlightRun(study.store_path, output, identity["subjects"],
                          geometry, batches, identity, started, chance, study.notes,
                          bool(per_fold))


def _mask_digest(geometry: dict[str, Geometry]) -> str:
    digest = hashlib.sha1()
    for subject in sorted(geometry):
        digest.update(geometry[subject].centres.tobytes())
    return digest.hexdigest()


def execute_searchlight(run: SearchlightRun, client: Client, *,
                        progress: bool = True) -> pd.DataFrame:
    """Compute the sphere batches the output lacks, then write the maps.

    Returns
    -------
    pandas.DataFrame
        One row per subject x pair: spheres, mean and peak accuracy, and the
        peak's world coordinates (mm).
    """
    if not isinstance(run, SearchlightRun):  # --cv loso
        from nidecode.analyses.loso_searchlight import execute_loso_searchlight

        return execute_loso_searchlight(run, client, progress=progress)
    identity = run.identity
    # Compile the solver on the workers while the first tasks are planned and read.
    warm_up_solvers(client, identity["classifier"], identity["solver"])
    saved = run.output.load_parts(SphereScores)
    todo = [batch for batch in run.batches if batch.key not in saved]
    submitted = time.perf_counter()

    def submit(group: list[SphereBatch]):
        # The task gets only the voxel block its spheres need, re-indexed, and
        # does every pair of it.
        first = group[0]
        voxels, local_spheres = batch_voxel_block(run.geometry[first.job.subject].spheres,
                                                  first.centres)
        return client.submit(searchlight_spheres, run.store_path,
                             [batch.key for batch in group], run.checksums[first.job.subject],
                             voxels, local_spheres, identity["cv"], identity["C"],
                             identity["solver"], _metrics(run), identity["classifier"],
                             identity["shrinkage"], identity["class_weight"],
                             test_pairs=[_test_pair(batch.job) for batch in group],
                             key=task_key("searchlight", identity, group))

    groups: dict[tuple[str, int], list[SphereBatch]] = {}
    for batch in todo:
        groups.setdefault((batch.job.subject, batch.index), []).append(batch)
    total = sum(_size(batch) for batch in run.batches)
    run_tasks(client, [submit(group) for group in groups.values()],
              on_result=lambda results: [run.output.save_part(scores) for scores in results],
              count=lambda results: sum(len(scores.accuracy) for scores in results),
              total=total, initial=total - sum(_size(batch) for batch in todo),
              progress=progress, unit="sphere")
    computed = time.perf_counter()

    saved = run.output.load_parts(SphereScores)
    table = _write_maps(run, saved)
    run.output.write_manifest({
        "status": "complete", "identity": identity, "versions": versions(),
        "counts": {"subjects": len(run.geometry), "batches": len(run.batches),
                   "tasks": len(groups),
                   "spheres": total, "spheres_computed": sum(_size(b) for b in todo),
                   "fits": total * _n_folds(run)},
        "timings": phase_timings(run.started, submitted, computed),
        "cluster": describe(client),
        "background": run.output.write_background(
            run.store_path, next(iter(run.geometry)), next(iter(run.checksums.values()))),
        "notes": run.notes,
        **({"design": cross_design(_jobs(run))} if "train_categories" in identity else {}),
    })
    return table


def _test_pair(job: PairJob) -> tuple[str, str] | None:
    """A job's test pair for the tasks: None for ordinary decoding."""
    return job.test_pair if job.is_cross else None


def _jobs(run: SearchlightRun) -> list[PairJob]:
    return list({batch.job.key: batch.job for batch in run.batches}.values())


def map_name(job: PairJob, statistic: str = "") -> str:
    """A subject x pair's map (:func:`nidecode.outdir.searchlight_name`); a cross-decoding
    pair's is named after its training and test pairs
    (:func:`nidecode.outdir.cross_searchlight_name`)."""
    if job.is_cross:
        return cross_searchlight_name(*job.key, *job.test_pair, statistic)
    return searchlight_name(*job.key, statistic)


def group_name(job: PairJob, statistic: str, metric: str = "accuracy") -> str:
    """A pair's map across subjects (:func:`nidecode.outdir.group_map_name`), named after
    both pairs for cross-decoding."""
    if job.is_cross:
        return cross_group_map_name(job.class_a, job.class_b, *job.test_pair, statistic,
                                    metric)
    return group_map_name(job.class_a, job.class_b, statistic, metric)


def _size(batch: SphereBatch) -> int:
    return batch.centres.stop - batch.centres.start


def _n_folds(run: SearchlightRun) -> int:
    return run.batches[0].job.n_folds if run.batches else 0


def _metrics(run: SearchlightRun) -> list[str]:
    """The metrics mapped: accuracy (always: the table's peak is an accuracy) and
    the others chosen, in the order of :data:`nidecode._validation.METRICS`."""
    chosen = run.identity.get("scoring", ["accuracy"])
    return ["accuracy"] + [metric for metric in chosen if metric != "accuracy"]


def _write_maps(run: SearchlightRun, saved: dict) -> pd.DataFrame:
    rows, maps = [], {}
    by_pair: dict[tuple[str, str, str], list[SphereBatch]] = {}
    for batch in run.batches:
        by_pair.setdefault(batch.job.key, []).append(batch)
    for (subject, class_a, class_b), batches in by_pair.items():
        job = batches[0].job
        geometry = run.geometry[subject]
        means = {}
        for metric in _metrics(run):
            folds = np.concatenate([saved[batch.key].metric(metric) for batch in batches])
            # Accuracy as before (no fold is ever empty); others skip NaN (AUC) folds.
            means[metric] = folds.mean(axis=1) if metric == "accuracy" else fold_mean(folds)
            _note_empty_folds(run, subject, class_a, class_b, metric, folds)
            image = _write_metric(run, geometry, job, metric, means[metric], folds)
            chance = run.chance[(subject, class_a, class_b)] if metric == "accuracy" else 0.5
            maps.setdefault((class_a, class_b, metric), []).append((subject, image, chance))
        accuracy = np.concatenate([saved[batch.key].accuracy for batch in batches])
        peak = int(np.argmax(means["accuracy"]))
        ijk = np.argwhere(geometry.mask)[geometry.centres[peak]]
        # test_a, test_b: the categories tested as class_a and class_b (cross-decoding).
        rows.append({"subject": subject, "class_a": class_a, "class_b": class_b,
                     "test_a": job.test_pair[0], "test_b": job.test_pair[1],
                     "n_spheres": len(accuracy), "mean_accuracy": accuracy.mean(),
                     **{f"mean_{metric}": _nan_mean(means[metric])
                        for metric in _metrics(run)[1:]},
                     "chance": run.chance[(subject, class_a, class_b)],
                     "peak_accuracy": means["accuracy"][peak],
                     **dict(zip(("peak_x_mm", "peak_y_mm", "peak_z_mm"),
                                nib.affines.apply_affine(geometry.affine, ijk), strict=True))})
    for subject, geometry in run.geometry.items():
        sizes = np.zeros(int(geometry.mask.sum()), dtype=np.float32)
        sizes[geometry.centres] = np.diff(geometry.spheres.indptr)
        run.output.write_image(sphere_size_name(subject),
                               to_nifti(sizes, geometry.mask, geometry.affine))
    jobs = {(job.class_a, job.class_b): job for job in _jobs(run)}
    for (class_a, class_b, metric), subject_maps in maps.items():
        images = [image for _, image, _ in subject_maps]
        if len(images) > 1 and _same_grid(images):
            _write_group_maps(run, jobs[(class_a, class_b)], subject_maps, metric)
    table = pd.DataFrame(rows)
    run.output.write_table("searchlight.csv", table)
    return table


def _nan_mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else np.nan


def _write_metric(run: SearchlightRun, geometry: Geometry, job: PairJob,
                  metric: str, means: np.ndarray, folds: np.ndarray) -> nib.Nifti1Image:
    """A metric's map of fold means, and with ``per_fold`` its 4D fold image."""
    values = np.zeros(int(geometry.mask.sum()), dtype=np.float32)
    values[geometry.centres] = means
    image = to_nifti(values, geometry.mask, geometry.affine)
    run.output.write_image(map_name(job, metric), image)
    if run.per_fold:
        volumes = np.zeros((len(values), folds.shape[1]), dtype=np.float32)
        volumes[geometry.centres] = folds
        run.output.write_image(map_name(job, f"{metric}_folds"),
                               to_nifti(volumes, geometry.mask, geometry.affine))
    return image


def _note_empty_folds(run: SearchlightRun, subject: str, class_a: str, class_b: str,
                      metric: str, folds: np.ndarray) -> None:
    """Warn (and note in run.json) when folds have no score (AUC of one-class tests)."""
    empty = np.isnan(folds).all(axis=0) if len(folds) else np.zeros(0, bool)
    if not empty.any():
        return
    note = (f"{metric} of subject {subject!r}, {class_a!r} vs {class_b!r}: "
            f"{int(empty.sum())} of {len(empty)} folds test one class only and have no score; "
            + ("the map averages the others" if not empty.all() else "the map is NaN"))
    run.notes.append(note)
    warnings.warn(note, NidecodeWarning, stacklevel=2)


def _write_group_maps(run: SearchlightRun, job: PairJob,
                      subject_maps: list[tuple[str, nib.Nifti1Image, float]],
                      metric: str = "accuracy") -> None:
    """Mean map and a second-level sign-flip test across subjects on one grid.

    At the voxels that are sphere centres in every subject (with a score in
    every subject): the one-sample t of (score - chance), each subject's own
    chance of the pair for accuracy and 0.5 for balanced accuracy and AUC,
    and its family-wise corrected p-value (maximum statistic over voxels),
    as nilearn's ``non_parametric_inference`` does.
    """
    affine = subject_maps[0][1].affine
    stack = np.stack([image.get_fdata() for _, image, _ in subject_maps])
    chance = np.array([level for _, _, level in subject_maps])
    run.output.write_image(group_name(job, "mean", metric),
                           nib.Nifti1Image(stack.mean(axis=0).astype(np.float32), affine))
    common = np.logical_and.reduce([_centre_volume(run.geometry[subject])
                                    for subject, _, _ in subject_maps])
    common &= np.isfinite(stack).all(axis=0)
    if not common.any():  # e.g. an AUC map without a scored fold: nothing to test
        return
    t_map, p_fwe = sign_flip_test(stack[:, common], chance=chance,
                                  n_permutations=SIGN_FLIPS, rng=0)
    for name, values in (("t", t_map), ("p_fwe", p_fwe)):
        volume = np.zeros(common.shape, dtype=np.float32)
        volume[common] = values
        run.output.write_image(group_name(job, name, metric),
                               nib.Nifti1Image(volume, affine))


def _centre_volume(geometry: Geometry) -> np.ndarray:
    centres = np.zeros(int(geometry.mask.sum()), dtype=bool)
    centres[geometry.centres] = True
    volume = np.zeros(geometry.mask.shape, dtype=bool)
    volume[geometry.mask] = centres
    return volume


def _same_grid(images: list[nib.Nifti1Image]) -> bool:
    first = images[0]
    return all(image.shape == first.shape and np.allclose(image.affine, first.affine)
               for image in images)


def searchlight(store_path: str | Path, out: str | Path, client: Client, *, radius: float,
                categories: Sequence[str] | None = None,
                process_mask: str | Path | None = None, cv: str = "logo", C: float = 1.0,
                solver: str = "batched", overwrite: bool = False, progress: bool = True,
                spheres_per_task: int | None = None, scoring: str | Sequence[str] = "accuracy",
                per_fold: bool = False, classifier: str = "svc",
                shrinkage: str | float | None = None,
                class_weight: str | None = None,
                train_categories: Sequence[str] | None = None,
                test_categories: Sequence[str] | None = None) -> pd.DataFrame:
    """Searchlight accuracy maps for every subject x category pair of a store.

    Parameters
    ----------
    store_path : str or Path
        The Zarr store; a path or URL that every worker can read.
    out : str or Path
        Output directory: ``searchlight/{subject}_{class_a}_vs_{class_b}.nii.gz``
        (mean cross-validated accuracy of the sphere centred at each voxel,
        zero elsewhere), ``searchlight/mean_{class_a}_vs_{class_b}.nii.gz``
        and ``searchlight/group_{class_a}_vs_{class_b}_t.nii.gz`` / ``_p_fwe.nii.gz``
        (across subjects on one grid: mean, and a second-level sign-flip test
        of accuracy minus each subject's chance, family-wise corrected; pairs
        of one subject have none), ``searchlight/{subject}_sphere_size.nii.gz``
        (voxels per sphere), ``searchlight.csv`` (with ``chance``: the fold
        mean of the share of the larger class among the test scans) and
        ``run.json``. Subject ids and labels are encoded in the names
        (:mod:`nidecode.outdir`).
    client : distributed.Client
    radius : float
        Sphere radius in millimetres.
    categories : sequence of str, optional
        Every pair among these that a subject has; default: each subject's pairs.
    process_mask : str or Path, optional
        NIfTI image on the subjects' grid: the sphere centres (default: the
        whole stored mask). Spheres still take voxels from the whole mask.
    cv : str
        ``"logo"`` or ``"kfold:K"``; cross-decoding also ``"none"`` (train on every
        training scan, test on every test scan).
    C : float
        SVM penalty, as ``SVC(kernel="linear", C=C)``.
    solver : {"batched", "libsvm", "sklearn"}
        ``batched``: every fold solved exactly from the sphere's all-scans
        solution, refitted on libsvm's path where a test decision is a near
        tie (the same sphere accuracy as SVC on 98.9 % of the Haxby slice's
        spheres); ``libsvm``: libsvm's path for every fit (SVC's iterates;
        about 6x slower); ``sklearn``: SVC one fit at a time (slow, for
        verification). Other classifiers: ``batched`` is their closed form
        where there is one (``lda``, ``gnb``; else scikit-learn's estimator
        one sphere at a time, as for ``logreg``), ``sklearn`` scikit-learn's
        estimator one sphere at a time; ``libsvm`` is refused.
    overwrite : bool
        Replace results of other parameters in ``out``.
    progress : bool
        Progress bar of the spheres.
    spheres_per_task : int, optional
        Spheres x pairs per Dask task (default: ``nidecode.spheres-per-task``,
        2000): a task does every pair of ``spheres_per_task // n_pairs``
        centres.
    scoring : str or sequence of str
        Metrics mapped, among ``accuracy``, ``balanced_accuracy`` and
        ``roc_auc`` (a name, comma-separated names or a list). The accuracy
        maps are always written, under the names above; each other metric gets
        ``searchlight/{subject}_{pair}_{metric}.nii.gz`` (per fold as
        :func:`nidecode.stats.fold_metrics` scores it, from the test scans'
        decision values, then averaged over the folds that have a score: an
        AUC fold whose test scans hold one class has none, with a warning; a
        sphere without any is NaN), ``mean_{pair}_{metric}`` and
        ``group_{pair}_{metric}_t`` / ``_p_fwe`` (chance 0.5), and a
        ``mean_{metric}`` column in ``searchlight.csv``. Part of the run's identity.
    per_fold : bool
        Also write ``searchlight/{subject}_{pair}_{metric}_folds.nii.gz`` for
        each metric (accuracy too): a 4D image, one volume per fold in fold order.
    classifier : {"svc", "lda", "gnb", "logreg"}
        The classifier of every sphere (see :func:`nidecode.analyses.decode.decode`).
    shrinkage : {None, "auto"} or float in [0, 1]
        ``lda`` only (``None``: ``"auto"``).
    class_weight : {None, "none", "balanced"}
        ``svc`` and ``logreg``: ``"balanced"`` scales each class's penalty by
        ``n_samples / (2 * n_class_samples)`` of the training fold, as
        scikit-learn does (every solver; ``batched`` agrees with SVC as without
        weights). Part of the run's identity.
    train_categories, test_categories : sequence of str, optional
        Cross-decoding (not with ``categories``), as in
        :func:`nidecode.analyses.decode.decode`: every pair of the training
        categories is trained on their scans and tested on the scans of the
        test categories at the same positions (``test_categories[i]`` read as
        ``train_categories[i]``); a fold trains on the training scans of the
        other runs (``cv="logo"``) and tests on the held-out run's test scans
        (a run without test scans is no fold: the notes say so). Every map is
        named after both pairs,
        ``searchlight/{subject}_{a1}_vs_{b1}_on_{a2}_vs_{b2}[_{metric}].nii.gz``
        (:func:`nidecode.outdir.cross_searchlight_name`), and so are the group
        maps; ``searchlight.csv``'s ``test_a, test_b`` name the test pair
        (the training pair for ordinary searchlights); ``run.json`` records the
        design.

    Returns
    -------
    pandas.DataFrame
        One row per subject x pair with the number of spheres, the mean and
        peak accuracy and the peak's coordinates in mm.
    """
    run = prepare_searchlight(store_path, out, radius=radius, categories=categories,
                              process_mask=process_mask, cv=cv, C=C, solver=solver,
                              overwrite=overwrite, spheres_per_task=spheres_per_task,
                              scoring=scoring, per_fold=per_fold, classifier=classifier,
                              shrinkage=shrinkage, class_weight=class_weight,
                              train_categories=train_categories,
                              test_categories=test_categories)
    return execute_searchlight(run, client, progress=progress)
