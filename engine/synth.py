"""Synthetic Haxby-2001-like fMRI datasets for tests, demos and benchmarks.

The generated subjects mimic the layout of the Haxby et al. (2001) face and object
study: one directory per subject holding a 4D ``bold.nii.gz`` (int16, TR 2.5 s,
12 runs of 121 scans), a ``labels.txt`` (header ``labels chunks``, one row per scan),
a ventral-temporal-like ROI ``mask4_vt.nii.gz`` and a brain mask ``mask.nii.gz``.

Each run shows the 8 categories of :data:`CATEGORIES` once, in blocks of 9 consecutive
scans in a per-run shuffled order, separated by rest scans. The BOLD signal is a
smooth per-voxel baseline plus per-run drifts (offset, linear and low-frequency),
AR(1) noise and, inside a compact sub-blob of the ROI (the *signal mask*), spatially
smooth category-specific patterns convolved with a canonical haemodynamic response.
The categories in ``null_categories`` share one and the same pattern, so decoding
them against each other is at chance level.

Everything is deterministic: the same arguments give bit-identical arrays and files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.signal import lfilter

from nidecode.io import REST

__all__ = [
    "CATEGORIES",
    "SyntheticSubject",
    "make_dataset",
    "make_subject",
    "write_subject",
]

#: The eight stimulus categories of Haxby et al. (2001), in alphabetical order.
CATEGORIES: tuple[str, ...] = (
    "bottle",
    "cat",
    "chair",
    "face",
    "house",
    "scissors",
    "scrambledpix",
    "shoe",
)

#: Label of the scans between category blocks.

#: File names written by :func:`write_subject`.
BOLD_FILE = "bold.nii.gz"
LABELS_FILE = "labels.txt"
VT_MASK_FILE = "mask4_vt.nii.gz"
BRAIN_MASK_FILE = "mask.nii.gz"
SIGNAL_MASK_FILE = "signal_mask.nii.gz"

# Coarse similarity structure of the category patterns (animate, places, objects, ...).
_CATEGORY_GROUPS: dict[str, int] = {
    "face": 0,
    "cat": 0,
    "house": 1,
    "scrambledpix": 2,
    "bottle": 3,
    "chair": 3,
    "scissors": 3,
    "shoe": 3,
}

# Geometry: brain ellipsoid semi-axes in mm (about a real brain), clipped to a fraction of
# the volume; ROI centre relative to the brain ellipsoid (posterior, inferior), ROI and
# signal blob radii in mm.
_BRAIN_SEMI_AXES_MM = (70.0, 85.0, 60.0)
_BRAIN_MAX_FRACTION = 0.46
_VT_OFFSET = (0.0, -0.45, -0.45)
_VT_RADII_MM = (21.0, 26.25, 11.25)
_VT_MAX_FRACTION = 0.3
_SIGNAL_RADIUS_MM = 10.0

_INT16_MAX = np.iinfo(np.int16).max


@dataclass(frozen=True)
class SyntheticSubject:
    """One synthetic subject held in memory.

    Attributes
    ----------
    bold : nibabel.Nifti1Image
        4D BOLD series, int16, shape ``shape + (n_runs * scans_per_run,)``.
    labels : pandas.DataFrame
        One row per scan with columns ``"labels"`` (category name or ``"rest"``) and
        ``"chunks"`` (run number, int, 0-based).
    vt_mask : nibabel.Nifti1Image
        Ventral-temporal-like ROI, uint8 0/1, inside ``brain_mask``.
    brain_mask : nibabel.Nifti1Image
        Brain mask (an ellipsoid), uint8 0/1.
    signal_mask : nibabel.Nifti1Image
        Voxels carrying the category signal, uint8 0/1, a subset of ``vt_mask``.
    """

    bold: nib.Nifti1Image
    labels: pd.DataFrame
    vt_mask: nib.Nifti1Image
    brain_mask: nib.Nifti1Image
    signal_mask: nib.Nifti1Image


def make_affine(
    shape: Sequence[int],
    voxel_size: Sequence[float] = (3.5, 3.75, 3.75),
    *,
    flip_x: bool = True,
) -> np.ndarray:
    """Build the voxel-to-world affine of a synthetic subject.

    Parameters
    ----------
    shape : sequence of int
        Spatial shape ``(nx, ny, nz)`` of the volume.
    voxel_size : sequence of float, default (3.5, 3.75, 3.75)
        Voxel size in mm along x, y and z.
    flip_x : bool, default True
        Whether the x axis is flipped (negative first diagonal entry, radiological
        storage order, as in the Haxby data).

    Returns
    -------
    numpy.ndarray
        4 × 4 float64 affine. The centre of the volume maps to (0, -20, 10) mm so that the
        translation is never zero.
    """
    diag = np.asarray(voxel_size, dtype=np.float64).copy()
    if diag.shape != (3,) or np.any(diag <= 0):
        raise ValueError(f"voxel_size must be 3 positive numbers, got {voxel_size!r}")
    if flip_x:
        diag[0] = -diag[0]
    centre_vox = (np.asarray(shape, dtype=np.float64) - 1.0) / 2.0
    centre_world = np.array([0.0, -20.0, 10.0])
    affine = np.eye(4)
    affine[:3, :3] = np.diag(diag)
    affine[:3, 3] = centre_world - diag * centre_vox
    return affine


def make_labels(
    rng: np.random.Generator,
    *,
    n_runs: int = 12,
    scans_per_run: int = 121,
    block_length: int = 9,
    categories: Sequence[str] = CATEGORIES,
) -> pd.DataFrame:
    """Build the block-design labels of one subject.

    Each run holds one block of ``block_length`` scans per category, in an order
    shuffled per run, with the rest scans spread as evenly as possible over the gaps
    before, between and after the blocks.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the per-run category orders.
    n_runs : int, default 12
        Number of runs.
    scans_per_run : int, default 121
        Number of scans per run.
    block_length : int, default 9
        Number of consecutive scans per category block.
    categories : sequence of str, default CATEGORIES
        Category names.

    Returns
    -------
    pandas.DataFrame
        Columns ``"labels"`` (str) and ``"chunks"`` (int64), ``n_runs * scans_per_run``
        rows.

    Raises
    ------
    ValueError
        If the blocks do not fit in a run.
    """
    n_cat = len(categories)
    n_rest = scans_per_run - n_cat * block_length
    if n_runs < 1 or block_length < 1 or n_rest < 0:
        raise ValueError(
            f"{n_cat} blocks of {block_length} scans do not fit in runs of "
            f"{scans_per_run} scans (n_runs={n_runs})"
        )
    n_gaps = n_cat + 1
    edges = (np.arange(n_gaps + 1) * n_rest) // n_gaps
    gaps = np.diff(edges)
    labels: list[str] = []
    chunks: list[int] = []
    for run in range(n_runs):
        order = rng.permutation(n_cat)
        run_labels: list[str] = []
        for gap, cat in zip(gaps[:-1], order, strict=True):
            run_labels += [REST] * int(gap) + [categories[cat]] * block_length
        run_labels += [REST] * int(gaps[-1])
        labels += run_labels
        chunks += [run] * scans_per_run
    return pd.DataFrame({"labels": labels, "chunks": np.asarray(chunks, dtype=np.int64)})


def canonical_hrf(tr: float, duration: float = 32.0) -> np.ndarray:
    """Sample an SPM-like double-gamma haemodynamic response function.

    Parameters
    ----------
    tr : float
        Repetition time in seconds.
    duration : float, default 32.0
        Length of the response in seconds.

    Returns
    -------
    numpy.ndarray
        The response sampled every ``tr`` seconds from 0, normalised to sum to 1 (so a
        long block reaches a plateau of about 1).
    """
    t = np.arange(0.0, duration, tr)

    def gamma_pdf(shape: float) -> np.ndarray:
        return t ** (shape - 1.0) * np.exp(-t) / math.gamma(shape)

    hrf = gamma_pdf(6.0) - gamma_pdf(16.0) / 6.0
    return hrf / hrf.sum()


def _ellipsoid(shape: Sequence[int], centre: np.ndarray, semi_axes: np.ndarray) -> np.ndarray:
    """Boolean ellipsoid (in voxel coordinates) of the given centre and semi-axes."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    dist = sum(((g - c) / a) ** 2 for g, c, a in zip(grids, centre, semi_axes, strict=True))
    return np.asarray(dist <= 1.0)


