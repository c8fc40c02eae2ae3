"""Assembling the report: one section per kind of result found in the output directory."""

from __future__ import annotations

import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from nidecode import fs, store
from nidecode._validation import CLASSIFIERS, METRICS
from nidecode.errors import InputError
from nidecode.io.haxby import read_shape
from nidecode.outdir import GROUP_CLUSTERS, GROUP_DIRECTORY, MANIFEST, write_atomic
from nidecode.report import figures
from nidecode.report.html import (
    Html,
    escape,
    figure,
    format_p,
    format_value,
    key_values,
    page,
    table,
    tag,
)
from nidecode.report.inputs import (
    RunResults,
    read_bench,
    read_image_option,
    read_map,
    read_results,
    read_table,
)
from nidecode.results import common_chance

REPORT = "report.html"
CHANCE = 0.5
ALPHA = 0.05


def write_report(out_dir: str | Path, *, anat: str | Path | None = None,
                 mask: str | Path | None = None, bench_dir: str | Path | None = None,
                 max_figures: int = 12) -> Path:
    """Write ``out_dir/report.html``: a self-contained page of a run's results.

    Parameters
    ----------
    out_dir : str or Path
        The output directory of ``nidecode decode``; it must hold ``run.json``
        and ``summary.csv``. Shown when present: ``permutations/pvalues.csv``
        (``subject,class_a,class_b,accuracy,p_value,n_permutations``),
        ``group.csv`` (``class_a,class_b,mean_accuracy,t,p_value,n_subjects``
        and optionally ``chance``), ``summary.csv``'s ``chance``
        (drawn on the bars; 0.5 when absent), ``searchlight.csv``,
        ``multiclass/confusion_{subject}.csv`` (square counts, rows true,
        columns predicted, the first column the category names),
        ``weights/{subject}_{class_a}_vs_{class_b}.nii.gz`` and
        ``searchlight/*.nii.gz``.
    anat : str or Path, optional
        Background of the brain maps. Default: the NIfTI named by
        ``"background"`` in ``run.json`` if any (e.g. a mean EPI), else the maps
        are drawn alone. A 4D image is drawn as the mean of its volumes.
    mask : str or Path, optional
        A 3D mask image drawn with ``plot_roi``. Default: the first subject's
        mask read from the run's store, if that store is a local path that
        still exists.
    bench_dir : str or Path, optional
        A benchmark directory: its ``*.png`` scaling figures and a table of
        its ``bench.json`` are added.
    max_figures : int
        At most this many brain maps per kind (weights of the first subject,
        searchlight maps) and confusion matrices; the page says what is
        shown and where the rest is.

    Returns
    -------
    Path
        The report, written atomically (a reader never sees half a page).

    Examples
    --------
    >>> write_report("results", anat="mean_epi.nii.gz")  # doctest: +SKIP
    PosixPath('results/report.html')
    """
    if max_figures < 1:
        raise InputError(f"max_figures={max_figures}: show at least one figure per section")
    if fs.is_url(out_dir):
        # A run on object storage: its results (not its saved parts) copied here, the
        # page uploaded beside them in one PUT.
        with fs.local_folder(out_dir, skipped=("parts/",)) as local:
            page_path = write_report(local, anat=anat, mask=mask, bench_dir=bench_dir,
                                     max_figures=max_figures)
            return fs.put_atomic(str(fs.join(out_dir, REPORT)),
                                 lambda target: target.write_bytes(page_path.read_bytes()))
    # The images given are checked first: a bad one stops the report before any figure.
    background, background_note = _background(anat)
    mask_image = None if mask is None else read_image_option("--mask", mask, average=False)
    results = read_results(out_dir)
    if anat is None:
        background, background_note = _run_background(results.manifest, Path(out_dir))
    sections = [("parameters", "Parameters", _parameters(results.manifest))]
    if _is_loso(results.manifest) and results.summary is not None:
        sections.append(("design", "Leave-one-subject-out design", _loso_design(results)))
    elif results.manifest.get("design") and results.summary is not None:
        sections.append(("design", "Cross-decoding design", _cross_design(results)))
    elif results.manifest.get("design"):  # a searchlight run: no summary, its maps
        sections.append(("design", "Cross-decoding design", _searchlight_design(results)))
    if results.summary is not None:
        sections.append(("accuracy", "Accuracy", _accuracy(results)))
    if results.pvalues is not None:
        sections.append(("permutations", "Permutation tests", _permutations(results.pvalues)))
    if results.group is not None:
        sections.append(("group", "Group results", _group(results.group)))
    if results.confusions:
        sections.append(("confusion", "Confusion matrices",
                         _confusions(results.confusions, max_figures)))
    if results.weight_maps:
        sections.append(("weights", "Weight maps",
                         _weights(results, background, background_note, max_figures)))
    if results.searchlight_maps:
        sections.append(("searchlight", "Searchlight maps",
                         _searchlight(results, background, background_note, max_figures)))
    if (results.path / GROUP_DIRECTORY / MANIFEST).is_file():
        sections.append(("group-inference", "Group inference",
                         _group_inference(results.path / GROUP_DIRECTORY, background,
                                          background_note, max_figures)))
    mask_section = _mask(mask, mask_image, results, background)
    if mask_section is not None:
        sections.append(("mask", "Mask", mask_section))
    if bench_dir is not None:
        sections.append(("scaling", "Scaling", _scaling(bench_dir)))
    text = page(f"nidecode report: {results.path.resolve().name}", _header(results), sections,
                footer=f"Written by nidecode {_version()} on "
                       f"{datetime.datetime.now():%Y-%m-%d %H:%M} from "
                       f"{results.path.resolve()}.")
    return _write_atomic(results.path / REPORT, text)


