"""The task plan: from store metadata (labels and runs, never the data) to work.

A *job* is one subject x category pair with all its cross-validation folds;
jobs of one subject are grouped into tasks that each fit about
``fits_per_task`` SVMs, so that the scheduler's per-task overhead (about a
millisecond) is small against the work of a task (tens to hundreds of ms).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dask.config
import numpy as np

from nidecode.cv import make_folds
from nidecode.errors import InputError
from nidecode.io import REST
from nidecode.store import Design

FITS_PER_TASK = 96
#: Spheres x pairs per searchlight task (one task does every pair of its centres).
SPHERES_PER_TASK = 2000


@dataclass(frozen=True)
class PairJob:
    """One subject x category pair, cross-validated over ``n_folds`` folds."""

    subject: str
    class_a: str
    class_b: str
    n_folds: int

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.subject, self.class_a, self.class_b)


def parse_categories(text: str | None) -> list[str] | None:
    """Split ``--categories face,cat`` into names; ``None`` stays ``None``."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if len(set(names)) < 2:
        raise InputError(f"--categories {text}: give at least two different categories, "
                         f"e.g. face,cat")
    return names


def category_pairs(categories: Iterable[str]) -> list[tuple[str, str]]:
    """All pairs ``(a, b)`` with ``a < b`` alphabetically."""
    return list(itertools.combinations(sorted(set(categories)), 2))


def plan_decode(designs: Sequence[Design], cv: str,
                categories: Sequence[str] | None = None) -> list[PairJob]:
    """List the subject x pair jobs and check every fold can be fitted.

    Each subject gets the pairs it has: by default every pair of its own
    categories; with ``categories``, every pair of the requested categories
    it has scans of (:func:`plan_notes` says what is skipped).

    Parameters
    ----------
    designs : sequence of Design
        Labels and runs of each subject.
    cv : str
        ``"logo"`` or ``"kfold:K"``.
    categories : sequence of str, optional
        Decode every pair among these; by default every pair of the
        subject's categories except ``rest``. A category no subject has is
        an :class:`~nidecode.errors.InputError` (a typo, most likely).

    Returns
    -------
    list of PairJob
    """
    present = {design.subject: set(design.labels.tolist()) - {REST} for design in designs}
    if categories is not None:
        _check_requested(designs, present, categories)
    jobs = []
    for design in designs:
        wanted = present[design.subject]
        if categories is not None:
            wanted = wanted & set(categories)
        for class_a, class_b in category_pairs(wanted):
            n_folds = _check_pair_folds(design, class_a, class_b, cv)
            jobs.append(PairJob(design.subject, class_a, class_b, n_folds))
    if not jobs and categories is not None:
        raise InputError(f"--categories {','.join(categories)}: no subject has scans of two "
                         f"of these categories; choose categories a subject has together")
    if not jobs:
        raise InputError("no subject has scans of two categories besides rest: nothing to "
                         "decode; label the scans of at least two categories")
    return jobs


def _check_requested(designs: Sequence[Design], present: dict[str, set[str]],
                     categories: Sequence[str]) -> None:
    everywhere = set().union(*present.values())
    absent = [name for name in categories if name not in everywhere]
    if not absent:
        return
    if len(designs) == 1:
        raise InputError(f"subject {designs[0].subject}: no scans labelled {absent[0]!r}; "
                         f"categories present: {', '.join(sorted(everywhere))}")
    raise InputError(f"--categories: no subject has scans labelled {absent[0]!r}; categories "
                     f"present: {', '.join(sorted(everywhere))}")


