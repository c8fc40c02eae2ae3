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
from nidecode.store import Design

REST = "rest"
FITS_PER_TASK = 96


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

    Parameters
    ----------
    designs : sequence of Design
        Labels and runs of each subject.
    cv : str
        ``"logo"`` or ``"kfold:K"``.
    categories : sequence of str, optional
        Decode every pair among these; by default every pair of the
        subject's categories except ``rest``.

    Returns
    -------
    list of PairJob
    """
    jobs = []
    for design in designs:
        present = set(design.labels) - {REST}
        wanted = present if categories is None else categories
        missing = sorted(set(wanted) - present)
        if missing:
            raise InputError(f"subject {design.subject}: no scans labelled {missing[0]!r}; "
                             f"categories present: {', '.join(sorted(present))}")
        for class_a, class_b in category_pairs(wanted):
            n_folds = _check_pair_folds(design, class_a, class_b, cv)
            jobs.append(PairJob(design.subject, class_a, class_b, n_folds))
    return jobs


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