# --- header and parameters ------------------------------------------------------------------


def _header(results: RunResults) -> list[Html]:
    summary, manifest = results.summary, results.manifest
    parameters = manifest.get("parameters", manifest.get("identity", {}))
    if summary is None:  # a searchlight run: its maps are the results
        subjects = manifest.get("identity", {}).get("subjects", {})
        return [tag("h1", "nidecode report"),
                tag("p", f"{results.path.resolve()}: "
                         f"{'cross-decoding ' if manifest.get('design') else ''}searchlight "
                         f"of {len(subjects)} subject(s), radius "
                         f"{format_value(parameters.get('radius', ''))} mm, "
                         f"{_cv_text(parameters.get('cv'))}, {_classifier_text(parameters)}, "
                         f"{len(results.searchlight_maps)} map(s).")]
    categories = sorted(set(summary["class_a"]) | set(summary["class_b"]))
    pairs = summary.groupby(["class_a", "class_b"])["mean_accuracy"].mean()
    best, worst = pairs.idxmax(), pairs.idxmin()
    lines = [tag("h1", "nidecode report"),
             tag("p", f"{results.path.resolve()}: {summary['subject'].nunique()} subject(s), "
                      f"{len(categories)} categories ({', '.join(categories)}), "
                      f"{len(pairs)} pair(s), {_cv_text(parameters.get('cv'))}, "
                      f"{_classifier_text(parameters)}."),
             tag("p", f"Mean accuracy {summary['mean_accuracy'].mean():.3f} over subjects and "
                      f"pairs ({_chance_text(results)})"
                      + (f"; highest {best[0]} vs {best[1]} ({pairs[best]:.3f}), lowest "
                         f"{worst[0]} vs {worst[1]} ({pairs[worst]:.3f})."
                         if round(pairs[best], 3) != round(pairs[worst], 3) else "."))]
    counts, timings = manifest.get("counts", {}), manifest.get("timings", {})
    cluster = manifest.get("cluster", {})
    if counts.get("fits") is not None and timings.get("total_s") is not None:
        lines.append(tag("p", f"{counts['fits']} {_classifier_name(parameters)} fits in "
                              f"{timings['total_s']:.1f} s on "
                              f"{cluster.get('n_workers', '?')} Dask worker(s)."))
    if manifest.get("status") != "complete":
        lines.append(tag("p", f"Run status: {manifest.get('status', 'unknown')}: the results "
                              f"may be incomplete.", class_="warning"))
    return lines