def plan_notes(designs: Sequence[Design], jobs: Sequence[PairJob],
               categories: Sequence[str] | None = None, *, group: bool = True) -> list[str]:
    """What the plan leaves out, one sentence each, to print before the cluster starts.

    Parameters
    ----------
    designs : sequence of Design
    jobs : sequence of PairJob
        The plan of :func:`plan_decode`.
    categories : sequence of str, optional
        The requested categories: subjects lacking one are named (their
        pairs with it are skipped).
    group : bool
        The run makes group tests: with several subjects, name the pairs
        that fewer than two subjects have (they get no group test).

    Returns
    -------
    list of str
    """
    notes = []
    planned = {job.subject for job in jobs}
    for design in designs:
        lacking = sorted(set(categories or ()) - set(design.labels.tolist()))
        if lacking:
            names = ", ".join(repr(name) for name in lacking)
            notes.append(f"{design.subject} has no scans labelled {names}: its pairs with "
                         f"{', '.join(lacking)} are skipped"
                         + ("" if design.subject in planned else
                            f" ({design.subject} has no pair left)"))
    if group and len(designs) > 1:
        for (class_a, class_b), subjects in pair_subjects(jobs).items():
            if len(subjects) < 2:
                notes.append(f"{class_a} vs {class_b}: {len(subjects)} subject "
                             f"({', '.join(subjects)}); no group test (it needs 2 or more)")
    return notes


def pair_subjects(jobs: Iterable[PairJob]) -> dict[tuple[str, str], list[str]]:
    """The subjects of each pair, pairs sorted."""
    subjects: dict[tuple[str, str], list[str]] = {}
    for job in jobs:
        subjects.setdefault((job.class_a, job.class_b), []).append(job.subject)
    return dict(sorted(subjects.items()))


def majority_rates(design: Design, class_a: str, class_b: str, cv: str) -> np.ndarray:
    """Chance of one subject x pair per fold: the share of the larger class in its test scans.

    It is the accuracy of always predicting the class that is most frequent
    among the fold's test scans, the best a classifier without information
    about the scans can reach on that fold (0.5 for balanced folds). The
    fold mean of these rates is the chance level of the pair's
    cross-validated accuracy, which is the fold mean of the fold accuracies.

    Returns
    -------
    numpy.ndarray, shape (n_folds,)
        In the order of :func:`nidecode.cv.make_folds`, as the fold accuracies.
    """
    selected = np.isin(design.labels, (class_a, class_b))
    labels = design.labels[selected]
    folds = make_folds(design.runs[selected], cv)
    return np.array([max(np.mean(labels[fold.test] == class_a),
                         np.mean(labels[fold.test] == class_b)) for fold in folds])


def _check_pair_folds(design: Design, class_a: str, class_b: str, cv: str) -> int:
    selected = np.isin(design.labels, (class_a, class_b))
    labels, runs = design.labels[selected], design.runs[selected]
    if cv == "logo" and len(np.unique(runs)) < 2:
        raise InputError(f"subject {design.subject}: {class_a} vs {class_b} occurs in only "
                         f"{len(np.unique(runs))} run; leave-one-run-out needs two or more "
                         f"runs (use --cv kfold:K)")
    folds = make_folds(runs, cv)
    for fold in folds:
        if len(np.unique(labels[fold.train])) < 2:
            raise InputError(f"subject {design.subject}: {class_a} vs {class_b}, fold "
                             f"{fold.fold}: the training scans hold one class only; "
                             f"{_one_class_advice(cv)}")
    return len(folds)


def _one_class_advice(cv: str) -> str:
    if cv == "logo":  # both classes are then missing from the other runs (e.g. --drop-scans)
        return ("choose categories present in more runs, or keep more scans of each run "
                "(fewer --drop-scans)")
    return "use --cv logo or choose categories present in more runs"


def batch_jobs(jobs: Sequence[PairJob],
               fits_per_task: int | None = None) -> list[tuple[PairJob, ...]]:
    """Group consecutive jobs of the same subject into tasks of about ``fits_per_task`` fits.

    The default is ``nidecode.fits-per-task`` from dask's config, else
    :data:`FITS_PER_TASK`.
    """
    if fits_per_task is None:
        fits_per_task = int(dask.config.get("nidecode.fits-per-task", FITS_PER_TASK))
    batches: list[tuple[PairJob, ...]] = []
    for _, subject_jobs in itertools.groupby(jobs, key=lambda job: job.subject):
        batch: list[PairJob] = []
        for job in subject_jobs:
            batch.append(job)
            if sum(item.n_folds for item in batch) >= fits_per_task:
                batches.append(tuple(batch))
                batch = []
        if batch:
            batches.append(tuple(batch))
    return batches
