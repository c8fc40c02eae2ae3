"""Results: per-pair fold scores, the scores and summary tables, weight maps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
import pandas as pd

from nidecode.stats import group_test, multiclass_vote

_PAIR_ARRAYS = ("folds", "accuracy", "n_train", "n_test", "coef", "test_scans", "decision",
                "balanced_accuracy", "roc_auc", "pattern")
_METRIC_PREFIX = "metric_"
SCORE_COLUMNS = ["subject", "class_a", "class_b", "test_a", "test_b", "fold", "accuracy",
                 "n_train", "n_test"]
# The scores of class_a are those of test scans of test_a (the same category
# unless cross-decoding); likewise class_b.
_TEST_COLUMNS = ["test_a", "test_b"]
# Metrics whose chance is 0.5 whatever the class sizes (accuracy's is the design's).
OTHER_METRICS = ("balanced_accuracy", "roc_auc")
GROUP_COLUMNS = ["class_a", "class_b", "mean_accuracy", "chance", "t", "p_value", "n_subjects"]


@dataclass(frozen=True)
class PairResult:
    """Cross-validated scores of one subject x pair (class_a < class_b)."""

    subject: str
    class_a: str
    class_b: str
    folds: np.ndarray  # fold ids (held-out runs for leave-one-run-out)
    accuracy: np.ndarray
    n_train: np.ndarray
    n_test: np.ndarray
    coef: np.ndarray  # (n_folds, n_voxels); positive favours class_b
    # Leave-one-run-out only: decision values of every categorised scan of
    # the held-out runs (indices into the subject's scans), for multiclass.
    test_scans: np.ndarray
    decision: np.ndarray
    balanced_accuracy: np.ndarray  # per fold
    roc_auc: np.ndarray  # per fold; NaN for a fold whose test scans hold one class
    pattern: np.ndarray  # (n_voxels,): Haufe pattern of the fold-mean weights
    # The categories tested as class_a and class_b: the pair itself, or
    # other categories (cross-decoding); "" for "the pair itself".
    test_a: str = ""
    test_b: str = ""

    def __post_init__(self) -> None:
        if not self.test_a:
            object.__setattr__(self, "test_a", self.class_a)
            object.__setattr__(self, "test_b", self.class_b)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.subject, self.class_a, self.class_b)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The result as named arrays (for ``numpy.savez``)."""
        return {**{name: getattr(self, name) for name in _PAIR_ARRAYS},
                "test_pair": np.array([self.test_a, self.test_b])}

    @classmethod
    def from_arrays(cls, key: tuple[str, ...], arrays) -> PairResult:
        """Inverse of :meth:`to_arrays` (a part saved before cross-decoding: its own pair)."""
        test_pair = [str(name) for name in arrays["test_pair"]] if "test_pair" in arrays else []
        return cls(*key, *(np.asarray(arrays[name]) for name in _PAIR_ARRAYS), *test_pair)


@dataclass(frozen=True)
class SphereScores:
    """Searchlight accuracies of a batch of spheres, per fold.

    ``key`` is (subject, class_a, class_b, batch number).
    """

    key: tuple[str, ...]
    accuracy: np.ndarray  # (n_spheres, n_folds)
    folds: np.ndarray
    # The other metrics chosen (``--scoring``): name -> (n_spheres, n_folds).
    metrics: dict[str, np.ndarray] = field(default_factory=dict)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The result as named arrays (for ``numpy.savez``)."""
        return {"accuracy": self.accuracy, "folds": self.folds,
                **{_METRIC_PREFIX + name: values for name, values in self.metrics.items()}}

    @classmethod
    def from_arrays(cls, key: tuple[str, ...], arrays) -> SphereScores:
        """Inverse of :meth:`to_arrays`."""
        metrics = {name[len(_METRIC_PREFIX):]: np.asarray(arrays[name]) for name in arrays
                   if name.startswith(_METRIC_PREFIX)}
        return cls(key, np.asarray(arrays["accuracy"]), np.asarray(arrays["folds"]), metrics)

    def metric(self, name: str) -> np.ndarray:
        """Fold scores of one metric (accuracy or one of :attr:`metrics`)."""
        return self.accuracy if name == "accuracy" else self.metrics[name]


@dataclass(frozen=True)
class PermutationScores:
    """Accuracies of one subject x pair under relabellings of its scans.

    ``key`` is (subject, class_a, class_b, chunk number); ``indices`` the
    relabellings (-1: the true labels); ``accuracy`` has one row per index:
    the fold accuracies (ROI) or the sphere accuracies (searchlight).
    ``metrics`` (ROI): the other metrics chosen, name -> fold scores of the
    same shape as ``accuracy``.
    """

    key: tuple[str, ...]
    indices: np.ndarray
    accuracy: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The result as named arrays (for ``numpy.savez``)."""
        return {"indices": self.indices, "accuracy": self.accuracy,
                **{_METRIC_PREFIX + name: values for name, values in self.metrics.items()}}

    @classmethod
    def from_arrays(cls, key: tuple[str, ...], arrays) -> PermutationScores:
        """Inverse of :meth:`to_arrays`."""
        metrics = {name[len(_METRIC_PREFIX):]: np.asarray(arrays[name]) for name in arrays
                   if name.startswith(_METRIC_PREFIX)}
        return cls(key, np.asarray(arrays["indices"]), np.asarray(arrays["accuracy"]), metrics)