def _classifier_name(parameters: dict) -> str:
    """The classifier's short name (runs written before ``--classifier``: the SVM)."""
    return CLASSIFIERS.get(parameters.get("classifier", "svc"), "").split(" (")[0] or str(
        parameters.get("classifier"))


def _classifier_text(parameters: dict) -> str:
    """The classifier and its parameters, e.g. ``linear SVM (SVC(kernel='linear')), C = 1``."""
    classifier = parameters.get("classifier", "svc")
    text = CLASSIFIERS.get(classifier, str(classifier))
    if classifier in ("svc", "logreg"):
        return f"{text}, C = {format_value(parameters.get('C', ''))}"
    if classifier == "lda":
        return f"{text}, shrinkage {format_value(parameters.get('shrinkage', 'auto'))}"
    return text


def _cv_text(cv: object) -> str:
    if cv == "loso":
        return "leave-one-subject-out cross-validation (folds = subjects)"
    if cv == "none":
        return "no cross-validation (trained on every training scan, tested on every test scan)"
    if cv == "logo":
        return "leave-one-run-out cross-validation"
    if isinstance(cv, str) and cv.startswith("kfold:"):
        return f"{cv.split(':')[1]}-fold cross-validation (no shuffling)"
    return f"cross-validation {cv}"


def _parameters(manifest: dict) -> Html:
    parameters = dict(manifest.get("parameters", manifest.get("identity", {})))
    if isinstance(parameters.get("subjects"), dict):  # subject -> checksum: names suffice
        parameters["subjects"] = list(parameters["subjects"])
    tables = [key_values(parameters, "Run parameters")]
    for key, caption in [("counts", "Counts"), ("timings", "Timings (s)"),
                         ("cluster", "Cluster"), ("versions", "Versions")]:
        if isinstance(manifest.get(key), dict):
            tables.append(key_values(manifest[key], caption))
    shown = {"parameters", "identity", "counts", "timings", "cluster", "versions", "status"}
    others = {key: value for key, value in manifest.items() if key not in shown}
    if others:
        tables.append(key_values(others, "Other"))
    status = tag("p", f"Status: {manifest.get('status', 'unknown')} (from run.json).",
                 class_="note")
    return Html(status + tag("div", *tables, class_="grid"))


def _cross_design(results: RunResults) -> Html:
    """Cross-decoding: each training pair, the pair tested as it, its folds and accuracy."""
    summary = results.summary
    columns = ["subject", "class_a", "class_b", "test_a", "test_b", "n_folds", "mean_accuracy"]
    frame = summary[[column for column in columns if column in summary]].rename(columns={
        "class_a": "trained: class_a", "class_b": "trained: class_b",
        "test_a": "tested as class_a", "test_b": "tested as class_b"})
    note = tag("p", "Each classifier is trained on the scans of its training pair and tested "
                    "on the scans of its test pair, read as the training classes; a fold "
                    "trains on the other runs' training scans and tests on the held-out "
                    "run's test scans. Weight maps are named after the training pair.",
               class_="note")
    notes = results.manifest.get("notes") or []
    listed = [tag("ul", *(tag("li", text) for text in notes))] if notes else []
    return join_parts(note, table(frame, formats={"mean_accuracy": _three}), *listed)


