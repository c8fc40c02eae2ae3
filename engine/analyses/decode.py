"""Decoding on a Dask cluster: plan, submit, save results as they arrive, assemble.

A run resumes by default: results already saved in the output directory by
an earlier run with the same parameters are not computed again.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dask
import numpy as np
import pandas as pd
from distributed import Client

from nidecode import store
from nidecode._validation import (
    check_C,
    check_class_weight,
    check_classifier_options,
    check_cross_cv,
    check_cv,
    check_per_task,
    check_scoring,
)
from nidecode.analyses._prepare import Study, claim_output, plan_study
from nidecode.analyses.loso import LosoRun, execute_loso_decode, prepare_loso
from nidecode.analyses.plan import (
    PairJob,
    batch_jobs,
    category_list,
    cross_mapping,
    cross_notes,
    job_majority_rates,
    plan_cross,
    used_categories,
)
from nidecode.analyses.tasks import decode_pairs
from nidecode.cluster import describe
from nidecode.cv import is_loso
from nidecode.errors import NidecodeWarning
from nidecode.outdir import OutputDir, confusion_name, patterns_name, weights_name
from nidecode.results import (
    PairResult,
    group_table,
    multiclass_balanced_accuracy,
    multiclass_predictions,
    pattern_map,
    scores_table,
    summary_table,
    weight_map,
)
from nidecode.run import normalise_store_path, phase_timings, run_tasks, task_key, versions
from nidecode.stats import confusion_matrix_table

# Whole subjects per task from this many subjects per worker thread on.
_TASKS_PER_THREAD = 3
# Threads writing result files: the writes mostly wait on the file system
# (the maps' compression and renames release the GIL).
_WRITER_THREADS = 4


@dataclass(frozen=True)
class DecodeRun:
    """A checked, planned decode whose output directory is claimed: ready to execute."""

    store_path: str
    output: OutputDir
    designs: dict[str, store.Design]
    jobs: list[PairJob]
    identity: dict
    started: float
    notes: list[str] = field(default_factory=list)  # what the plan leaves out, to print


def prepare_decode(store_path: str | Path, out: str | Path, *,
                   categories: Sequence[str] | None = None, cv: str = "logo", C: float = 1.0,
                   scoring: str | Sequence[str] = "accuracy", class_weight: str | None = None,
                   overwrite: bool = False, classifier: str = "svc",
                   shrinkage: str | float | None = None,
                   train_categories: Sequence[str] | None = None,
                   test_categories: Sequence[str] | None = None) -> DecodeRun | LosoRun:
    """Check the inputs, plan the jobs and claim the output directory (no cluster needed).

    Parameters are those of :func:`decode`. Every problem with the store,
    the categories, the parameters or the output directory is raised here,
    as :class:`~nidecode.errors.InputError` (a parameter out of range as its
    subclass :class:`~nidecode.errors.ParameterError`), before any cluster starts.
    ``cv="loso"`` plans a :class:`~nidecode.analyses.loso.LosoRun`.
    """
    if is_loso(cv):
        return prepare_loso(store_path, out, "decode", categories=categories, C=C,
                            scoring=scoring, class_weight=class_weight, overwrite=overwrite,
                            classifier=classifier, shrinkage=shrinkage,
                            train_categories=train_categories, test_categories=test_categories)
    started = time.perf_counter()
    cross = train_categories is not None or test_categories is not None
    cv = check_cross_cv(cv, "decode") if cross else check_cv(cv, "decode")
    C = check_C(C, "decode")
    scoring = check_scoring(scoring, "decode")
    class_weight = check_class_weight(class_weight, "decode")
    classifier, shrinkage = check_classifier_options(classifier, shrinkage, class_weight,
                                                     "decode")
    mapping = cross_mapping(category_list(train_categories), category_list(test_categories),
                            cv, categories)
    study = plan_study(store_path, cv, categories) if mapping is None else plan_cross_study(
        store_path, cv, mapping)
    # Recorded only for cross-decoding: ordinary runs keep the identity they had.
    design = {} if mapping is None else {"train_categories": list(mapping),
                                         "test_categories": list(mapping.values())}
    # The scoring and class weights are part of the identity: a run with other
    # ones is not resumed from these results.
    identity, output = claim_output(out, study, "decode", overwrite=overwrite,
                                    categories=used_categories(categories, mapping), cv=cv,
                                    C=C, scoring=list(scoring),
                                    class_weight=class_weight, classifier=classifier,
                                    shrinkage=shrinkage, **design)
    return DecodeRun(study.store_path, output, study.designs, study.jobs, identity, started,
                     study.notes)


def plan_cross_study(store_path: str | Path, cv: str, mapping: dict[str, str]) -> Study:
    """The designs and jobs of a cross-decoding run, with its notes (runs that are no fold)."""
    store_path = normalise_store_path(store_path)
    designs = store.read_designs(store_path)
    jobs = plan_cross(list(designs.values()), cv, mapping)
    return Study(store_path, designs, jobs,
                 cross_notes(list(designs.values()), jobs, cv, mapping))


def cross_design(jobs: Sequence[PairJob]) -> list[dict]:
    """The training and test pair of each planned pair (for run.json and the report)."""
    pairs = {(job.class_a, job.class_b): job.test_pair for job in jobs}
    return [{"train": list(train), "test": list(test)} for train, test in sorted(pairs.items())]


def execute_decode(run: DecodeRun | LosoRun, client: Client, *, progress: bool = True,
                   fits_per_task: int | None = None) -> pd.DataFrame:
    """Compute what the output directory lacks, then write the final files.

    Returns
    -------
    pandas.DataFrame
        The summary table (see :func:`decode`).
    """
    if isinstance(run, LosoRun):
        return execute_loso_decode(run, client, progress=progress)
    saved = run.output.load_parts(PairResult)
    todo = [job for job in run.jobs if job.key not in saved]
    cv, C = run.identity["cv"], run.identity["C"]
    submitted = time.perf_counter()

    def submit(batch: tuple[PairJob, ...]):
        checksum = run.designs[batch[0].subject].checksum
        return client.submit(decode_pairs, run.store_path, batch, checksum, cv, C,
                             run.identity["class_weight"], run.identity["classifier"],
                             run.identity["shrinkage"],
                             key=task_key("decode", run.identity, batch))

    n_fits = sum(job.n_folds for job in run.jobs)
    done_fits = n_fits - sum(job.n_folds for job in todo)
    batches = batch_jobs(todo, fits_per_task if fits_per_task is not None
                         else _subject_tasks(todo, sum(client.nthreads().values())))

    # Each result is saved, and its maps written, from threads while the next
    # ones compute (the maps of results saved by an earlier run first). Leaving
    # the pool waits for the writes of every result handed over, even on an error.
    geometry = {subject: store.read_geometry(run.store_path, subject,
                                             checksum=run.designs[subject].checksum)
                for subject in dict.fromkeys(job.subject for job in run.jobs)}
    run.output.reserve(name(*job.key) for job in run.jobs for name in (weights_name,
                                                                        patterns_name))
    with ThreadPoolExecutor(_WRITER_THREADS) as writers:
        # The chance levels depend on the plan alone: computed while the fits run.
        chance = writers.submit(_chance_levels, run)
        writing = [writers.submit(_write_maps, run.output, saved[job.key],
                                  geometry[job.subject])
                   for job in run.jobs if job.key in saved]

        def save(results: list[PairResult]) -> None:
            for result in results:
                writing.append(writers.submit(run.output.save_part, result))
                writing.append(writers.submit(_write_maps, run.output, result,
                                              geometry[result.subject]))
                saved[result.key] = result

        run_tasks(client, [submit(batch) for batch in batches], on_result=save,
                  count=lambda results: sum(len(result.folds) for result in results),
                  total=n_fits, initial=done_fits, progress=progress, unit="fit")
        for done in writing:
            done.result()  # an error writing a file is raised here
    computed = time.perf_counter()

    summary = _write_decode_outputs(run, [saved[job.key] for job in run.jobs], chance.result())
    run.output.write_manifest({
        "status": "complete", "identity": run.identity, "versions": versions(),
        "parameters": {**run.identity, "fits_per_task": fits_per_task},
        "counts": {"subjects": len(run.designs), "pairs": len(run.jobs), "fits": n_fits,
                   "fits_computed": n_fits - done_fits, "tasks": len(batches)},
        "timings": phase_timings(run.started, submitted, computed),
        "cluster": describe(client),
        "background": run.output.write_background(
            run.store_path, run.jobs[0].subject, run.designs[run.jobs[0].subject].checksum),
        "notes": run.notes,
        **({"design": cross_design(run.jobs)} if "train_categories" in run.identity else {}),
    })
    return summary


def decode(store_path: str | Path, out: str | Path, client: Client, *,
           categories: Sequence[str] | None = None, cv: str = "logo", C: float = 1.0,
           scoring: str | Sequence[str] = "accuracy", class_weight: str | None = None,
           overwrite: bool = False, progress: bool = True,
           fits_per_task: int | None = None, classifier: str = "svc",
           shrinkage: str | float | None = None,
           train_categories: Sequence[str] | None = None,
           test_categories: Sequence[str] | None = None) -> pd.DataFrame:
    """Cross-validate linear classifiers for every subject x category pair of a store.

    Parameters
    ----------
    store_path : str or Path
        The Zarr store written by :func:`nidecode.ingest.ingest`; a path or URL
        that every worker can read.
    out : str or Path
        Output directory: ``scores.csv``, ``summary.csv``, ``group.csv``,
        ``weights/{subject}_{class_a}_vs_{class_b}.nii.gz`` (the fold-mean
        weights of the classifier, see :mod:`nidecode.solvers.estimators`;
        the strings encoded by :func:`nidecode.outdir.weights_name`), their activation patterns
        ``patterns/{subject}_{class_a}_vs_{class_b}.nii.gz`` (``Cov(X) w /
        Var(X w)`` on the pair's scans, Haufe et al. 2014; same sign as the
        weights: positive favours ``class_b``) and ``run.json``.
        Results already saved there by a run of the same parameters are
        reused (resume).
        ``scores.csv`` has a ``chance`` per fold: the share of the larger
        class among the fold's test scans (0.5 when balanced);
        ``summary.csv`` its fold mean per subject x pair, and ``group.csv``
        (several subjects) a one-sided t-test per pair of each subject's
        accuracy minus its chance (``chance`` there: the mean over subjects;
        a pair of one subject has no ``t`` and ``p_value``).
    client : distributed.Client
        Where the fits run (see :func:`nidecode.cluster.get_client`).
    categories : sequence of str, optional
        Decode every pair among these categories that a subject has (a
        subject lacking one is decoded on the others' pairs, see
        :func:`nidecode.analyses.plan.plan_notes`); default: each subject's pairs.
    cv : str
        ``"logo"`` (leave one run out), ``"kfold:K"``, or ``"loso"``: leave one
        subject out (:mod:`nidecode.analyses.loso`; the subjects must share grid,
        affine and mask). Each pair is trained on its scans of all subjects
        but one and tested on the held-out subject's; ``scores.csv`` has one
        row per held-out subject (``subject`` ``all``, ``fold`` that
        subject's id), ``summary.csv`` one per pair, and the weights and
        pattern are those of the fit on every subject
        (``weights/all_{class_a}_vs_{class_b}.nii.gz``). ``svc`` only.
    C : float
        SVM penalty of ``SVC(kernel="linear", C=C)`` (and ``LogisticRegression(C=C)``'s;
        unused by ``lda`` and ``gnb``).
    scoring : str or sequence of str
        Among ``"accuracy"``, ``"balanced_accuracy"`` and ``"roc_auc"`` (a
        name, comma-separated names or a sequence): each is computed per fold
        as scikit-learn's scorer of that name (``roc_auc`` from the decision
        values; empty for a fold whose test scans hold one class, with a
        :class:`~nidecode.errors.NidecodeWarning`). ``scores.csv`` gets a
        column per metric (``accuracy`` always), ``summary.csv``
        ``mean_<metric>`` and ``std_<metric>``, ``group.csv`` ``mean_<metric>,
        chance_<metric>, t_<metric>, p_value_<metric>`` (chance 0.5) after
        the accuracy's columns.
    class_weight : {None, "none", "balanced"}
        ``SVC(kernel="linear", class_weight=...)``: ``"balanced"`` scales the
        penalty of each class by ``n_samples / (2 * n_class_samples)`` of the
        training fold.
    overwrite : bool
        Replace the results of a run with other parameters in ``out``.
    progress : bool
        Show a progress bar of the fits.
    fits_per_task : int
        About how many SVM fits one Dask task does (default: the config's
        ``nidecode.fits-per-task``, else one task per subject when there are
        at least 3 subjects per worker thread, else 96).
    classifier : {"svc", "lda", "gnb", "logreg"}
        ``SVC(kernel="linear", C=C)`` (default),
        ``LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage)``,
        ``GaussianNB()`` or ``LogisticRegression(C=C)``
        (:func:`nidecode.solvers.estimators.make_estimator`). ``roc_auc``
        ranks ``decision_function`` (``gnb``: the log-probability ratio).
        ``class_weight="balanced"`` is refused with ``lda`` and ``gnb``.
    shrinkage : {None, "auto"} or float in [0, 1]
        ``lda`` only (``None``: ``"auto"``, Ledoit-Wolf).
    train_categories, test_categories : sequence of str, optional
        Cross-decoding (both or neither; not with ``categories``): every pair
        of ``train_categories`` is trained on its scans and tested on the
        scans of the test categories in the same positions, read as the
        training classes (``test_categories[i]`` as ``train_categories[i]``).
        A fold trains on the training scans of the other runs (``cv="logo"``)
        or parts (``"kfold:K"``) and tests on the held-out run's test scans; a
        run without test scans is no fold (a note says so). ``cv="none"``: one
        fold, every training scan against every test scan (the lists must be
        disjoint). ``scores.csv`` names the pair by its training categories
        (``class_a, class_b``, also the weight maps' names) and the categories
        tested as them (``test_a, test_b``); ``run.json`` records the design.
        No multiclass outputs.

    Returns
    -------
    pandas.DataFrame
        The summary table: mean and std of the accuracy per subject and pair.

    Examples
    --------
    >>> from nidecode.cluster import get_client
    >>> with get_client(workers=2) as client:  # doctest: +SKIP
    ...     summary = decode("study.zarr", "results", client, categories=["face", "cat"])
    """
    fits_per_task = check_per_task(fits_per_task, "fits_per_task", "decode")
    run = prepare_decode(store_path, out, categories=categories, cv=cv, C=C, scoring=scoring,
                         class_weight=class_weight, overwrite=overwrite,
                         classifier=classifier, shrinkage=shrinkage,
                         train_categories=train_categories, test_categories=test_categories)
    return execute_decode(run, client, progress=progress, fits_per_task=fits_per_task)


def _subject_tasks(jobs: Sequence[PairJob], n_threads: int) -> int | None:
    """A task size of whole subjects when they are enough to keep the workers busy.

    With at least :data:`_TASKS_PER_THREAD` subjects per worker thread, one
    task per subject: each subject is read, and its kernel computed, once,
    and the scheduler has fewer tasks to place. Otherwise (or when the config
    sets ``nidecode.fits-per-task``, or the cluster has no worker yet, as an
    adaptive one may) ``None``: the configured or default size.
    """
    fits: dict[str, int] = {}
    for job in jobs:
        fits[job.subject] = fits.get(job.subject, 0) + job.n_folds
    if (dask.config.get("nidecode.fits-per-task", None) is not None or n_threads < 1
            or len(fits) < _TASKS_PER_THREAD * n_threads):
        return None
    return max(fits.values())


def _chance_levels(run: DecodeRun) -> dict[tuple[str, str, str], np.ndarray]:
    """Each job's chance per fold (:func:`job_majority_rates`), by key."""
    return {job.key: job_majority_rates(run.designs[job.subject], job, run.identity["cv"])
            for job in run.jobs}


def _write_decode_outputs(run: DecodeRun, results: list[PairResult],
                          chance: dict[tuple[str, str, str], np.ndarray]) -> pd.DataFrame:
    metrics = run.identity["scoring"]
    scores = scores_table(results, chance, metrics)
    _warn_one_class_folds(scores)
    summary = summary_table(scores)
    if run.identity["cv"] == "logo" and "train_categories" not in run.identity:
        _write_multiclass(run, results)  # cross-decoding has no held-out scans of every pair
    if len(run.designs) > 1:
        run.output.write_table("group.csv", group_table(summary))
    run.output.write_table("scores.csv", scores)
    run.output.write_table("summary.csv", summary)
    return summary


def _write_maps(output: OutputDir, result: PairResult,
                geometry: tuple[np.ndarray, np.ndarray]) -> None:
    """A pair's weight and pattern maps (listed in ``run.json`` beforehand)."""
    output.write_image(weights_name(*result.key), weight_map(result, *geometry))
    output.write_image(patterns_name(*result.key), pattern_map(result, *geometry))


def _write_multiclass(run: DecodeRun, results: list[PairResult]) -> None:
    """One-vs-one multiclass accuracy and confusion matrix per subject (3+ categories)."""
    rows = []
    for subject, design in run.designs.items():
        pairs = [result for result in results if result.subject == subject]
        classes = sorted({name for result in pairs for name in (result.class_a, result.class_b)})
        if len(classes) < 3 or len(pairs) != len(classes) * (len(classes) - 1) // 2:
            continue
        scans, predicted = multiclass_predictions(pairs, len(design.labels), classes)
        true = design.labels[scans]
        keep = np.isin(true, classes)  # scans of categories outside the pairs are left out
        table = confusion_matrix_table(true[keep], predicted[keep], classes)
        run.output.write_table(confusion_name(subject), table.reset_index())
        # Chance: the share of the most frequent category (1 / n_classes when balanced).
        shares = np.unique(true[keep], return_counts=True)[1] / keep.sum()
        rows.append({"subject": subject, "accuracy": float(np.mean(true[keep] == predicted[keep])),
                     "balanced_accuracy": multiclass_balanced_accuracy(true[keep],
                                                                      predicted[keep]),
                     "n_scans": int(keep.sum()), "n_classes": len(classes),
                     "chance": float(shares.max())})
    if rows:
        run.output.write_table("multiclass/accuracy.csv", pd.DataFrame(rows))


def _warn_one_class_folds(scores: pd.DataFrame) -> None:
    """Warn when some folds have no ROC AUC: their test scans hold one class."""
    if "roc_auc" not in scores or not scores["roc_auc"].isna().any():
        return
    empty = scores[scores["roc_auc"].isna()]
    first = empty.iloc[0]
    warnings.warn(f"{len(empty)} fold(s) have test scans of one class only (first: subject "
                  f"{first['subject']!r}, {first['class_a']!r} vs {first['class_b']!r}, fold "
                  f"{first['fold']}): their roc_auc is empty in scores.csv and left out of the "
                  f"means; use leave-one-run-out with both classes in every run",
                  NidecodeWarning, stacklevel=4)
