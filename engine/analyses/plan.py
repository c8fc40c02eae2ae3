"""The task plan: from store metadata (labels and runs, never the data) to work.

A *job* is one subject x category pair with all its cross-validation folds;
jobs of one subject are grouped into tasks that each fit about
``fits_per_task`` SVMs, so that the scheduler's per-task overhead (about a
millisecond) is small against the work of a task (tens to hundreds of ms).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import dask.config
import numpy as np

from nidecode.cv import NO_CV, make_cross_folds, make_folds
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
    # Cross-decoding: the categories whose scans are tested as class_a and
    # class_b ("": the pair's own scans, ordinary decoding).
    test_a: str = ""
    test_b: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.subject, self.class_a, self.class_b)

    @property
    def is_cross(self) -> bool:
        """Trained on one pair of categories and tested on another."""
        return bool(self.test_a)

    @property
    def test_pair(self) -> tuple[str, str]:
        """The categories tested as ``class_a`` and ``class_b``."""
        return (self.test_a, self.test_b) if self.is_cross else (self.class_a, self.class_b)


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
                     categories: Sequence[str], option: str = "--categories") -> None:
    everywhere = set().union(*present.values())
    absent = [name for name in categories if name not in everywhere]
    if not absent:
        return
    if len(designs) == 1 and option == "--categories":
        raise InputError(f"subject {designs[0].subject}: no scans labelled {absent[0]!r}; "
                         f"categories present: {', '.join(sorted(everywhere))}")
    raise InputError(f"{option}: no subject has scans labelled {absent[0]!r}; categories "
                     f"present: {', '.join(sorted(everywhere))}")


def parse_category_list(text: str | None) -> list[str] | None:
    """Split ``--train-categories face,cat`` into names, in order; ``None`` stays ``None``."""
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def category_list(categories: Sequence[str] | str | None) -> list[str] | None:
    """The API's categories as a list of names (comma-separated names in a string too)."""
    if isinstance(categories, str):
        return parse_category_list(categories)
    return None if categories is None else [str(name) for name in categories]


def cross_mapping(train_categories: Sequence[str] | None,
                  test_categories: Sequence[str] | None, cv: str,
                  categories: Sequence[str] | None = None) -> dict[str, str] | None:
    """Check a cross-decoding design: training category -> the test category read as it.

    Parameters
    ----------
    train_categories, test_categories : sequence of str or None
        Both or neither; as many of each, the order pairs them.
    cv : str
        ``"none"`` needs disjoint lists (else the two sets share scans).
    categories : sequence of str, optional
        Ordinary decoding's categories: refused together with a cross design.

    Returns
    -------
    dict or None
        ``None`` without a cross design.

    Raises
    ------
    InputError
        One line naming the option and the fix.
    """
    if train_categories is None and test_categories is None:
        return None
    if categories is not None:
        raise InputError("--categories and --train-categories/--test-categories: give one or "
                         "the other (the cross options name the categories themselves)")
    if train_categories is None or test_categories is None:
        missing = "--test-categories" if test_categories is None else "--train-categories"
        raise InputError(f"{missing}: missing; cross-decoding needs both --train-categories "
                         f"and --test-categories (e.g. faceA,catA and faceB,catB)")
    for option, names in (("--train-categories", train_categories),
                          ("--test-categories", test_categories)):
        if len(names) < 2 or len(set(names)) != len(names):
            raise InputError(f"{option} {','.join(names)}: give at least two different "
                             f"categories, each once, e.g. faceA,catA")
    if len(train_categories) != len(test_categories):
        raise InputError(f"--train-categories {','.join(train_categories)} and "
                         f"--test-categories {','.join(test_categories)}: give as many test "
                         f"as training categories (the order pairs them)")
    shared = [name for name in train_categories if name in test_categories]
    if cv == NO_CV and shared:
        raise InputError(f"--cv none: {shared[0]!r} is both a training and a test category, "
                         f"so training and test scans overlap; use --cv logo or disjoint "
                         f"categories")
    return dict(zip(train_categories, test_categories, strict=True))


def used_categories(categories: Sequence[str] | None,
                    mapping: dict[str, str] | None) -> list[str] | None:
    """The categories a run names (for its identity): ``categories``, or a cross
    design's training and test categories, each once."""
    if mapping is None:
        return None if categories is None else list(categories)
    return list(dict.fromkeys([*mapping, *mapping.values()]))