def _searchlight_design(results: RunResults) -> Html:
    """Cross-decoding searchlight: each training pair and the pair tested as it (per
    subject with ``searchlight.csv``'s spheres and accuracies), and the plan's notes."""
    table_ = results.searchlight_table
    if table_ is not None and "test_a" in table_:
        columns = ["subject", "class_a", "class_b", "test_a", "test_b", "n_spheres",
                   "mean_accuracy", "peak_accuracy"]
        frame = table_[[column for column in columns if column in table_]]
    else:
        frame = pd.DataFrame([[*pair.get("train", []), *pair.get("test", [])]
                              for pair in results.manifest["design"]],
                             columns=["class_a", "class_b", "test_a", "test_b"])
    frame = frame.rename(columns={
        "class_a": "trained: class_a", "class_b": "trained: class_b",
        "test_a": "tested as class_a", "test_b": "tested as class_b"})
    note = tag("p", "Each sphere's classifier is trained on the scans of the training pair "
                    "and tested on the scans of the test pair, read as the training classes; "
                    "a fold trains on the other runs' training scans and tests on the "
                    "held-out run's test scans. Maps are named "
                    "{subject}_{class_a}_vs_{class_b}_on_{test_a}_vs_{test_b}.", class_="note")
    notes = results.manifest.get("notes") or []
    listed = [tag("ul", *(tag("li", text) for text in notes))] if notes else []
    return join_parts(note, table(frame, formats={"mean_accuracy": _three,
                                                  "peak_accuracy": _three}), *listed)


def _is_loso(manifest: dict) -> bool:
    design = manifest.get("design")
    return isinstance(design, dict) and design.get("cv") == "loso"


def _loso_design(results: RunResults) -> Html:
    """Leave one subject out: the folds are the subjects; each pair's score per held-out one."""
    design = results.manifest["design"]
    subjects = design.get("subjects", [])
    note = tag("p", f"Folds are subjects: each pair is trained on its scans of every subject "
                    f"but one and tested on the held-out subject's scans ({len(subjects)} "
                    f"subjects: {', '.join(map(str, subjects))}). The subject column reads "
                    f"'all'; the fold column names the held-out subject. The weight and "
                    f"pattern maps are those of the fit on every subject.", class_="note")
    parts = [note]
    scores_path = results.path / "scores.csv"
    if scores_path.is_file():
        scores = read_table(scores_path, ["class_a", "class_b", "accuracy"])
        scores["fold"] = pd.read_csv(scores_path, dtype={"fold": str},
                                     keep_default_na=False)["fold"]
        columns = [column for column in ("class_a", "class_b", "test_a", "test_b", "fold",
                                         "accuracy", "chance", "n_train", "n_test")
                   if column in scores]
        frame = scores[columns].rename(columns={"fold": "held-out subject"})
        parts.append(table(frame, formats={"accuracy": _three, "chance": _three}))
    notes = results.manifest.get("notes") or []
    if notes:
        parts.append(tag("ul", *(tag("li", text) for text in notes)))
    return join_parts(*parts)


# --- accuracy, permutations, group ----------------------------------------------------------


def _accuracy(results: RunResults) -> Html:
    summary = results.summary
    merged = summary
    if results.pvalues is not None:
        merged = summary.merge(results.pvalues[["subject", "class_a", "class_b", "p_value",
                                                "n_permutations"]],
                               on=["subject", "class_a", "class_b"], how="left")
    n_subjects = summary["subject"].nunique()
    chance = common_chance(summary, CHANCE)
    bars = figure(figures.accuracy_bars(summary, CHANCE),
                  "Cross-validated accuracy per pair: bars are the mean "
                  + ("over subjects, error bars the SD across subjects, dots the subjects"
                     if n_subjects > 1 else "over folds, error bars the SD across folds")
                  + (f"; dashed line: chance ({chance:g})." if chance is not None else
                     f"; dashed marks: the chance of each pair, mean over its subjects "
                     f"({_chance_text(results)})."), alt="accuracy per pair")
    note = tag("p", "Each cell: the mean accuracy over folds ± its SD"
                    + (" and the permutation p-value (not corrected for the number of subjects "
                       "and pairs)" if results.pvalues is not None else "") + ".",
               class_="note")
    long_table = table(merged, formats={"mean_accuracy": _three, "std_accuracy": _three,
                                        "chance": _three, "p_value": format_p})
    details = tag("details", tag("summary", f"All {len(merged)} rows (summary.csv"
                                 + (" with permutations/pvalues.csv)"
                                    if results.pvalues is not None else ")")), long_table)
    return join_parts(bars, note, _accuracy_matrix(merged), details)


