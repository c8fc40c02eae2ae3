"""The benchmark's data: subject directories, stores of n subjects, sphere centres.

Synthetic subjects come from :func:`nidecode.synth.make_dataset` (different
subjects, the default shape); real ones are copies of the Haxby slice
(symlinks to one directory, so every subject is the same work).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from nidecode import store
from nidecode.bench.settings import HAXBY_SLICE
from nidecode.ingest import ingest
from nidecode.synth import make_dataset


@dataclass(frozen=True)
class Dataset:
    """Subject directories in the Haxby layout and the masks to use in them."""

    kind: str  # "synthetic" or "real"
    subject_dirs: tuple[Path, ...]
    roi_mask: str  # decode
    brain_mask: str  # searchlight and ingest

    def describe(self) -> str:
        if self.kind == "real":
            return f"the real Haxby 2001 slice ({HAXBY_SLICE}), symlinked as each subject"
        return "synthetic Haxby-like subjects (nidecode.synth.make_dataset, default shape)"


def make_subjects(kind: str, n_subjects: int, directory: Path) -> Dataset:
    """Write (synthetic) or link (real) ``n_subjects`` subject directories."""
    directory.mkdir(parents=True, exist_ok=True)
    if kind == "synthetic":
        paths = make_dataset(directory, n_subjects=n_subjects)
        return Dataset(kind, tuple(paths), roi_mask="mask4_vt", brain_mask="mask")
    paths = []
    for index in range(1, n_subjects + 1):
        path = directory / f"sub-{index:02d}"
        if not path.exists():
            path.symlink_to(HAXBY_SLICE, target_is_directory=True)
        paths.append(path)
    return Dataset(kind, tuple(paths), roi_mask="mask", brain_mask="mask")


def make_store(dataset: Dataset, n_subjects: int, mask: str, path: Path,
               standardize: str = "run") -> Path:
    """Ingest the first ``n_subjects`` subjects into a store (once; reused if complete)."""
    if not (path.exists() and len(store.list_subjects(path)) == n_subjects):
        ingest(dataset.subject_dirs[:n_subjects], path, mask, standardize=standardize)
    return path


def store_size(path: Path) -> dict:
    """Subjects, scans, voxels per subject, bytes of the time series and bytes on disk."""
    designs = [store.read_design(path, subject) for subject in store.list_subjects(path)]
    on_disk = sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    timeseries = sum(4 * len(design.labels) * design.n_voxels for design in designs)
    return {"subjects": len(designs), "scans": len(designs[0].labels),
            "voxels": designs[0].n_voxels,
            "timeseries_bytes": timeseries, "bytes_on_disk": on_disk,
            "compression": on_disk / timeseries if timeseries else None}


def centre_indices(mask: np.ndarray, n_centres: int | None) -> np.ndarray:
    """Sphere centres (indices among the mask voxels): the ``n`` nearest the mask's centroid.

    A compact ball of interior centres, so a reduced problem still has
    whole spheres and reads a contiguous block of voxels; all voxels when
    ``n_centres`` is ``None`` or not smaller than the mask.
    """
    ijk = np.argwhere(mask)
    if n_centres is None or n_centres >= len(ijk):
        return np.arange(len(ijk))
    distance = np.linalg.norm(ijk - ijk.mean(axis=0), axis=1)
    return np.sort(np.argsort(distance, kind="stable")[:n_centres])


def write_centres_mask(mask: np.ndarray, affine: np.ndarray, centres: np.ndarray,
                       path: Path) -> Path:
    """A NIfTI process mask holding the given centres (indices among the mask voxels)."""
    values = np.zeros(int(mask.sum()), dtype=np.uint8)
    values[centres] = 1
    volume = np.zeros(mask.shape, dtype=np.uint8)
    volume[mask] = values
    nib.save(nib.Nifti1Image(volume, affine), path)
    return path


def evenly_spaced(indices: np.ndarray, n: int) -> np.ndarray:
    """``n`` of ``indices`` spread evenly over them (all if there are fewer)."""
    if n >= len(indices):
        return indices
    return indices[np.linspace(0, len(indices) - 1, n).round().astype(int)]
