"""Reading what a run left in its output directory, for the report.

The files and their columns are documented here and in the report's
docstring; a file that exists but does not match its format stops the
report with an :class:`~nidecode.errors.InputError` naming it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from nidecode import fs
from nidecode.errors import InputError
from nidecode.outdir import confusion_name, patterns_name, weights_name

SUMMARY_COLUMNS = ["subject", "class_a", "class_b", "mean_accuracy", "std_accuracy", "n_folds"]
PVALUE_COLUMNS = ["subject", "class_a", "class_b", "accuracy", "p_value", "n_permutations"]
GROUP_COLUMNS = ["class_a", "class_b", "mean_accuracy", "t", "p_value", "n_subjects"]
SEARCHLIGHT_COLUMNS = ["subject", "class_a", "class_b", "n_spheres"]
_NAMES = {"subject": str, "class_a": str, "class_b": str, "test_a": str, "test_b": str}


@dataclass
class RunResults:
    """The contents of a run's output directory that the report shows."""

    path: Path
    manifest: dict
    summary: pd.DataFrame | None  # None for a searchlight run
    pvalues: pd.DataFrame | None = None
    group: pd.DataFrame | None = None
    confusions: dict[str, pd.DataFrame] = field(default_factory=dict)
    weight_maps: dict[tuple[str, str, str], Path] = field(default_factory=dict)
    pattern_maps: dict[tuple[str, str, str], Path] = field(default_factory=dict)
    searchlight_maps: list[Path] = field(default_factory=list)
    searchlight_table: pd.DataFrame | None = None  # searchlight.csv, if any


def read_results(out_dir: str | Path) -> RunResults:
    """Read ``run.json``, ``summary.csv`` and the optional results of a run.

    Parameters
    ----------
    out_dir : str or Path
        The ``--out`` directory of ``nidecode decode``.

    Returns
    -------
    RunResults
        Optional parts are ``None`` or empty when their files are absent:
        ``permutations/pvalues.csv``, ``group.csv``,
        ``multiclass/confusion_{subject}.csv``, ``searchlight.csv``,
        ``weights/{subject}_{class_a}_vs_{class_b}.nii.gz`` for the subjects
        and pairs of the summary (names from :mod:`nidecode.outdir`, which
        encodes the strings), and ``searchlight/*.nii.gz``.
    """
    path = Path(out_dir)
    manifest_path, summary_path = path / "run.json", path / "summary.csv"
    maps = [map_path for map_path in sorted((path / "searchlight").glob("[!.]*.nii.gz"))
            if not _is_4d(map_path)]  # --per-fold images: one volume per fold, not drawn
    if not manifest_path.exists() or not (summary_path.exists() or maps):
        missing = manifest_path if not manifest_path.exists() else summary_path
        raise InputError(f"{missing}: not found; give the output directory of a completed "
                         f"'nidecode decode', 'searchlight' or 'permute' run")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{manifest_path}: not valid JSON ({error}); run the decode "
                         f"again") from None
    summary = read_table(summary_path, SUMMARY_COLUMNS) if summary_path.exists() else None
    results = RunResults(path, manifest, summary, searchlight_maps=maps)
    if (path / "permutations" / "pvalues.csv").exists():
        results.pvalues = read_table(path / "permutations" / "pvalues.csv", PVALUE_COLUMNS)
    if (path / "group.csv").exists():
        results.group = read_table(path / "group.csv", GROUP_COLUMNS)
    if (path / "searchlight.csv").exists():
        results.searchlight_table = read_table(path / "searchlight.csv", SEARCHLIGHT_COLUMNS)
    for subject in sorted(set(summary["subject"])) if summary is not None else ():
        confusion = path / confusion_name(subject)
        if confusion.exists():
            results.confusions[subject] = read_confusion(confusion)
    for row in summary.itertuples() if summary is not None else ():
        weights = path / weights_name(row.subject, row.class_a, row.class_b)
        if weights.exists():
            results.weight_maps[(row.subject, row.class_a, row.class_b)] = weights
        pattern = path / patterns_name(row.subject, row.class_a, row.class_b)
        if pattern.exists():  # runs before activation patterns have none
            results.pattern_maps[(row.subject, row.class_a, row.class_b)] = pattern
    return results