def _accuracy_matrix(merged: pd.DataFrame) -> Html:
    pairs = merged.assign(pair=merged["class_a"] + " vs " + merged["class_b"])
    subjects = sorted(pairs["subject"].unique())
    rows = []
    for pair, rows_of_pair in pairs.groupby("pair", sort=True):
        by_subject = rows_of_pair.set_index("subject")
        row: dict[str, object] = {"pair": pair}
        for subject in subjects:
            row[subject] = _accuracy_cell(by_subject.loc[subject]) if subject in \
                by_subject.index else Html("")
        if len(subjects) > 1:
            row["mean"] = Html(f"<b>{rows_of_pair['mean_accuracy'].mean():.3f}</b>")
        rows.append(row)
    frame = pd.DataFrame(rows)
    return table(frame, caption="Accuracy per pair (rows) and subject (columns)",
                 formats={column: escape for column in frame.columns}, right=frame.columns[1:])


def _accuracy_cell(row: pd.Series) -> Html:
    text = f"{row['mean_accuracy']:.3f} <small>± {row['std_accuracy']:.3f}</small>"
    if "p_value" in row and not pd.isna(row["p_value"]):
        text += f"<br><small>p = {format_p(row['p_value'])}</small>"
    return Html(text)


def _permutations(pvalues: pd.DataFrame) -> Html:
    counts = sorted(pvalues["n_permutations"].unique())
    smallest = 1 / (1 + max(counts))
    n_significant = int((pvalues["p_value"] <= ALPHA).sum())
    note = tag("p", f"Accuracy against {', '.join(str(int(n)) for n in counts)} relabellings "
                    f"permuted within runs: p = (1 + #(null ≥ observed)) / (1 + N), at least "
                    f"{format_p(smallest)}. {n_significant} of {len(pvalues)} subject × pair "
                    f"accuracies have p ≤ {ALPHA:g} (uncorrected).", class_="note")
    frame = pvalues[["subject", "class_a", "class_b", "accuracy", "p_value", "n_permutations"]]
    return join_parts(note, table(frame, formats={"accuracy": _three, "p_value": format_p},
                                  row_class=_significant))


def _group(group: pd.DataFrame) -> Html:
    against = ("each subject's chance of the pair (column chance: their mean)"
               if "chance" in group else f"chance ({CHANCE:g})")
    note = tag("p", f"One-sided one-sample t-test across subjects of the accuracy minus "
                    f"{against}; a pair of fewer than 2 subjects has no test; highlighted: "
                    f"p ≤ {ALPHA:g}.", class_="note")
    columns = ["class_a", "class_b", "mean_accuracy", "chance", "t", "p_value", "n_subjects"]
    frame = group[[column for column in columns if column in group]]
    parts = [note, table(frame, caption="accuracy",
                         formats={"mean_accuracy": _three, "chance": _three,
                                  "p_value": format_p, "t": _two},
                         row_class=_significant)]
    for metric in _group_metrics(group):
        parts.append(_group_metric(group, metric))
    return join_parts(*parts)


def _group_metrics(group: pd.DataFrame) -> list[str]:
    """The metrics besides accuracy that group.csv tests (``t_<metric>`` columns)."""
    return [metric for metric in METRICS if metric != "accuracy" and f"t_{metric}" in group]


def _group_metric(group: pd.DataFrame, metric: str) -> Html:
    """One metric's group tests as a table of their own (group.csv's ``*_<metric>`` columns)."""
    columns = {"class_a": "class_a", "class_b": "class_b", f"mean_{metric}": f"mean_{metric}",
               f"chance_{metric}": "chance", f"t_{metric}": "t",
               f"p_value_{metric}": "p_value"}
    frame = group[[column for column in columns if column in group]].rename(columns=columns)
    note = tag("p", f"{metric}: the same test of the {metric} minus its chance, "
                    f"{CHANCE:g} whatever the class sizes (subjects without a value left out).",
               class_="note")
    return join_parts(tag("h3", metric), note,
                      table(frame, caption=metric,
                            formats={f"mean_{metric}": _three, "chance": _three,
                                     "p_value": format_p, "t": _two},
                            row_class=_significant))


