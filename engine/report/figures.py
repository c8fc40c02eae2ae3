"""The report's figures, each returned as PNG bytes.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg
canvas, never through pyplot: no display is needed, the user's backend is
left alone and no figure stays open after it is saved.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
#: nilearn's warnings for a map with no voxel above the threshold.
_EMPTY_MAP_WARNINGS = ("Could not determine cut coords", "empty mask")


def new_figure(width: float, height: float) -> Figure:
    """A figure on an Agg canvas (inches)."""
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def to_png(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def plain(text: object) -> str:
    """Text drawn as written: ``$`` escaped, so that matplotlib does not parse it as math."""
    return str(text).replace("$", r"\$")


def accuracy_bars(summary: pd.DataFrame, chance: float = 0.5) -> bytes:
    """Accuracy per pair: mean over subjects, error bars, one dot per subject.

    The error bars are the standard deviation across subjects when there
    are several, else the subject's standard deviation across folds. The
    chance level is the summary's ``chance`` column (its mean over the
    subjects of each pair) when there is one, else ``chance``: one dashed
    line when every pair has the same, else a red mark on each bar.
    """
    table = summary.assign(pair=summary["class_a"] + " vs " + summary["class_b"])
    if "chance" not in table:
        table = table.assign(chance=chance)
    pairs = list(dict.fromkeys(table.sort_values(["class_a", "class_b"])["pair"]))
    by_pair = table.groupby("pair")
    n_subjects = table["subject"].nunique()
    means = by_pair["mean_accuracy"].mean().reindex(pairs)
    chances = by_pair["chance"].mean().reindex(pairs).to_numpy()
    if n_subjects > 1:
        errors = by_pair["mean_accuracy"].std().reindex(pairs)
        error_label = f"SD across {n_subjects} subjects"
    else:
        errors = by_pair["std_accuracy"].mean().reindex(pairs)
        error_label = "SD across folds"

    figure = new_figure(8.0, 1.6 + 0.32 * len(pairs))
    axes = figure.add_subplot()
    positions = np.arange(len(pairs))
    axes.barh(positions, means.to_numpy(), xerr=errors.fillna(0).to_numpy(), color="#8fb3de",
              edgecolor="#23395d", error_kw={"ecolor": "#23395d", "capsize": 3},
              label=f"mean accuracy ± {error_label}")
    if n_subjects > 1:
        jitter = np.linspace(-0.25, 0.25, n_subjects)
        for offset, (_, rows) in zip(jitter, table.groupby("subject"), strict=True):
            rows = rows.set_index("pair").reindex(pairs)
            axes.plot(rows["mean_accuracy"], positions + offset, "o", markersize=3.5,
                      color="#333", alpha=0.6, label="subjects" if offset == jitter[0] else None)
    if np.allclose(chances, chances[0], rtol=0, atol=1e-12):
        axes.axvline(chances[0], color="#c0392b", linestyle="--", linewidth=1.2,
                     label=f"chance ({chances[0]:g})")
    else:
        axes.vlines(chances, positions - 0.45, positions + 0.45, color="#c0392b",
                    linestyle="--", linewidth=1.6, label="chance of each pair")
    axes.set_yticks(positions, [plain(pair) for pair in pairs])
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("accuracy")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8,
                frameon=False)
    figure.tight_layout()
    return to_png(figure)


def confusion_matrix(counts: pd.DataFrame, title: str) -> bytes:
    """A confusion matrix: colour by the share of each true class, counts written in cells."""
    values = counts.to_numpy()
    shares = values / np.maximum(values.sum(axis=1, keepdims=True), 1)
    size = 1.6 + 0.55 * len(counts)
    figure = new_figure(size + 1.2, size)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(values):
        axes.text(column, row, str(count), ha="center", va="center", fontsize=8,
                  color="white" if shares[row, column] > 0.6 else "black")
    axes.set_xticks(range(len(counts.columns)), [plain(name) for name in counts.columns],
                    rotation=45, ha="right")
    axes.set_yticks(range(len(counts.index)), [plain(name) for name in counts.index])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(plain(title), fontsize=10)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of true class")
    figure.tight_layout()
    return to_png(figure)


def brain_map(image: str | Path | nib.Nifti1Image, title: str,
              background: str | Path | nib.Nifti1Image | None = None, *,
              above: float | None = None) -> bytes:
    """A statistical map in three orthogonal cuts (``nilearn.plotting.plot_stat_map``).

    Drawn over ``background`` if given, else alone on white. With
    ``above``, only values above it are drawn, on a one-sided colour scale
    starting there (e.g. accuracies above chance); otherwise positive and
    negative values share a symmetric scale. Infinite values (a group t
    where every subject scored the same) are drawn at the end of the scale,
    not dropped to zero as nilearn would.
    """
    from nilearn import plotting

    image = _finite(nib.load(image) if isinstance(image, str | Path) else image)
    cuts = _cuts(image)
    figure = new_figure(*_figure_size(cuts))
    options = {}
    if above is not None:
        top = float(np.nanmax(image.get_fdata()))
        options = {"threshold": above, "vmin": above, "vmax": max(top, above + 1e-6),
                   "cmap": "hot", "symmetric_cbar": False}
    with warnings.catch_warnings():
        # A map with nothing above the threshold is drawn empty, as it should be.
        for message in _EMPTY_MAP_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        plotting.plot_stat_map(image, bg_img=background, figure=figure, title=plain(title),
                               draw_cross=False, black_bg=False, annotate=True,
                               **options, **cuts)
    return to_png(figure)


def _finite(image: nib.Nifti1Image) -> nib.Nifti1Image:
    """The image with +-inf at the largest finite magnitude and NaN at zero."""
    values = image.get_fdata()
    if np.isfinite(values).all():
        return image
    finite = values[np.isfinite(values)]
    end = float(np.abs(finite).max()) if finite.size else 1.0
    return nib.Nifti1Image(np.nan_to_num(values, nan=0.0, posinf=end, neginf=-end),
                           image.affine, image.header)


def _figure_size(cuts: dict) -> tuple[float, float]:
    return (5.0, 4.5) if cuts else (8.0, 3.0)


def _cuts(image: str | Path | nib.Nifti1Image) -> dict:
    """Three orthogonal cuts, or the one plane of an image a voxel thick along
    an axis (a single acquired slice), where the other two cuts would be empty."""
    image = nib.load(image) if isinstance(image, str | Path) else image
    thin = [axis for axis, size in enumerate(image.shape[:3]) if size == 1]
    if len(thin) != 1:
        return {}
    # The world coordinate of the plane along the image's (near-)axis-aligned axis.
    world = nib.affines.apply_affine(image.affine, np.zeros(3))
    axis = int(np.argmax(np.abs(image.affine[:3, thin[0]])))
    return {"display_mode": "xyz"[axis], "cut_coords": [float(world[axis])]}


def is_accuracy_map(image: str | Path | nib.Nifti1Image) -> bool:
    """Whether every value of the map lies in [0, 1] (accuracies, with 0 outside the mask)."""
    values = (nib.load(image) if isinstance(image, str | Path) else image).get_fdata()
    finite = values[np.isfinite(values)]
    return finite.size > 0 and finite.min() >= 0 and finite.max() <= 1


def mask_map(mask: str | Path | nib.Nifti1Image, title: str,
             background: str | Path | nib.Nifti1Image | None = None) -> bytes:
    """A mask outlined in three orthogonal cuts (``nilearn.plotting.plot_roi``)."""
    from nilearn import plotting

    cuts = _cuts(mask)
    figure = new_figure(*_figure_size(cuts))
    plotting.plot_roi(mask, bg_img=background, figure=figure, title=plain(title),
                      draw_cross=False, black_bg=False, alpha=0.6, cmap="autumn", **cuts)
    return to_png(figure)