def read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV table with at least ``columns``; names stay text, other columns become numbers.

    Subject and category names are read as written: ``01``, ``NA``, ``null``,
    ``None`` or ``True`` are names, not numbers or missing values. The
    other columns are numbers where every cell is one (an empty cell is
    NaN); a required one that is not is an :class:`~nidecode.errors.InputError`.
    """
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a readable CSV table ({error}); expected the columns "
                         f"{','.join(columns)}") from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; expected the "
                         f"columns {','.join(columns)}")
    bad = []
    for column in frame.columns:
        if column in _NAMES:
            continue
        numbers = _numbers(frame[column])
        if numbers is not None:
            frame[column] = numbers
        elif column in columns:
            bad.append(column)
    if bad:
        raise InputError(f"{path}: column(s) {', '.join(bad)} hold non-numeric values; "
                         f"write numbers there")
    return frame


def _numbers(texts: pd.Series) -> pd.Series | None:
    """The column as numbers (empty cells NaN), or ``None`` if a cell is not a number."""
    stripped = texts.str.strip()
    numbers = pd.to_numeric(stripped.mask(stripped == ""), errors="coerce")
    written_nan = stripped.str.lower().isin(["", "nan"])
    return None if (numbers.isna() & ~written_nan).any() else numbers


def read_confusion(path: Path) -> pd.DataFrame:
    """A confusion matrix: first column the true categories, then one column per prediction."""
    try:
        frame = pd.read_csv(path, index_col=0, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a readable CSV table ({error})") from None
    if list(frame.index) != list(frame.columns) or frame.empty:
        raise InputError(f"{path}: not a square confusion matrix (rows {list(frame.index)}, "
                         f"columns {list(frame.columns)}); write the categories as the first "
                         f"column and as the header, in the same order")
    counts = {column: _numbers(frame[column]) for column in frame.columns}
    if not all(values is not None and pd.api.types.is_integer_dtype(values)
               for values in counts.values()):
        raise InputError(f"{path}: the confusion matrix must hold integer counts")
    return pd.DataFrame(counts, index=frame.index)


def read_image_option(option: str, path: str | Path, *, average: bool) -> nib.Nifti1Image:
    """A 3D image given on the command line (``--anat``, ``--mask``), loaded and checked.

    Parameters
    ----------
    option : str
        The option, named in messages.
    path : str or Path
    average : bool
        A 4D image becomes the mean of its volumes (a background); otherwise
        a 4D image of more than one volume is an
        :class:`~nidecode.errors.InputError` (a mask).

    Returns
    -------
    nibabel.Nifti1Image
        3D, its data in memory.
    """
    if not fs.isfile(path):
        raise InputError(f"{option} {path}: {'background' if average else 'mask'} image not "
                         f"found; give an existing NIfTI file")
    path = path if fs.is_url(path) else Path(path)
    try:
        with fs.local_copy(path) as copy:  # an image at a URL: downloaded, read, removed
            image = nib.load(copy)
            data = np.asanyarray(image.dataobj)
    except Exception as error:  # nibabel raises many types for foreign files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else \
            type(error).__name__
        raise InputError(f"{option} {path}: not a readable NIfTI image ({reason}); give a "
                         f"3D .nii or .nii.gz file") from None
    if data.ndim == 4 and (average or data.shape[3] == 1):
        data = data.mean(axis=3) if average else data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{option} {path}: a {data.ndim}D image with shape {data.shape}; "
                         f"give a 3D {'image' if average else 'mask'}")
    return nib.Nifti1Image(data, image.affine)


def _is_4d(path: Path) -> bool:
    """Whether a map's header says 4D (an unreadable file is left to :func:`read_map`)."""
    try:
        return len(nib.load(path).shape) == 4
    except Exception:  # nibabel raises many types for bad files; read_map reports them
        return False


def read_map(path: Path) -> nib.Nifti1Image:
    """A NIfTI map of the run, its data read (a truncated or foreign file is an error)."""
    try:
        image = nib.load(path)
        data = np.asanyarray(image.dataobj)
    except Exception as error:  # nibabel, gzip and zlib raise many types for bad files
        raise InputError(f"{path}: not a readable NIfTI image ({type(error).__name__}); run "
                         f"the analysis again to rewrite it") from None
    return nib.Nifti1Image(data, image.affine, image.header)


def read_bench(bench_dir: str | Path) -> tuple[list[Path], object]:
    """The figures (``*.png``) and the parsed ``bench.json`` (or ``None``) of a benchmark."""
    path = Path(bench_dir)
    if not path.is_dir():
        raise InputError(f"{path}: benchmark directory not found; give the directory holding "
                         f"bench.json and the scaling figures")
    figures = sorted(path.glob("[!.]*.png"))
    numbers = None
    if (path / "bench.json").exists():
        try:
            numbers = json.loads((path / "bench.json").read_text())
        except json.JSONDecodeError as error:
            raise InputError(f"{path / 'bench.json'}: not valid JSON ({error}); run the "
                             f"benchmark again") from None
    return figures, numbers
