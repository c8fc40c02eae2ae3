"""Read one subject directory in the Haxby 2001 layout.

A subject directory holds ``bold.nii.gz`` (4D), ``labels.txt`` (header
``labels chunks``: the category shown at each scan and the run it belongs to)
and one or more masks such as ``mask4_vt.nii.gz``. Everything here checks its
input and raises :class:`~nidecode.errors.InputError` with a one-line message
naming the file and the fix.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from nidecode import fs
from nidecode.errors import InputError, first_line

BOLD_NAME = "bold.nii.gz"
#: Accepted names of the BOLD image, the first found is used.
BOLD_NAMES = (BOLD_NAME, "bold.nii")
LABELS_NAME = "labels.txt"
LABELS_HEADER = ("labels", "chunks")


@dataclass(frozen=True)
class SubjectFiles:
    """The files of one subject: its id (the directory name) and paths."""

    subject: str
    bold: Path | str  # a URL string for a subject directory at a URL
    labels: Path | str
    mask: Path | str


def find_subject_files(subject_dir: str | Path, mask: str | Path) -> SubjectFiles:
    """Locate the BOLD, labels and mask files of one subject directory.

    Parameters
    ----------
    subject_dir : str or Path
        Directory in the Haxby layout; its name becomes the subject id.
    mask : str or Path
        Either a path to a mask image (used for every subject) or the name
        of a mask inside the subject directory, with or without the
        ``.nii.gz`` suffix (``mask4_vt`` finds ``mask4_vt.nii.gz``).

    Returns
    -------
    SubjectFiles
    """
    if fs.is_url(subject_dir):
        return _find_url_subject_files(str(subject_dir).rstrip("/"), mask)
    directory = Path(fs.local(subject_dir))
    if not directory.is_dir():
        raise InputError(f"{directory}: no such subject directory; give a directory "
                         f"holding {BOLD_NAME} and {LABELS_NAME}")
    bold = next((directory / name for name in BOLD_NAMES if (directory / name).is_file()),
                directory / BOLD_NAME)
    labels = directory / LABELS_NAME
    for path in (bold, labels):
        if not path.is_file():
            raise InputError(f"{path}: file not found; each subject directory needs "
                             f"{BOLD_NAME} (or bold.nii) and {LABELS_NAME}")
    # abspath, not resolve: a symlinked directory keeps its own name as id.
    subject = Path(os.path.abspath(directory)).name
    return SubjectFiles(subject, bold, labels, _resolve_mask(directory, mask))


def _find_url_subject_files(directory: str, mask: str | Path) -> SubjectFiles:
    """As :func:`find_subject_files`, for a subject "directory" at a URL (a prefix)."""
    names = set(fs.listdir(directory))
    if not names:
        raise InputError(f"{directory}: no such subject directory (no object under it); give "
                         f"a prefix holding {BOLD_NAME} and {LABELS_NAME}")
    bold = next((name for name in BOLD_NAMES if name in names), BOLD_NAME)
    for name in (bold, LABELS_NAME):
        if name not in names:
            raise InputError(f"{fs.join(directory, name)}: file not found; each subject "
                             f"directory needs {BOLD_NAME} (or bold.nii) and {LABELS_NAME}")
    if fs.is_url(mask) or Path(str(mask)).is_absolute() or Path(str(mask)).exists():
        mask_path = mask if fs.is_url(mask) else Path(fs.local(mask))
        if not fs.isfile(mask_path):
            raise InputError(f"{mask}: mask not found; give a mask path or the name of a mask "
                             f"file in the subject directory (e.g. mask4_vt)")
    else:
        found = [candidate for candidate in (str(mask), f"{mask}.nii.gz", f"{mask}.nii")
                 if candidate in names]
        if not found:
            raise InputError(f"{fs.join(directory, str(mask))}: mask not found; give a mask "
                             f"path or the name of a mask file in the subject directory (e.g. "
                             f"mask4_vt)")
        mask_path = fs.join(directory, found[0])
    return SubjectFiles(fs.name(directory), fs.join(directory, bold),
                        fs.join(directory, LABELS_NAME), mask_path)


def _resolve_mask(directory: Path, mask: str | Path) -> Path:
    mask = Path(mask)
    candidates = [mask] if mask.is_absolute() or mask.exists() else []
    candidates += [directory / mask, directory / f"{mask}.nii.gz", directory / f"{mask}.nii"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(f"{directory / mask}: mask not found; give a mask path or the name "
                     f"of a mask file in the subject directory (e.g. mask4_vt)")


def read_labels(path: str | Path) -> pd.DataFrame:
    """Read a Haxby ``labels.txt``: columns ``labels`` (str) and ``chunks`` (int).

    Parameters
    ----------
    path : str or Path
        Whitespace-separated file with the header ``labels chunks`` (other
        columns are allowed and ignored), then one row per scan.

    Returns
    -------
    pandas.DataFrame
        One row per scan.
    """
    try:
        # utf-8-sig: a byte-order mark (Windows editors) is not part of the header.
        lines = fs.read_bytes(path).decode("utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read labels ({first_line(error)}); expected a "
                         f"UTF-8 text table with header 'labels chunks'") from None
    rows = [(number, line.split()) for number, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        raise InputError(f"{path}: empty; expected a header 'labels chunks' and one row per scan")
    (_, header), rows = rows[0], rows[1:]
    missing = [column for column in LABELS_HEADER if column not in header]
    if missing:
        raise InputError(f"{path}: header is {' '.join(header)!r}, missing column "
                         f"{missing[0]!r}; the first line must be 'labels chunks'")
    if not rows:
        raise InputError(f"{path}: no rows after the header; give one row per scan")
    for number, fields in rows:
        if len(fields) != len(header):
            raise InputError(f"{path}: line {number} has {len(fields)} fields, the header "
                             f"{len(header)}; give one label and one run per line")
    labels_at, chunks_at = header.index("labels"), header.index("chunks")
    runs = []
    for number, fields in rows:
        try:
            runs.append(int(fields[chunks_at]))
        except ValueError:
            raise InputError(f"{path}: line {number} has run {fields[chunks_at]!r}; the "
                             f"chunks column must hold integer run numbers") from None
    check_run_blocks(np.array(runs, dtype=np.int64), [number for number, _ in rows], path)
    return pd.DataFrame({"labels": [fields[labels_at] for _, fields in rows],
                         "chunks": np.array(runs, dtype=np.int64)})


def check_run_blocks(runs: np.ndarray, lines: list[int], path: str | Path) -> None:
    """Refuse runs of one scan and run ids that come back after another run.

    A run is one contiguous block of scans; blocks may come in any order
    (1, 10, 2, ...). An id used by two separate blocks (e.g. two sessions
    both numbered 1-6) is refused rather than merged into one run (which
    leave-one-run-out would hold out as one, and z-scoring would pool) or
    split into two (whose folds the id could not name).

    Parameters
    ----------
    runs : numpy.ndarray of int, shape (n_scans,)
        Run of each scan, in file order.
    lines : list of int
        Line number of each scan in ``path``, for the messages.
    path : str or Path
        The labels file.
    """
    ids, counts = np.unique(runs, return_counts=True)
    if (counts < 2).any():
        run = ids[counts < 2][0]
        raise InputError(f"{path}: run {run} has one scan (line "
                         f"{lines[int(np.flatnonzero(runs == run)[0])]}); a run with fewer "
                         f"than 2 scans cannot be z-scored: fix the run number of that line")
    starts = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]])
    ends = np.r_[starts[1:], len(runs)] - 1
    first_block: dict[int, int] = {}
    for start, end in zip(starts, ends, strict=True):
        run = int(runs[start])
        if run in first_block:
            earlier = first_block[run]
            raise InputError(f"{path}: run {run} at lines {lines[start]}-{lines[end]} already "
                             f"came at lines {lines[earlier]}-{lines[ends[starts == earlier][0]]}"
                             f"; each run must be one block of lines: renumber the runs of "
                             f"later sessions (e.g. 0-5 then 6-11)")
        first_block[run] = int(start)


def load_bold(path: str | Path) -> nib.Nifti1Image:
    """Open a 4D BOLD image lazily (no data read) and check it is 4D."""
    # One open (gzip) stream for all the blocks: each block continues where the
    # last stopped instead of decompressing the file again from its start.
    image = _load_nifti(path, keep_file_open=True)
    if image.ndim != 4:
        raise InputError(f"{path}: image is {image.ndim}D with shape {image.shape}; "
                         f"a BOLD series must be 4D (x, y, z, scans)")
    return image


def load_mask(path: str | Path, bold: nib.Nifti1Image, bold_path: str | Path) -> np.ndarray:
    """Read a mask as a 3D boolean array and check it matches the BOLD grid.

    Parameters
    ----------
    path : str or Path
        The mask image; non-zero voxels are in the mask.
    bold : nibabel.Nifti1Image
        The subject's BOLD image, whose shape and affine the mask must share.
    bold_path : str or Path
        Path of the BOLD image, for the error message.

    Returns
    -------
    numpy.ndarray of bool, 3D
    """
    return load_mask_like(path, bold.shape[:3], bold.affine, f"BOLD {{what}} of {bold_path}")


def load_mask_like(path: str | Path, shape: tuple[int, ...], affine: np.ndarray,
                   grid: str) -> np.ndarray:
    """Read a non-empty mask and check it lies on a given grid (shape and affine).

    Parameters
    ----------
    path : str or Path
        The mask image; non-zero voxels are in the mask.
    shape, affine
        The grid the mask must be on.
    grid : str
        Names the grid in messages; ``{what}`` is replaced by "shape" or
        "affine" (e.g. ``"BOLD {what} of sub01/bold.nii.gz"``).

    Returns
    -------
    numpy.ndarray of bool, 3D
    """
    with fs.local_copy(path) as copy:  # a mask at a URL: downloaded, read, removed
        image = _load_nifti(copy, name=path)
        data = np.asarray(image.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{path}: mask is {data.ndim}D with shape {data.shape}; a mask must "
                         f"be 3D: give a 3D mask or take one volume (e.g. "
                         f"nilearn.image.index_img(mask, 0))")
    if data.shape != tuple(shape[:3]):
        raise InputError(f"{path}: mask shape {data.shape} differs from the "
                         f"{grid.format(what=f'shape {tuple(shape[:3])}')}; resample the mask "
                         f"to that grid")
    if not np.allclose(image.affine, affine, atol=1e-3):
        raise InputError(f"{path}: mask affine {_affine_text(image.affine)} differs from the "
                         f"{grid.format(what=f'affine {_affine_text(affine)}')}; resample the "
                         f"mask to that grid")
    mask = np.nan_to_num(data) != 0
    if not mask.any():
        raise InputError(f"{path}: the mask is empty (no non-zero voxel); give a mask that "
                         f"covers the region to decode")
    return mask


def iter_masked_blocks(bold: nib.Nifti1Image, mask: np.ndarray,
                       block_size: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the masked BOLD signal block by block of scans, and each block's sum.

    Only ``block_size`` volumes are in memory at once, so memory is bounded
    by the block size, not by the file size.

    Yields
    ------
    masked : numpy.ndarray, shape (n_block_scans, n_mask_voxels), float32
    volume_sum : numpy.ndarray, 3D, float64
        The block's volumes summed over scans (for the mean EPI).
    """
    n_scans = bold.shape[3]
    for start in range(0, n_scans, block_size):
        volumes = _read_volumes(bold, start, block_size)
        yield volumes[mask].T.astype(np.float32), volumes.sum(axis=3, dtype=np.float64)