def _significant(row: pd.Series) -> str | None:
    return "significant" if row["p_value"] <= ALPHA else None  # NaN (no test): False


def _three(value: object) -> str:
    return "" if pd.isna(value) else f"{value:.3f}"


def _two(value: object) -> str:
    return "" if pd.isna(value) else f"{value:.2f}"


def _chance_text(results: RunResults) -> str:
    """The chance level of the summary's accuracies, in words."""
    chance = common_chance(results.summary, CHANCE)
    if chance is not None:
        return f"chance {chance:g}"
    values = results.summary["chance"]
    source = ("the permutation null mean"
              if results.manifest.get("identity", {}).get("command") == "permute"
              else "the majority-class rate of the test folds")
    return (f"chance: {source} of each subject and pair, {values.min():.3f} to "
            f"{values.max():.3f}")


# --- figures of matrices and maps -----------------------------------------------------------


def _confusions(confusions: dict[str, pd.DataFrame], max_figures: int) -> Html:
    shown = list(confusions)[:max_figures]
    parts = [tag("p", f"Multiclass predictions (one-vs-one votes) against the true category, "
                      f"rows true, columns predicted; colour: share of the true category. "
                      f"Shown: {len(shown)} of {len(confusions)} subject(s) "
                      f"(all in multiclass/).", class_="note")]
    matrices = []
    for subject in shown:
        counts = confusions[subject]
        accuracy = np.trace(counts.to_numpy()) / max(counts.to_numpy().sum(), 1)
        # Chance: the share of the most frequent true category (1 / n when balanced).
        chance = counts.to_numpy().sum(axis=1).max() / max(counts.to_numpy().sum(), 1)
        title = f"{subject}: accuracy {accuracy:.3f} (chance {chance:.3f})"
        matrices.append(figure(figures.confusion_matrix(counts, title), title))
    return join_parts(*parts, tag("div", *matrices, class_="grid"))


def _weights(results: RunResults, background, background_note: str, max_figures: int) -> Html:
    subject = sorted({key[0] for key in results.weight_maps})[0]
    keys = [key for key in results.weight_maps if key[0] == subject]
    shown = keys[:max_figures]
    n_subjects = len({key[0] for key in results.weight_maps})
    parameters = results.manifest.get("parameters", results.manifest.get("identity", {}))
    name = _classifier_name(parameters)
    if parameters.get("classifier") == "gnb":  # quadratic: its weights are a linear part
        name += " (the linear term of its log-probability ratio, docs/patterns.md)"
    parts = [tag("p", f"Fold-mean {name} weights of {subject}, {len(shown)} of its "
                      f"{len(keys)} pairs (all {len(results.weight_maps)} maps of "
                      f"{n_subjects} subject(s) are in weights/). Positive weights (red) "
                      f"favour the second category of the pair, negative ones (blue) the "
                      f"first. {background_note}", class_="note")]
    if results.pattern_maps:
        parts.append(tag("p", "Beside each weight map, its activation pattern (patterns/: "
                              "Cov(X) w / Var(Xw), Haufe et al. 2014), same colours. Weights "
                              "say how the classifier combines voxels (a voxel may weigh much "
                              "only to cancel noise elsewhere); patterns say where the "
                              "signal the classifier reads lies: interpret patterns, not "
                              "weights, as brain activity (docs/patterns.md).", class_="note"))
    maps = []
    for key in shown:
        _, class_a, class_b = key
        title = f"{subject}: {class_a} vs {class_b}"
        caption = f"{title} (red: {class_b}, blue: {class_a})"
        for kind, paths in (("weights", results.weight_maps),
                            ("pattern", results.pattern_maps)):
            if key in paths:
                maps.append(figure(figures.brain_map(read_map(paths[key]),
                                                     f"{title}, {kind}", background),
                                   f"{caption}, {kind}"))
    return join_parts(*parts, tag("div", *maps, class_="grid maps"))