def scores_table(results: Iterable[PairResult],
                 chance: Mapping[tuple[str, str, str], np.ndarray] | None = None,
                 metrics: Sequence[str] = ("accuracy",)) -> pd.DataFrame:
    """One row per subject x pair x fold, sorted, with :data:`SCORE_COLUMNS`.

    ``class_a, class_b`` is the training pair; ``test_a, test_b`` the
    categories whose scans were tested as them (the pair itself, or the test
    pair of cross-decoding).

    With ``chance`` (per result key, one value per fold, e.g.
    :func:`nidecode.analyses.plan.majority_rates`), a ``chance`` column too.
    Each metric of ``metrics`` besides accuracy (always there) adds its column
    after ``accuracy`` (``roc_auc`` empty for a fold of one class).
    """
    others = [metric for metric in metrics if metric != "accuracy"]
    results = list(results)
    if not results:
        columns = SCORE_COLUMNS[:7] + others + SCORE_COLUMNS[7:]
        return pd.DataFrame(columns=columns + ([] if chance is None else ["chance"]))
    # Built column by column for all pairs at once: a frame per pair cost a
    # millisecond each in the client.
    n_folds = [len(result.folds) for result in results]

    def per_pair(name: str) -> np.ndarray:
        return np.repeat(np.array([getattr(result, name) for result in results]), n_folds)

    def per_fold(name: str) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(result, name)) for result in results])

    table = pd.DataFrame({
        **{name: per_pair(name) for name in ("subject", "class_a", "class_b", "test_a",
                                             "test_b")},
        "fold": per_fold("folds"),
        **{name: per_fold(name) for name in ("accuracy", *others, "n_train", "n_test")},
        **({} if chance is None else {"chance": np.concatenate([chance[result.key]
                                                                for result in results])})})
    return table.sort_values(["subject", "class_a", "class_b", "fold"], ignore_index=True)


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of the fold scores per subject and pair.

    The pair's ``test_a, test_b`` columns are kept when ``scores`` has them.

    ``mean_accuracy``, ``std_accuracy``, ``n_folds``, then ``mean_<metric>``
    and ``std_<metric>`` of every other metric column of ``scores``
    (``balanced_accuracy``, ``roc_auc``: folds without a value are left out).
    When ``scores`` has a ``chance`` column (per fold), its fold mean is the
    pair's ``chance`` column: the level the mean accuracy is tested against.
    """
    pair = ["subject", "class_a", "class_b"] + [name for name in _TEST_COLUMNS
                                                if name in scores]
    grouped = scores.groupby(pair, sort=True)
    summary = grouped["accuracy"].agg(mean_accuracy="mean", std_accuracy="std",
                                      n_folds="count")
    for metric in _other_metrics(scores.columns):
        summary[f"mean_{metric}"] = grouped[metric].mean()
        summary[f"std_{metric}"] = grouped[metric].std()
    if "chance" in scores:
        summary["chance"] = grouped["chance"].mean()
    return summary.reset_index()


def _other_metrics(columns: Iterable[str], prefix: str = "") -> list[str]:
    """The metrics besides accuracy that a table has columns ``{prefix}{metric}`` of."""
    return [metric for metric in OTHER_METRICS if f"{prefix}{metric}" in set(columns)]


def accuracy_matrix(summary: pd.DataFrame) -> pd.DataFrame:
    """Pairs as rows, subjects as columns (and their mean): a table to print.

    A cross-decoded pair is named with the pair it was tested on.

    When the summary's ``chance`` differs between pairs or subjects, a last
    column ``chance`` holds each pair's mean chance over its subjects.
    """
    pair = summary["class_a"] + " vs " + summary["class_b"]
    if set(_TEST_COLUMNS) <= set(summary.columns):
        crossed = (summary["test_a"] != summary["class_a"]) | (
            summary["test_b"] != summary["class_b"])
        pair = pair.where(~crossed, pair + " (tested on " + summary["test_a"] + " vs "
                          + summary["test_b"] + ")")
    table = summary.assign(pair=pair)
    matrix = table.pivot(index="pair", columns="subject", values="mean_accuracy")
    if matrix.shape[1] > 1:
        matrix["mean"] = matrix.mean(axis=1)
    if "chance" in table and table["chance"].nunique() > 1:
        matrix["chance"] = table.groupby("pair")["chance"].mean()
    matrix.columns.name = None
    return matrix


def common_chance(summary: pd.DataFrame, default: float = 0.5) -> float | None:
    """The chance level shared by every subject x pair, or ``None`` when it differs.

    A summary without a ``chance`` column (older runs) has ``default``.
    """
    if "chance" not in summary or summary.empty:
        return default
    values = summary["chance"].to_numpy(dtype=float)
    return float(values[0]) if np.allclose(values, values[0], rtol=0, atol=1e-12) else None


def multiclass_predictions(results: Sequence[PairResult], n_scans: int,
                           classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-one multiclass predictions of one subject from its pairwise results.

    Every scan held out under leave-one-run-out gets a decision value from
    the classifier of every pair; their votes (as scikit-learn's ``SVC``
    counts them) predict its category.

    Parameters
    ----------
    results : sequence of PairResult
        Every pair of ``classes``, of one subject.
    n_scans : int
        Scans of the subject.
    classes : sequence of str

    Returns
    -------
    scans : numpy.ndarray of int
        The scans predicted (every categorised scan).
    predicted : numpy.ndarray of str
    """
    decisions = {}
    for result in results:
        values = np.full(n_scans, np.nan)
        values[result.test_scans] = result.decision
        decisions[(result.class_a, result.class_b)] = values
    scans = np.flatnonzero(np.all([~np.isnan(values) for values in decisions.values()],
                                  axis=0))
    predicted = multiclass_vote({pair: values[scans] for pair, values in decisions.items()},
                                classes)
    return scans, predicted