def make_masks(
    shape: Sequence[int], voxel_size: Sequence[float] = (3.5, 3.75, 3.75)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Build the nested brain, ROI and signal masks.

    Parameters
    ----------
    shape : sequence of int
        Spatial shape ``(nx, ny, nz)``.
    voxel_size : sequence of float, default (3.5, 3.75, 3.75)
        Voxel size in mm (the ROI and signal blob have a fixed size in mm, clipped to the
        volume).

    Returns
    -------
    brain, vt, sig : numpy.ndarray
        Boolean 3D arrays with ``sig ⊂ vt ⊂ brain``, none of them empty.
    """
    shape_arr = np.asarray(shape, dtype=np.float64)
    vox = np.abs(np.asarray(voxel_size, dtype=np.float64))
    centre = (shape_arr - 1.0) / 2.0
    brain_axes = np.minimum(np.asarray(_BRAIN_SEMI_AXES_MM) / vox, _BRAIN_MAX_FRACTION * shape_arr)
    brain_axes = np.maximum(brain_axes, 0.75)
    brain = _ellipsoid(shape, centre, brain_axes)

    vt_centre = np.round(centre + np.asarray(_VT_OFFSET) * brain_axes)
    vt_radii = np.minimum(np.asarray(_VT_RADII_MM) / vox, _VT_MAX_FRACTION * shape_arr)
    vt_radii = np.maximum(vt_radii, 0.75)
    vt = _ellipsoid(shape, vt_centre, vt_radii) & brain
    sig_radii = np.minimum(_SIGNAL_RADIUS_MM / vox, 0.6 * vt_radii)
    sig = _ellipsoid(shape, vt_centre, np.maximum(sig_radii, 0.75)) & vt
    if not sig.any():
        raise ValueError(f"shape {tuple(shape)} is too small for a synthetic subject")
    return brain, vt, sig


def _smooth_fields(
    rng: np.random.Generator, n: int, shape: Sequence[int], sigma: float
) -> np.ndarray:
    """``n`` spatially smooth Gaussian random fields, shape ``(n, *shape)``, float64."""
    fields = rng.standard_normal((n, *shape))
    for i in range(n):
        fields[i] = ndimage.gaussian_filter(fields[i], sigma=sigma, mode="wrap")
    return fields


def _standardize(patterns: np.ndarray) -> np.ndarray:
    """Centre and scale each row to zero mean and unit standard deviation."""
    patterns = patterns - patterns.mean(axis=1, keepdims=True)
    std = patterns.std(axis=1, keepdims=True)
    return patterns / np.where(std > 0, std, 1.0)


def _category_patterns(
    sig: np.ndarray,
    *,
    subject_rng: np.random.Generator,
    pattern_seed: int,
    pattern_jitter: float,
    null_categories: Sequence[str],
) -> np.ndarray:
    """Category patterns over the signal voxels, shape ``(n_categories, n_signal)``.

    Group-level (template) patterns come from ``pattern_seed``; each subject mixes them
    with its own smooth patterns (weight ``pattern_jitter``). Null categories all get the
    pattern of the first of them.
    """
    n_cat = len(CATEGORIES)
    n_groups = max(_CATEGORY_GROUPS.values()) + 1
    # Work in the bounding box of the signal blob (plus margin) to stay cheap.
    idx = np.nonzero(sig)
    lo = [max(int(i.min()) - 3, 0) for i in idx]
    hi = [min(int(i.max()) + 4, n) for i, n in zip(idx, sig.shape, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    box_shape = tuple(b - a for a, b in zip(lo, hi, strict=True))
    sig_box = sig[box]

    template_rng = np.random.default_rng(np.random.SeedSequence([pattern_seed, 2001]))
    group = _smooth_fields(template_rng, n_groups, box_shape, 1.0)[:, sig_box]
    specific = _smooth_fields(template_rng, n_cat, box_shape, 1.0)[:, sig_box]
    group, specific = _standardize(group), _standardize(specific)
    group_of = np.array([_CATEGORY_GROUPS[c] for c in CATEGORIES])
    template = _standardize(np.sqrt(0.35) * group[group_of] + np.sqrt(0.65) * specific)

    own = _standardize(_smooth_fields(subject_rng, n_cat, box_shape, 1.0)[:, sig_box])
    jitter = float(np.clip(pattern_jitter, 0.0, 1.0))
    patterns = _standardize(np.sqrt(1.0 - jitter**2) * template + jitter * own)

    null_idx = [CATEGORIES.index(c) for c in null_categories]
    if null_idx:
        patterns[null_idx] = patterns[null_idx[0]]
    return patterns


def make_subject(
    seed: int = 0,
    *,
    shape: tuple[int, int, int] = (20, 24, 10),
    n_runs: int = 12,
    scans_per_run: int = 121,
    block_length: int = 9,
    tr: float = 2.5,
    signal: float = 1.2,
    visual_response: float = 1.0,
    noise: float = 0.015,
    ar_coef: float = 0.4,
    drift: float = 1.0,
    null_categories: Sequence[str] = ("bottle", "shoe"),
    pattern_seed: int = 0,
    pattern_jitter: float = 0.3,
    voxel_size: tuple[float, float, float] = (3.5, 3.75, 3.75),
    flip_x: bool = True,
) -> SyntheticSubject:
    """Generate one synthetic Haxby-like subject in memory.

    Parameters
    ----------
    seed : int, default 0
        Seed of everything subject-specific (category orders, baseline, drifts, noise,
        pattern jitter).
    shape : tuple of 3 int, default (20, 24, 10)
        Spatial shape. ``(40, 64, 64)`` gives a whole-brain-size subject (~47 000 brain
        voxels) for benchmarks.
    n_runs : int, default 12
        Number of runs (``chunks`` 0 .. n_runs - 1).
    scans_per_run : int, default 121
        Scans per run; must hold 8 blocks of ``block_length`` scans.
    block_length : int, default 9
        Consecutive scans per category block.
    tr : float, default 2.5
        Repetition time in seconds (stored in the header, used for the HRF).
    signal : float, default 1.2
        Amplitude of the category-specific patterns, in units of the voxel's noise
        standard deviation (each pattern has unit spatial standard deviation).
    visual_response : float, default 1.0
        Amplitude of the response common to all categories (stimulus versus rest) in the
        whole ROI, in noise standard deviations; carries no category information.
    noise : float, default 0.015
        Noise standard deviation as a fraction of the voxel baseline (~800 a.u.).
    ar_coef : float, default 0.4
        AR(1) coefficient of the temporal noise.
    drift : float, default 1.0
        Amplitude of the per-run linear and low-frequency drifts, in noise standard
        deviations.
    null_categories : sequence of str, default ("bottle", "shoe")
        Categories sharing one and the same pattern (not decodable from each other).
    pattern_seed : int, default 0
        Seed of the group-level category patterns shared by the subjects of a dataset.
    pattern_jitter : float, default 0.3
        Weight (0..1) of the subject-specific part of the category patterns.
    voxel_size : tuple of 3 float, default (3.5, 3.75, 3.75)
        Voxel size in mm.
    flip_x : bool, default True
        Flip the x axis of the affine (negative first diagonal entry).

    Returns
    -------
    SyntheticSubject
        BOLD image, labels and masks. All images share the same affine.

    Raises
    ------
    ValueError
        For an unknown null category, a shape too small or blocks not fitting in a run.
    """
    shape = tuple(int(n) for n in shape)  # type: ignore[assignment]
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be 3 positive ints, got {shape!r}")
    unknown = set(null_categories) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown null categories {sorted(unknown)}; known: {CATEGORIES}")
    if not 0.0 <= ar_coef < 1.0:
        raise ValueError(f"ar_coef must be in [0, 1), got {ar_coef}")

    rng = np.random.default_rng(np.random.SeedSequence(seed))
    labels = make_labels(rng, n_runs=n_runs, scans_per_run=scans_per_run, block_length=block_length)
    affine = make_affine(shape, voxel_size, flip_x=flip_x)
    brain, vt, sig = make_masks(shape, voxel_size)
    n_brain = int(brain.sum())

    # Per-voxel baseline ~ 800 +- 100 a.u., spatially smooth, and noise level.
    base_field = _smooth_fields(rng, 1, shape, 2.0)[0][brain]
    base_field = (base_field - base_field.mean()) / (base_field.std() or 1.0)
    baseline = (800.0 + 90.0 * base_field + 40.0 * rng.standard_normal(n_brain)).astype(np.float32)
    sigma = (noise * baseline).astype(np.float32)

    # Amplitudes (n_categories, n_roi) of the ROI response to each category.
    patterns = _category_patterns(
        sig,
        subject_rng=rng,
        pattern_seed=pattern_seed,
        pattern_jitter=pattern_jitter,
        null_categories=tuple(null_categories),
    )
    brain_index = np.full(shape, -1, dtype=np.int64)
    brain_index[brain] = np.arange(n_brain)
    roi_cols = brain_index[vt]
    sig_in_roi = sig[vt]
    amplitudes = np.full((len(CATEGORIES), roi_cols.size), visual_response, dtype=np.float64)
    amplitudes[:, sig_in_roi] += signal * patterns
    amplitudes = (amplitudes * sigma[roi_cols]).astype(np.float32)

    hrf = canonical_hrf(tr)
    time = np.linspace(-1.0, 1.0, scans_per_run, dtype=np.float32)[:, None]
    slow = np.cos(np.pi * (time + 1.0) / 2.0 * 1.5).astype(np.float32)
    innovation_scale = np.float32(math.sqrt(1.0 - ar_coef**2))
    label_values = labels["labels"].to_numpy()

    n_scans = n_runs * scans_per_run
    data = np.zeros((*shape, n_scans), dtype=np.int16, order="F")
    for run in range(n_runs):
        t0, t1 = run * scans_per_run, (run + 1) * scans_per_run
        run_labels = label_values[t0:t1]
        boxcars = np.stack([run_labels == c for c in CATEGORIES], axis=1).astype(np.float64)
        design = signal_convolve(boxcars, hrf).astype(np.float32)

        # AR(1) noise, stationary from the first scan of the run.
        innov = rng.standard_normal((scans_per_run, n_brain), dtype=np.float32)
        innov[1:] *= innovation_scale
        noise_run = lfilter([1.0], [1.0, -ar_coef], innov, axis=0).astype(np.float32)
        noise_run *= sigma

        offset = rng.standard_normal(n_brain, dtype=np.float32) * 2.0
        slope = rng.standard_normal(n_brain, dtype=np.float32) * np.float32(drift)
        wave = rng.standard_normal(n_brain, dtype=np.float32) * np.float32(0.5 * drift)
        global_drift = np.float32(drift * rng.standard_normal())
        trend = time * (slope + global_drift) + slow * wave
        block = noise_run + (baseline + sigma * offset) + sigma * trend
        block[:, roi_cols] += design @ amplitudes

        values = np.clip(np.rint(block), 0, _INT16_MAX).astype(np.int16)
        data[brain, t0:t1] = values.T

    bold = _image(data, affine, tr=tr)
    return SyntheticSubject(
        bold=bold,
        labels=labels,
        vt_mask=_image(vt.astype(np.uint8), affine),
        brain_mask=_image(brain.astype(np.uint8), affine),
        signal_mask=_image(sig.astype(np.uint8), affine),
    )


def signal_convolve(boxcars: np.ndarray, hrf: np.ndarray) -> np.ndarray:
    """Convolve each column of ``boxcars`` with ``hrf``, truncated to the input length.

    Parameters
    ----------
    boxcars : numpy.ndarray
        Array of shape ``(n_scans, n_regressors)``.
    hrf : numpy.ndarray
        1D kernel.

    Returns
    -------
    numpy.ndarray
        Array of the shape of ``boxcars``: the causal convolution (response delayed and
        smoothed by the HRF).
    """
    return lfilter(hrf, [1.0], boxcars, axis=0)


def _image(data: np.ndarray, affine: np.ndarray, tr: float | None = None) -> nib.Nifti1Image:
    """Wrap ``data`` in a NIfTI-1 image with the given affine, mm/s units and TR."""
    img = nib.Nifti1Image(data, affine)
    header = img.header
    header.set_data_dtype(data.dtype)
    header.set_xyzt_units(xyz="mm", t="sec")
    if tr is not None and data.ndim == 4:
        header.set_zooms((*header.get_zooms()[:3], float(tr)))
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    return img


def write_subject(subject: SyntheticSubject, directory: str | PathLike[str]) -> Path:
    """Write a subject in the Haxby layout.

    Parameters
    ----------
    subject : SyntheticSubject
        Subject to write.
    directory : str or path-like
        Subject directory, created if needed.

    Returns
    -------
    pathlib.Path
        The subject directory, holding ``bold.nii.gz``, ``labels.txt`` (space-separated,
        header ``labels chunks``), ``mask4_vt.nii.gz`` (ROI), ``mask.nii.gz`` (brain) and
        ``signal_mask.nii.gz`` (where the signal was planted; ground truth for tests).
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    nib.save(subject.bold, path / BOLD_FILE)
    nib.save(subject.vt_mask, path / VT_MASK_FILE)
    nib.save(subject.brain_mask, path / BRAIN_MASK_FILE)
    nib.save(subject.signal_mask, path / SIGNAL_MASK_FILE)
    subject.labels.to_csv(path / LABELS_FILE, sep=" ", index=False, lineterminator="\n")
    return path


def subject_seed(seed: int, index: int) -> int:
    """Derive the seed of subject ``index`` (0-based) of a dataset seeded with ``seed``.

    Parameters
    ----------
    seed : int
        Dataset seed.
    index : int
        0-based subject index.

    Returns
    -------
    int
        A 32-bit seed, different for each ``(seed, index)``.
    """
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def make_dataset(
    directory: str | PathLike[str],
    n_subjects: int = 3,
    seed: int = 0,
    **subject_kwargs: object,
) -> list[Path]:
    """Generate and write a synthetic multi-subject dataset.

    Parameters
    ----------
    directory : str or path-like
        Dataset root, created if needed; subjects go to ``subj1``, ``subj2``, ...
    n_subjects : int, default 3
        Number of subjects.
    seed : int, default 0
        Dataset seed: subject ``i`` uses :func:`subject_seed` ``(seed, i)`` and all
        subjects share the group-level patterns of ``pattern_seed=seed`` (unless given).
    **subject_kwargs
        Passed to :func:`make_subject` (e.g. ``shape``, ``signal``).

    Returns
    -------
    list of pathlib.Path
        The subject directories, in order.
    """
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be >= 1, got {n_subjects}")
    root = Path(directory)
    kwargs = dict(subject_kwargs)
    kwargs.setdefault("pattern_seed", seed)
    paths = []
    for i in range(n_subjects):
        subject = make_subject(subject_seed(seed, i), **kwargs)  # type: ignore[arg-type]
        paths.append(write_subject(subject, root / f"subj{i + 1}"))
    return paths
