"""Ingest: subject directories (NIfTI + labels + mask) into the Zarr store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine import store
from engine.clean import clean_signal, constant_voxels, drop_dummy_scans
from engine.errors import InputError
from engine.io.haxby import (
    SubjectFiles,
    find_subject_files,
    iter_masked_blocks,
    load_bold,
    load_mask,
    read_labels,
)


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
        See :func:`engine.clean.clean_signal`.
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
    files = find_subjects(subject_dirs, mask)
    for subject_files in files:
        ingest_subject(subject_files, store_path, standardize=standardize, detrend=detrend,
                       drop_scans=drop_scans, block_size=block_size)
    return [subject_files.subject for subject_files in files]


def ingest_subject(files: SubjectFiles, store_path: str | Path, *, standardize: str = "run",
                   detrend: bool = False, drop_scans: int = 0, block_size: int = 64) -> dict:
    """Read, mask, clean and store one subject; return a short report."""
    labels = read_labels(files.labels)
    bold = load_bold(files.bold)
    if len(labels) != bold.shape[3]:
        raise InputError(f"{files.labels}: {len(labels)} rows but {files.bold} has "
                         f"{bold.shape[3]} scans; give one label row per scan")
    mask = load_mask(files.mask, bold, files.bold)
    X = np.concatenate(list(iter_masked_blocks(bold, mask, block_size)))
    if not np.isfinite(X).all():
        raise InputError(f"{files.bold}: NaN or infinite values inside the mask; fix the "
                         f"image or exclude those voxels from the mask")
    runs = labels["chunks"].to_numpy()
    keep = drop_dummy_scans(runs, drop_scans)
    X, runs, names = X[keep], runs[keep], labels["labels"].to_numpy()[keep]
    n_constant = int(constant_voxels(X, runs).sum())
    X = clean_signal(X, runs, standardize=standardize, detrend=detrend)
    cleaning = {"standardize": standardize, "detrend": detrend, "drop_scans": drop_scans}
    source = {"bold": str(files.bold.resolve()), "labels": str(files.labels.resolve()),
              "mask": str(files.mask.resolve())}
    store.write_subject(store_path, files.subject, X, names, runs, mask, bold.affine,
                        cleaning, source)
    return {"subject": files.subject, "n_scans": X.shape[0], "n_voxels": X.shape[1],
            "n_constant_voxels": n_constant}


def find_subjects(subject_dirs: Sequence[str | Path], mask: str | Path) -> list[SubjectFiles]:
    """Locate every subject's files and check the subject ids are unique."""
    files = [find_subject_files(directory, mask) for directory in subject_dirs]
    seen: dict[str, Path] = {}
    for subject_files in files:
        first = seen.setdefault(subject_files.subject, subject_files.bold.parent)
        if first != subject_files.bold.parent:
            raise InputError(f"{subject_files.bold.parent}: subject id "
                             f"{subject_files.subject!r} already used by {first}; "
                             f"rename one of the directories")
    return files