def group_table(summary: pd.DataFrame, chance: float = 0.5) -> pd.DataFrame:
    """Per pair, a one-sided t-test across subjects of their score minus its chance.

    Accuracy: each subject's chance is the summary's ``chance`` column when
    there is one (see :func:`summary_table`), else ``chance``. Every other
    metric the summary has (``mean_balanced_accuracy``, ``mean_roc_auc``) is
    tested against 0.5, its chance whatever the class sizes. A pair that
    fewer than two subjects have gets a row with its ``n_subjects`` and no
    ``t`` or ``p_value`` (NaN, an empty cell in CSV): a t-test needs two subjects.

    Returns
    -------
    pandas.DataFrame
        ``class_a, class_b, mean_accuracy, chance`` (mean over subjects),
        ``t, p_value, n_subjects``, then per other metric ``mean_<metric>,
        chance_<metric>, t_<metric>, p_value_<metric>``.
    """
    others = _other_metrics(summary.columns, "mean_")
    rows = []
    for (class_a, class_b), pair in summary.groupby(["class_a", "class_b"], sort=True):
        chances = pair["chance"].to_numpy(dtype=float) if "chance" in pair else np.full(
            len(pair), chance)
        test = _pair_test(pair["mean_accuracy"].to_numpy(dtype=float), chances)
        row = {"class_a": class_a, "class_b": class_b, "mean_accuracy": test["mean"],
               "chance": test["chance"], "t": test["t"], "p_value": test["p_value"],
               "n_subjects": test["n"]}
        for metric in others:
            values = pair[f"mean_{metric}"].to_numpy(dtype=float)
            values = values[~np.isnan(values)]  # a subject without a value is left out
            test = _pair_test(values, np.full(len(values), 0.5))
            row.update({f"mean_{metric}": test["mean"], f"chance_{metric}": 0.5,
                        f"t_{metric}": test["t"], f"p_value_{metric}": test["p_value"]})
        rows.append(row)
    columns = GROUP_COLUMNS + [f"{what}_{metric}" for metric in others
                               for what in ("mean", "chance", "t", "p_value")]
    return pd.DataFrame(rows, columns=columns)


def _pair_test(values: np.ndarray, chances: np.ndarray) -> dict:
    """:func:`group_test` of one pair; no t or p-value below two subjects."""
    if len(values) < 2:
        return {"mean": float(values.mean()) if len(values) else np.nan,
                "chance": float(chances.mean()) if len(chances) else np.nan,
                "t": np.nan, "p_value": np.nan, "n": len(values)}
    return group_test(values, chances)


def to_nifti(values: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """Put one value per mask voxel back on the subject's grid (zero outside).

    Equivalent to ``NiftiMasker(mask_img).inverse_transform(values)``: mask
    voxels are in C order, the columns of the stored time series. Values of
    shape (n_voxels, n) give a 4D image of n volumes.
    """
    volume = np.zeros(mask.shape + np.shape(values)[1:], dtype=np.float32)
    volume[mask] = values
    return nib.Nifti1Image(volume, affine)


def weight_map(result: PairResult, mask: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """The fold-mean SVM weights of one pair as a NIfTI image."""
    return to_nifti(result.coef.mean(axis=0), mask, affine)


def pattern_map(result: PairResult, mask: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """The activation pattern of one pair's fold-mean weights as a NIfTI image.

    ``Cov(X) w / Var(X w)`` (Haufe et al. 2014) on the pair's scans, computed
    by the worker (see :func:`nidecode.stats.haufe_pattern`).
    """
    return to_nifti(result.pattern, mask, affine)


def multiclass_balanced_accuracy(true: np.ndarray, predicted: np.ndarray) -> float:
    """Balanced accuracy of multiclass predictions: the mean recall over the true classes."""
    classes = np.unique(true)
    return float(np.mean([np.mean(predicted[true == name] == name) for name in classes]))
