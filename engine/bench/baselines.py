"""What users run without the engine, timed in the benchmark's own process on one core.

* decode: the seed tutorial's loop, ``cross_val_score(SVC(kernel="linear"),
  X, y, cv=LeaveOneGroupOut(), groups=runs)`` per subject and pair, on the
  data of the same store;
* searchlight: nilearn's ``SearchLight(estimator=SVC(kernel="linear"),
  n_jobs=1)`` on a reduced process mask (nilearn's ``estimator="svc"`` is
  ``LinearSVC``, a different problem), on the stored data of one subject;
* ingest: nilearn's ``NiftiMasker(standardize="zscore_sample").fit_transform``
  per subject (what ``--standardize global`` stores; the masker writes no store).

BLAS is limited to one thread, so a baseline uses one core as a worker does.
Each function returns the units of work done (fits, spheres, subjects).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from threadpoolctl import threadpool_limits

from nidecode import store
from nidecode.analyses.plan import REST, category_pairs


def serial_decode(store_path: Path) -> int:
    """The seed's loop over every subject and category pair; returns the fits done."""
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_score
    from sklearn.svm import SVC

    fits = 0
    with threadpool_limits(limits=1):
        for subject in store.list_subjects(store_path):
            design = store.read_design(store_path, subject)
            X = store.read_timeseries(store_path, subject)
            for class_a, class_b in category_pairs(set(design.labels) - {REST}):
                keep = np.isin(design.labels, [class_a, class_b])
                scores = cross_val_score(SVC(kernel="linear"), X[keep], design.labels[keep],
                                         cv=LeaveOneGroupOut(), groups=design.runs[keep])
                fits += len(scores)
    return fits


def nilearn_searchlight(store_path: Path, subject: str, pair: Sequence[str], radius: float,
                        centres: np.ndarray) -> int:
    """nilearn's SearchLight with ``SVC(kernel="linear")`` on ``centres``; returns the spheres.

    ``centres`` are indices among the subject's mask voxels. The stored time
    series of the pair's scans are put back on the grid as a 4D image, so
    nilearn sees the data the engine decodes.
    """
    from nilearn.decoding import SearchLight
    from sklearn.model_selection import LeaveOneGroupOut
    from sklearn.svm import SVC

    design = store.read_design(store_path, subject)
    mask, affine = store.read_geometry(store_path, subject)
    keep = np.flatnonzero(np.isin(design.labels, pair))
    X = store.read_timeseries(store_path, subject)[keep]
    data = np.zeros((*mask.shape, len(keep)), dtype=np.float32)
    data[mask] = X.T
    process = np.zeros(int(mask.sum()), dtype=np.uint8)
    process[centres] = 1
    process_volume = np.zeros(mask.shape, dtype=np.uint8)
    process_volume[mask] = process
    searchlight = SearchLight(nib.Nifti1Image(mask.astype(np.uint8), affine),
                              process_mask_img=nib.Nifti1Image(process_volume, affine),
                              radius=radius, estimator=SVC(kernel="linear"),
                              cv=LeaveOneGroupOut(), n_jobs=1, verbose=0)
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # nilearn warns about any estimator object; SVC(kernel="linear") is the point here.
        warnings.filterwarnings("ignore", message="Use a custom estimator", category=UserWarning)
        searchlight.fit(nib.Nifti1Image(data, affine), design.labels[keep],
                        groups=design.runs[keep])
    return int(process.sum())


def nilearn_masker(subject_dirs: Sequence[Path], mask: str) -> int:
    """``NiftiMasker(...).fit_transform`` of each subject's BOLD; returns the subjects done."""
    from nilearn.maskers import NiftiMasker

    with threadpool_limits(limits=1):
        for directory in subject_dirs:
            masker = NiftiMasker(mask_img=str(directory / f"{mask}.nii.gz"),
                                 standardize="zscore_sample", reports=False)
            masker.fit_transform(str(directory / "bold.nii.gz"))
    return len(subject_dirs)