def _searchlight(results: RunResults, background, background_note: str,
                 max_figures: int) -> Html:
    maps = results.searchlight_maps
    shown = maps[:max_figures]
    floor, floor_text = _searchlight_chance(results.searchlight_table)
    parts = [tag("p", f"Shown: {len(shown)} of {len(maps)} map(s) of searchlight/, in name "
                      f"order. Maps of accuracies (values in [0, 1]) show the voxels above "
                      f"{floor_text}; balanced accuracy and ROC AUC maps (named "
                      f"*_balanced_accuracy, *_roc_auc) those above their own chance, "
                      f"{CHANCE:g} whatever the class sizes; other maps all values. "
                      f"{background_note}", class_="note")]
    images = []
    for path in shown:
        image = read_map(path)
        metric = _map_metric(path)
        if metric is None and figures.is_accuracy_map(image):
            metric, above = "accuracy", floor
        else:
            above = None if metric is None else CHANCE
        png = figures.brain_map(image, path.name.removesuffix(".nii.gz"), background,
                                above=above)
        images.append(figure(png, f"searchlight/{path.name}"
                             + (f" ({metric} above {above:.3g})" if metric else "")))
    return join_parts(*parts, tag("div", *images, class_="grid maps"))


def _map_metric(path: Path) -> str | None:
    """``"balanced_accuracy"`` or ``"roc_auc"`` for a map of that metric (its name ends with
    the metric, a suffix no encoded label or subject can produce), else None."""
    stem = path.name.removesuffix(".nii.gz")
    return next((metric for metric in ("balanced_accuracy", "roc_auc")
                 if stem.endswith(f"_{metric}")), None)
# What each method of 'nidecode group' maps, and its words.
_INFERENCE = {"stelzer": ("mean", "mean accuracy in clusters with cluster-level p_fwe"),
              "tfce": ("tfce", "TFCE at voxels with p_fwe"),
              "prevalence": ("gamma", "prevalence bound gamma_0 where the global null's p_fwe")}


def _group_inference(directory: Path, background, background_note: str,
                     max_figures: int) -> Html:
    """``nidecode group``'s thresholded maps on the background and its cluster table."""
    import json

    from nidecode.outdir import inference_map_name

    try:
        methods = json.loads((directory / MANIFEST).read_text()).get("methods", {})
    except (OSError, ValueError, AttributeError):
        raise InputError(f"{directory / MANIFEST}: unreadable; run 'nidecode group' "
                         f"again") from None
    images, shown = [], 0
    for method, parameters in methods.items():
        statistic, words = _INFERENCE.get(method, (None, ""))
        for class_a, class_b in parameters.get("pairs", []) if statistic else []:
            if shown == max_figures:
                break
            names = [inference_map_name(class_a, class_b, method, name)
                     for name in (statistic, "p_fwe")]
            if not all((directory / name).is_file() for name in names):
                continue
            values, p_fwe = (read_map(directory / name) for name in names)
            kept = np.where(p_fwe.get_fdata() <= ALPHA, values.get_fdata(), 0.0)
            image = nib.Nifti1Image(kept.astype(np.float32), values.affine)
            png = figures.brain_map(image, f"{class_a} vs {class_b}: {method}", background,
                                    above=0.0)
            images.append(figure(png, f"group/{names[0]}: {words} ≤ {ALPHA:g}"))
            shown += 1
    parts = [tag("p", f"Group inference ('nidecode group'): {', '.join(methods)}; each map "
                      f"shows only what is family-wise significant at {ALPHA:g} (at most "
                      f"{max_figures} maps; all are in group/). {background_note}",
                 class_="note"), tag("div", *images, class_="grid maps")]
    clusters_path = directory / GROUP_CLUSTERS
    if clusters_path.is_file():
        clusters = read_table(clusters_path, ["class_a", "class_b", "cluster",
                                              "size_voxels", "size_mm3", "peak_x_mm",
                                              "peak_y_mm", "peak_z_mm", "peak_statistic",
                                              "p_fwe"])
        parts.append(table(clusters.rename(columns={"p_fwe": "p_value"}),
                           caption="Clusters (group/clusters.csv; p_value: family-wise)",
                           formats={"p_value": format_p, "peak_statistic": _three,
                                    "size_mm3": _two},
                           row_class=_significant))
    return join_parts(*parts)