def plan_cross(designs: Sequence[Design], cv: str, mapping: dict[str, str]) -> list[PairJob]:
    """The jobs of a cross-decoding design (see :func:`cross_mapping`).

    Each subject gets every pair of the training categories that it has,
    together with their test categories; pairs are named by their training
    categories, ``class_a < class_b``.

    Returns
    -------
    list of PairJob
        With ``test_a`` and ``test_b``.
    """
    present = {design.subject: set(design.labels.tolist()) - {REST} for design in designs}
    _check_requested(designs, present, list(mapping), "--train-categories")
    _check_requested(designs, present, list(mapping.values()), "--test-categories")
    jobs = []
    for design in designs:
        usable = [name for name in mapping
                  if {name, mapping[name]} <= present[design.subject]]
        for class_a, class_b in category_pairs(usable):
            job = PairJob(design.subject, class_a, class_b, 0, mapping[class_a],
                          mapping[class_b])
            jobs.append(replace(job, n_folds=_check_cross_folds(design, job, cv)))
    if not jobs:
        raise InputError("--train-categories/--test-categories: no subject has scans of two "
                         "training categories and of their test categories; choose "
                         "categories a subject has together")
    return jobs


def _check_cross_folds(design: Design, job: PairJob, cv: str) -> int:
    # Every job has test scans (plan_cross keeps those only), so at least one fold.
    _, labels, folds = pair_samples(design, job, cv)
    name = f"subject {design.subject}: {job.class_a} vs {job.class_b}"
    for fold in folds:
        if len(np.unique(labels[fold.train])) < 2:
            raise InputError(f"{name}, fold {fold.fold}: the training scans hold one class "
                             f"only; {_one_class_advice(cv)}")
    return len(folds)


def pair_samples(design: Design, job: PairJob,
                 cv: str) -> tuple[np.ndarray, np.ndarray, list]:
    """The samples of one subject x pair: scans, labels and folds.

    Ordinary decoding: the pair's scans, their labels, :func:`make_folds`.
    Cross-decoding: the training pair's scans then the test pair's, the test
    scans labelled with the training class they are read as
    (``test_a`` -> ``class_a``), and :func:`nidecode.cv.make_cross_folds`.

    Returns
    -------
    scans : numpy.ndarray of int
        Indices into the subject's scans (a scan of a category of both lists twice).
    labels : numpy.ndarray of str
    folds : list of Fold
        Indices into ``scans``.
    """
    train = np.flatnonzero(np.isin(design.labels, (job.class_a, job.class_b)))
    if not job.is_cross:
        return train, design.labels[train], make_folds(design.runs[train], cv)
    test = np.flatnonzero(np.isin(design.labels, job.test_pair))
    read_as = {job.test_a: job.class_a, job.test_b: job.class_b}
    scans = np.concatenate([train, test])
    labels = np.concatenate([design.labels[train],
                             np.array([read_as[name] for name in design.labels[test]], str)])
    is_train = np.arange(len(scans)) < len(train)
    return scans, labels, make_cross_folds(scans, design.runs[scans], is_train, cv)


def permutation_groups(design: Design, job: PairJob, scans: np.ndarray) -> np.ndarray:
    """The groups a permutation moves labels within (:func:`pair_samples`' ``scans``).

    The runs; for cross-decoding, the runs of the training samples and those
    of the test samples apart, so that each set is permuted within its runs.
    """
    runs = design.runs[scans]
    if not job.is_cross:
        return runs
    n_train = np.count_nonzero(np.isin(design.labels, (job.class_a, job.class_b)))
    return runs * 2 + (np.arange(len(scans)) >= n_train)


def cross_notes(designs: Sequence[Design], jobs: Sequence[PairJob], cv: str,
                mapping: dict[str, str] | None = None) -> list[str]:
    """What a cross-decoding plan leaves out, one sentence each.

    The runs (or parts) of a job without test scans, which are no fold, and
    with ``mapping`` the subjects lacking a category of the design (its
    training category's pairs are skipped there).
    """
    notes = []
    for design in designs:
        present = set(design.labels.tolist())
        lacking = [name for pair in (mapping or {}).items() for name in pair
                   if name not in present]
        if lacking:
            notes.append(f"{design.subject} has no scans labelled "
                         f"{', '.join(map(repr, lacking))}: the pairs of the training "
                         f"categories involved are skipped")
    for job in jobs if cv != NO_CV else ():
        design = next(design for design in designs if design.subject == job.subject)
        scans, _, folds = pair_samples(design, job, cv)
        parts = ({int(run) for run in np.unique(design.runs[scans])} if cv == "logo"
                 else set(range(int(cv.split(":")[1]))))
        empty = sorted(parts - {fold.fold for fold in folds})
        if empty:
            what = "run(s)" if cv == "logo" else "part(s)"
            notes.append(f"{job.subject}, {job.class_a} vs {job.class_b} tested on "
                         f"{job.test_a} vs {job.test_b}: {what} "
                         f"{', '.join(map(str, empty))} have no test scans: no fold")
    return notes


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


def job_majority_rates(design: Design, job: PairJob, cv: str) -> np.ndarray:
    """:func:`majority_rates` of a job, cross-decoding too (its test scans read as
    the training classes)."""
    _, labels, folds = pair_samples(design, job, cv)
    return np.array([max(np.mean(labels[fold.test] == job.class_a),
                         np.mean(labels[fold.test] == job.class_b)) for fold in folds])


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
