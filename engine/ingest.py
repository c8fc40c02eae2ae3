"""Ingest: subjects (Haxby directories or BIDS datasets) into the Zarr store.

Both layouts become a :class:`SubjectSource` — the subject id, its BOLD
images in run order, one label and run per scan, the mask and optional
confounds — and go through the same path: each image read block by block
of volumes, masked, cleaned, stored. So the same data given in either
layout gives the same store. With ``betas``, each run's masked signal
goes through a GLM instead (:mod:`nidecode.betas`) and the store holds one
row per trial.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nidecode import fs, store
from nidecode.betas import check_method, estimate_betas
from nidecode.clean import (
    check_run_lengths,
    clean_signal,
    constant_voxels,
    drop_dummy_scans,
)
from nidecode.errors import InputError
from nidecode.io import bids
from nidecode.io.haxby import (
    find_subject_files,
    iter_masked_blocks,
    load_bold,
    load_mask,
    read_labels,
    read_shape,
)


@dataclass(frozen=True)
class SubjectSource:
    """One subject as ingest sees it, whatever the input layout.

    Attributes
    ----------
    subject : str
        Id of the subject's group in the store.
    images : tuple of Path
        BOLD images in order; their scans, one image after the other, are
        the rows of ``scans``. A Haxby subject has one image holding every
        run, a BIDS subject one image per run.
    scans : pandas.DataFrame
        One row per scan: ``labels`` (str) and ``chunks`` (int, the run).
    mask : Path
        Mask image on the BOLD grid.
    labels_file : Path
        The file the labels come from, named in error messages.
    confounds : numpy.ndarray, shape (n_scans, n_confounds), optional
        Nuisance regressors, regressed out within each run.
    keep : numpy.ndarray of bool, shape (n_scans,), optional
        Scans to use (False: e.g. fMRIPrep's non-steady-state volumes).
    events : tuple of pandas.DataFrame, optional
        The events of each image (BIDS), for trial betas.
    repetition_times : tuple of float, optional
        The TR of each image (BIDS).
    files : dict
        Input files, kept in the store as the subject's ``source``.
    settings : dict
        Layout-specific settings kept with the cleaning settings.
    """

    subject: str
    images: tuple[Path, ...]
    scans: pd.DataFrame
    mask: Path
    labels_file: Path
    confounds: np.ndarray | None = None
    keep: np.ndarray | None = None
    events: tuple[pd.DataFrame, ...] | None = None
    repetition_times: tuple[float, ...] | None = None
    files: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def ingest(subject_dirs: Sequence[str | Path], store_path: str | Path,
           mask: str | Path, *, standardize: str = "run", detrend: bool = False,
           drop_scans: int = 0, block_size: int = 64) -> list[str]:
    """Mask, clean and store subjects given in the Haxby layout.

    Parameters
    ----------
    subject_dirs : sequence of str or Path
        One directory per subject; the directory name is the subject id.
    store_path : str or Path
        The Zarr store (created if missing). An existing subject of the same
        id is replaced atomically.
    mask : str or Path
        Mask path, or the name of a mask file in each subject directory.
    standardize : {"run", "global", "none"}
        See :func:`nidecode.clean.clean_signal`.
    detrend : bool
        Remove a linear trend before z-scoring.
    drop_scans : int
        Dummy scans dropped at the start of every run.
    block_size : int
        Volumes read at once; bounds the memory used for reading.

    Returns
    -------
    list of str
        The ids of the subjects written.
    """
    sources = find_subjects(subject_dirs, mask)
    for source in sources:
        ingest_subject(source, store_path, standardize=standardize, detrend=detrend,
                       drop_scans=drop_scans, block_size=block_size)
    return [source.subject for source in sources]


def ingest_bids(bids_root: str | Path, store_path: str | Path, task: str, mask: str | Path,
                *, subjects: Sequence[str] | None = None, space: str | None = None,
                confounds: Sequence[str] | None = None, hrf_shift: float = 0.0,
                betas: str | None = None, standardize: str = "run", detrend: bool = False,
                drop_scans: int = 0, block_size: int = 64,
                derivatives: str | Path | None = None) -> list[str]:
    """Mask, clean and store the subjects of a BIDS dataset, one run per chunk.

    Parameters
    ----------
    bids_root : str or Path
        The raw BIDS dataset (``dataset_description.json``, ``sub-*``).
    store_path : str or Path
        The Zarr store (created if missing); subjects are stored as
        ``sub-<label>``, replacing a subject of the same id atomically.
    task : str
        Task label (``task-<label>`` in the file names).
    mask : str or Path
        Mask image on the BOLD grid, used for every subject; ``{subject}``
        in the path is replaced by the subject id (``sub-01``).
    subjects : sequence of str, optional
        Subject labels (``01`` or ``sub-01``); default: every subject with
        a run of the task.
    space : str, optional
        Read fMRIPrep's ``space-<space>_desc-preproc_bold`` images from
        ``derivatives`` instead of the raw images.
    confounds : sequence of str, optional
        fMRIPrep noise components regressed out within each run
        (``nilearn.interfaces.fmriprep.load_confounds`` strategies, e.g.
        ``["motion", "wm_csf"]``); needs ``space``. With ``betas`` they are
        regressors of the GLM instead. Non-steady-state volumes flagged by
        fMRIPrep are dropped.
    hrf_shift : float
        Seconds subtracted from each scan's time before looking up its
        event (see :func:`nidecode.io.bids.events_to_labels`).
    betas : {"lsa", "lss"}, optional
        Store one beta map per trial (labelled by its ``trial_type``)
        instead of one row per scan; see :mod:`nidecode.betas`.
    standardize, detrend, drop_scans, block_size
        As for :func:`ingest`; with ``betas``, z-scoring and detrending
        apply to each run's betas.
    derivatives : str or Path, optional
        fMRIPrep's output folder; default ``bids_root/derivatives/fmriprep``.

    Returns
    -------
    list of str
        The ids of the subjects written.

    Examples
    --------
    >>> ingest_bids("ds000105", "study.zarr", "objectviewing",  # doctest: +SKIP
    ...             "ds000105/derivatives/masks/{subject}_mask.nii.gz", betas="lss")
    """
    sources = find_bids_subjects(bids_root, task, mask, subjects=subjects, space=space,
                                 confounds=confounds, hrf_shift=hrf_shift,
                                 derivatives=derivatives, betas=betas)
    for source in sources:
        ingest_subject(source, store_path, standardize=standardize, detrend=detrend,
                       drop_scans=drop_scans, block_size=block_size, betas=betas)
    return [source.subject for source in sources]


def find_subjects(subject_dirs: Sequence[str | Path],
                  mask: str | Path) -> list[SubjectSource]:
    """Read every Haxby subject's labels, locate its files, check the ids are unique."""
    sources = [haxby_source(directory, mask) for directory in subject_dirs]
    seen: dict[str, Path | str] = {}
    for source in sources:
        directory = fs.parent(source.images[0])
        first = seen.setdefault(source.subject, directory)
        if first != directory:
            raise InputError(f"{directory}: subject id {source.subject!r} already used by "
                             f"{first}; rename one of the directories")
    return sources


def haxby_source(subject_dir: str | Path, mask: str | Path) -> SubjectSource:
    """A subject directory in the Haxby layout (see :mod:`nidecode.io.haxby`)."""
    files = find_subject_files(subject_dir, mask)
    store.check_subject_id(files.subject, subject_dir)
    # Absolute paths: the workers of a cluster may run in another directory.
    bold, labels, mask_path = (_absolute(path) for path in (files.bold, files.labels,
                                                            files.mask))
    return SubjectSource(
        subject=files.subject, images=(bold,), scans=read_labels(labels),
        mask=mask_path, labels_file=labels,
        files={"bold": _resolved(files.bold), "labels": _resolved(files.labels),
               "mask": _resolved(files.mask)})


def find_bids_subjects(bids_root: str | Path, task: str, mask: str | Path, *,
                       subjects: Sequence[str] | None = None, space: str | None = None,
                       confounds: Sequence[str] | None = None, hrf_shift: float = 0.0,
                       derivatives: str | Path | None = None,
                       betas: str | None = None) -> list[SubjectSource]:
    """The subjects of a BIDS dataset as sources, one per subject (one task each).

    Parameters are those of :func:`ingest_bids`; ``betas`` only checks
    that ``hrf_shift`` is not given with it. Runs, sidecars, events and
    confounds are read and checked here, the images only opened for their
    number of scans.

    Returns
    -------
    list of SubjectSource
    """
    if not np.isfinite(hrf_shift):
        raise InputError(f"--hrf-shift {hrf_shift}: give a number of seconds")
    if betas is not None:
        check_method(betas)
    if betas is not None and hrf_shift != 0:
        raise InputError(f"--hrf-shift {hrf_shift:g}: trial betas model the haemodynamic "
                         f"delay themselves; drop --hrf-shift with --betas")
    if confounds is not None:
        confounds = bids.check_confounds(confounds)
        if space is None:
            raise InputError(f"--confounds {','.join(confounds)}: confounds come from fMRIPrep; "
                             f"give --space to read its desc-preproc_bold images")
    # Absolute paths: the workers of a cluster may run in another directory.
    bids_root = _absolute(bids_root)
    derivatives = None if derivatives is None else _absolute(derivatives)
    mask = _absolute(mask)
    # A dataset at a URL: its layout read from a local mirror of its text files
    # (one listing), its images read from the URLs.
    with fs.metadata_mirror(bids_root) as root, _mirror(derivatives) as derived:
        def where(path: Path) -> Path | str:
            path = fs.relative_url(path, root, str(bids_root))
            return path if derivatives is None else fs.relative_url(path, derived,
                                                                    str(derivatives))

        try:
            labels = [str(label).removeprefix("sub-") for label in subjects] if subjects else \
                bids.list_subjects(root, task, space=space, derivatives=derived)
            return [_bids_source(bids.find_runs(root, label, task, space=space,
                                                derivatives=derived), mask, confounds,
                                 hrf_shift, where)
                    for label in dict.fromkeys(labels)]
        except InputError as error:  # messages name the files by their URLs, not the mirror's
            for mirror, url in ((root, bids_root), (derived, derivatives)):
                if mirror is not None and fs.is_url(url):
                    error.args = (str(error).replace(str(mirror), str(url)),)
            raise


@contextlib.contextmanager
def _mirror(derivatives: str | Path | None):
    if derivatives is None:
        yield None
        return
    with fs.metadata_mirror(derivatives) as local:
        yield local


def _n_scans(path: str | Path) -> int:
    """Scans of a BOLD image; at a URL from its header alone."""
    if not fs.is_url(path):
        return load_bold(path).shape[3]
    shape = read_shape(path)
    if len(shape) != 4:
        raise InputError(f"{path}: image is {len(shape)}D with shape {shape}; a BOLD series "
                         f"must be 4D (x, y, z, scans)")
    return shape[3]


def _bids_source(runs: list[bids.BidsRun], mask: str | Path,
                 strategy: tuple[str, ...] | None, hrf_shift: float,
                 where=lambda path: path) -> SubjectSource:
    subject = runs[0].subject
    store.check_subject_id(subject, runs[0].bold.parent)
    # The subject id is checked (a plain name) before it is put into the mask's path.
    mask_path = str(mask).replace("{subject}", subject)
    mask_path = mask_path if fs.is_url(mask_path) else Path(mask_path)
    if not fs.isfile(mask_path):
        raise InputError(f"{mask_path}: mask not found; give a mask image on the BOLD grid "
                         f"({{subject}} in the path stands for the subject id)")
    tables, events, regressors, keep = [], [], [], []
    for index, run in enumerate(runs):
        n_scans = _n_scans(where(run.bold))
        run_events = bids.read_events(run.events)
        labels = bids.events_to_labels(run_events, n_scans, run.repetition_time, hrf_shift,
                                       run.events)
        tables.append(pd.DataFrame({"labels": labels, "chunks": np.full(n_scans, index)}))
        events.append(run_events)
        if strategy is not None:
            values, run_keep = bids.load_run_confounds(run.bold, strategy)
            if len(values) != n_scans:
                raise InputError(f"{run.bold}: {len(values)} rows of confounds for {n_scans} "
                                 f"scans; the desc-confounds_timeseries.tsv must have one row "
                                 f"per scan")
            regressors.append(values)
            keep.append(np.ones(n_scans, bool) if run_keep is None else run_keep)
    confounds = np.concatenate(regressors) if regressors else None
    return SubjectSource(
        subject=subject, images=tuple(where(run.bold) for run in runs),
        scans=pd.concat(tables, ignore_index=True), mask=mask_path,
        labels_file=where(runs[0].events),
        confounds=confounds if confounds is not None and confounds.shape[1] else None,
        keep=np.concatenate(keep) if keep else None, events=tuple(events),
        repetition_times=tuple(run.repetition_time for run in runs),
        files={"bold": [_resolved(where(run.bold)) for run in runs],
               "events": [_resolved(where(run.events)) for run in runs],
               "mask": _resolved(mask_path)},
        settings={"hrf_shift": hrf_shift, "confounds": list(strategy) if strategy else None})


def ingest_subject(source: SubjectSource, store_path: str | Path, *, standardize: str = "run",
                   detrend: bool = False, drop_scans: int = 0, block_size: int = 64,
                   betas: str | None = None, run_betas: Sequence | None = None) -> dict:
    """Read, mask, clean and store one subject; return a short report.

    Parameters
    ----------
    source : SubjectSource
    store_path : str or Path
    standardize, detrend, drop_scans, block_size
        See :func:`ingest`.
    betas : {"lsa", "lss"}, optional
        Store trial betas instead of scans.
    run_betas : sequence, optional
        With ``betas``: the results of :func:`estimate_run_betas` for every
        run, computed elsewhere (one task per run on a cluster); computed
        here, one run after the other, if not given.

    Returns
    -------
    dict
        ``subject``, ``n_scans`` (rows stored), ``n_voxels``, ``n_constant_voxels``.
    """
    if betas is not None:
        with local_inputs(source, runs=[0]) as local:
            return _ingest_betas(local, store_path, betas, run_betas, standardize=standardize,
                                 detrend=detrend, drop_scans=drop_scans, block_size=block_size)
    with local_inputs(source) as local:
        return _ingest_scans(local, store_path, standardize=standardize, detrend=detrend,
                             drop_scans=drop_scans, block_size=block_size)


def _ingest_scans(source: SubjectSource, store_path: str | Path, *, standardize: str,
                  detrend: bool, drop_scans: int, block_size: int) -> dict:
    images = [load_bold(path) for path in source.images]
    n_scans = sum(image.shape[3] for image in images)
    if len(source.scans) != n_scans:
        raise InputError(f"{source.labels_file}: {len(source.scans)} rows but "
                         f"{source.images[0]} has {n_scans} scans; give one label row per scan")
    mask = _load_mask(source, images)
    blocks = [_read_masked(path, image, mask, block_size)
              for path, image in zip(source.images, images, strict=True)]
    X = np.concatenate([masked for masked, _ in blocks])
    mean_volume = sum(volume_sum for _, volume_sum in blocks) / n_scans
    runs = source.scans["chunks"].to_numpy()
    keep = _keep_scans(source, runs, drop_scans)
    X, runs, names = X[keep], runs[keep], source.scans["labels"].to_numpy()[keep]
    confounds = None if source.confounds is None else source.confounds[keep]
    n_constant = int(constant_voxels(X, runs).sum())
    X = clean_signal(X, runs, standardize=standardize, detrend=detrend, confounds=confounds)
    cleaning = {"standardize": standardize, "detrend": detrend, "drop_scans": drop_scans,
                "n_constant_voxels": n_constant, **source.settings}
    store.write_subject(store_path, source.subject, X, names, runs, mask, images[0].affine,
                        cleaning, source.files, mean_volume=mean_volume)
    return {"subject": source.subject, "n_scans": X.shape[0], "n_voxels": X.shape[1],
            "n_constant_voxels": n_constant}


def estimate_run_betas(source: SubjectSource, run: int, method: str, *, drop_scans: int = 0,
                       block_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Trial betas of one run of a subject (one task per run on a cluster).

    Returns
    -------
    betas : numpy.ndarray, shape (n_trials, n_voxels), float32
    trial_types : numpy.ndarray of str, shape (n_trials,)
    """
    check_method(method)
    with local_inputs(source, runs=[run]) as local:
        return _estimate_run_betas(local, run, method, drop_scans, block_size)


def _estimate_run_betas(source: SubjectSource, run: int, method: str, drop_scans: int,
                        block_size: int) -> tuple[np.ndarray, np.ndarray]:
    if source.events is None:
        raise InputError(f"{source.labels_file}: trial betas need BIDS events (onsets and "
                         f"durations); ingest a BIDS dataset, or drop --betas")
    image = load_bold(source.images[run])
    mask = load_mask(source.mask, image, source.images[run])
    signal, _ = _read_masked(source.images[run], image, mask, block_size)
    rows = np.flatnonzero(source.scans["chunks"].to_numpy() == run)
    keep = drop_dummy_scans(np.full(len(rows), run), drop_scans, str(source.images[run]))
    if source.keep is not None:
        keep &= source.keep[rows]
    confounds = None if source.confounds is None else source.confounds[rows]
    return estimate_betas(signal, source.events[run], source.repetition_times[run], method,
                          confounds=confounds, keep=keep, source=str(source.files["events"][run]))


def _ingest_betas(source: SubjectSource, store_path: str | Path, method: str,
                  run_betas: Sequence | None, *, standardize: str, detrend: bool,
                  drop_scans: int, block_size: int) -> dict:
    if run_betas is None:
        run_betas = [estimate_run_betas(source, run, method, drop_scans=drop_scans,
                                        block_size=block_size)
                     for run in range(len(source.images))]
    X = np.concatenate([betas for betas, _ in run_betas])
    names = np.concatenate([trial_types for _, trial_types in run_betas])
    runs = np.concatenate([np.full(len(trial_types), run)
                           for run, (_, trial_types) in enumerate(run_betas)])
    if len(X) == 0:
        raise InputError(f"{source.labels_file}: no trial in the events of {source.subject}; "
                         f"give events with a trial_type")
    first = load_bold(source.images[0])
    mask = load_mask(source.mask, first, source.images[0])
    n_constant = int(constant_voxels(X, runs).sum())
    X = clean_signal(X, runs, standardize=standardize, detrend=detrend)
    cleaning = {"standardize": standardize, "detrend": detrend, "drop_scans": drop_scans,
                "n_constant_voxels": n_constant, **source.settings, "betas": method}
    store.write_subject(store_path, source.subject, X, names, runs, mask, first.affine,
                        cleaning, source.files)
    return {"subject": source.subject, "n_scans": X.shape[0], "n_voxels": X.shape[1],
            "n_constant_voxels": n_constant}


def _keep_scans(source: SubjectSource, runs: np.ndarray, drop_scans: int) -> np.ndarray:
    """The scans kept after dummy scans and flagged volumes; every run keeps 2 or more."""
    flagged = np.ones(len(runs), bool) if source.keep is None else source.keep
    why = f"--drop-scans {drop_scans}" + (" and the volumes the confounds flag"
                                          if source.keep is not None else "")
    keep = np.zeros(len(runs), bool)
    for rows, where in _run_groups(source, runs):
        keep[rows] = drop_dummy_scans(runs[rows], drop_scans, where) & flagged[rows]
        check_run_lengths(runs[rows][keep[rows]], where, why)
    return keep


def _run_groups(source: SubjectSource, runs: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """Rows and the file messages name: the labels file (Haxby), or each run's image (BIDS)."""
    if len(source.images) == 1:
        return [(np.arange(len(runs)), str(source.labels_file))]
    return [(np.flatnonzero(runs == run), str(image)) for run, image in enumerate(source.images)]


def _absolute(path: str | Path) -> Path | str:
    # abspath, not resolve: a symlinked subject directory keeps its name. A URL stays.
    return str(path) if fs.is_url(path) else Path(os.path.abspath(fs.local(path)))


def _resolved(path: str | Path) -> str:
    return str(path) if fs.is_url(path) else str(Path(path).resolve())


@contextlib.contextmanager
def local_inputs(source: SubjectSource, runs: Sequence[int] | None = None):
    """The source with its images (those of ``runs``, default all) and mask as local files.

    Inputs at URLs are downloaded to temporary files for the duration of
    the block (one request per image; nibabel then reads it locally, see
    ``docs/storage.md``); local inputs are used as they are.
    """
    wanted = range(len(source.images)) if runs is None else runs
    if not any(fs.is_url(path) for path in (*source.images, source.mask)):
        yield source
        return
    with contextlib.ExitStack() as stack:
        images = tuple(stack.enter_context(fs.local_copy(path)) if index in wanted else path
                       for index, path in enumerate(source.images))
        mask = stack.enter_context(fs.local_copy(source.mask))
        yield dataclasses.replace(source, images=images, mask=mask)


def _load_mask(source: SubjectSource, images: list) -> np.ndarray:
    """The mask, checked against the grid of every image."""
    mask = load_mask(source.mask, images[0], source.images[0])
    for path, image in zip(source.images[1:], images[1:], strict=True):
        load_mask(source.mask, image, path)
    return mask


def _read_masked(path: Path, image, mask: np.ndarray,
                 block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The masked signal (scans x voxels) of one image and its volumes summed over scans."""
    blocks = list(iter_masked_blocks(image, mask, block_size))
    X = np.concatenate([masked for masked, _ in blocks])
    if not np.isfinite(X).all():
        raise InputError(f"{path}: NaN or infinite values inside the mask; fix the "
                         f"image or exclude those voxels from the mask")
    return X, sum(volume_sum for _, volume_sum in blocks)