def _read_volumes(bold: nib.Nifti1Image, start: int, count: int) -> np.ndarray:
    try:
        return np.asarray(bold.dataobj[..., start:start + count])
    except (EOFError, zlib.error, OSError, ValueError) as error:
        # A truncated .nii.gz ends early (EOFError, zlib.error); a short .nii
        # makes nibabel raise ValueError ("not enough data in file").
        raise InputError(f"{bold.get_filename()}: cannot read scans {start}-"
                         f"{min(start + count, bold.shape[3]) - 1} ({first_line(error)}); "
                         f"the file is truncated or corrupt: copy or export it again") from None


def read_shape(path: str | Path) -> tuple[int, ...]:
    """The shape of a NIfTI image from its header only (at a URL: a few range requests)."""
    if not fs.is_url(path):
        return _load_nifti(path).shape
    if not fs.isfile(path):
        raise InputError(f"{path}: file not found")
    try:
        with fs.open_file(path) as handle:
            stream = gzip.GzipFile(fileobj=handle) if str(path).endswith(".gz") else handle
            return tuple(int(size) for size in nib.Nifti1Header.from_fileobj(stream)
                         .get_data_shape())
    except InputError:
        raise
    except Exception as error:  # nibabel and gzip raise many types for foreign files
        raise InputError(f"{path}: not a readable NIfTI image ({first_line(error)}); "
                         f"give a .nii or .nii.gz file") from None


def _load_nifti(path: str | Path, keep_file_open: bool = False,
                name: str | Path | None = None) -> nib.Nifti1Image:
    """Open a local NIfTI image; ``name`` (default ``path``) is what messages call it."""
    if fs.is_url(path):
        raise InputError(f"{path}: a URL is read through a local copy (nidecode.fs.local_copy); "
                         f"this is a bug: please report it")
    path, name = Path(path), path if name is None else name
    if not path.is_file():
        raise InputError(f"{name}: file not found")
    try:
        return nib.load(path, keep_file_open=keep_file_open)
    except Exception as error:  # nibabel raises many types for foreign files
        raise InputError(f"{name}: not a readable NIfTI image ({first_line(error)}); "
                         f"give a .nii or .nii.gz file") from None


def _affine_text(affine: np.ndarray) -> str:
    return np.array2string(np.asarray(affine)[:3], precision=2, separator=",").replace("\n", "")