def _searchlight_chance(table: pd.DataFrame | None) -> tuple[float, str]:
    """The level accuracy maps are drawn above, and its description."""
    chance = CHANCE if table is None else common_chance(table, CHANCE)
    if chance is not None:
        return chance, f"chance ({chance:g})"
    lowest = float(table["chance"].min())
    return lowest, (f"{lowest:.3f}, the lowest chance of the subjects and pairs (the "
                    f"majority-class rate of the test folds; each one's is in "
                    f"searchlight.csv)")


def _mask(mask: str | Path | None, image: nib.Nifti1Image | None, results: RunResults,
          background) -> Html | None:
    if image is not None:
        source = f"{mask}"
    else:
        store_path = str(results.manifest.get("identity", {}).get("store", ""))
        subjects = (results.summary["subject"].unique() if results.summary is not None
                    else list(results.manifest.get("identity", {}).get("subjects", {})))
        if not len(subjects):
            return None
        subject = sorted(subjects)[0]
        if ("://" in store_path or not store_path or not Path(store_path).exists()
                or subject not in store.list_subjects(store_path)):
            return None
        voxels, affine = store.read_geometry(store_path, subject)
        image = nib.Nifti1Image(voxels.astype(np.uint8), affine)
        source = f"the mask of {subject} in the store {store_path} ({int(voxels.sum())} voxels)"
    return figure(figures.mask_map(image, "mask", background), f"Mask: {source}.")


def _background(anat: str | Path | None) -> tuple[nib.Nifti1Image | None, str]:
    """The ``anat`` image given (a 4D one: the mean of its volumes) and its note."""
    if anat is None:
        return None, ""
    image = read_image_option("--anat", anat, average=True)
    shape = read_shape(anat)  # it loads: read_image_option checked
    averaged = len(shape) == 4 and shape[3] > 1
    return image, f"Background: {anat}" + (f" (mean of its {shape[3]} volumes)."
                                            if averaged else ".")


def _run_background(manifest: dict, out_dir: Path) -> tuple[str | None, str]:
    """The background ``run.json`` names (the first subject's mean EPI), if it exists."""
    named = manifest.get("background")
    if named:
        path = out_dir / named  # a relative name is inside the output directory
        if path.exists():
            return str(path), f"Background: {named} (the first subject's mean EPI, from " \
                              f"run.json)."
        return None, f"run.json names the background {named}, which is not found: maps are " \
                     f"drawn without background."
    return None, "No background image given: maps are drawn alone."


# --- benchmark ------------------------------------------------------------------------------


def _scaling(bench_dir: str | Path) -> Html:
    pngs, numbers = read_bench(bench_dir)
    parts = [tag("p", f"From {bench_dir}.", class_="note")]
    parts += [figure(png.read_bytes(), png.name) for png in pngs]
    if isinstance(numbers, list) and all(isinstance(row, dict) for row in numbers):
        parts.append(table(pd.DataFrame(numbers), caption="bench.json"))
    elif isinstance(numbers, dict):
        parts.append(key_values(numbers, "bench.json"))
    if not pngs and numbers is None:
        parts.append(tag("p", "The directory holds no figure and no bench.json.",
                         class_="warning"))
    return join_parts(*parts)


# --- helpers --------------------------------------------------------------------------------


def join_parts(*parts: Html) -> Html:
    """Concatenate HTML parts."""
    return Html("".join(escape(part) for part in parts))


def _write_atomic(target: Path, text: str) -> Path:
    # The mode of a new file under the umask (0644 under 022): a report is for sharing.
    return write_atomic(target, lambda path: path.write_text(text, encoding="utf-8"))


def _version() -> str:
    try:
        return version("nidecode")
    except PackageNotFoundError:
        return "(not installed)"
