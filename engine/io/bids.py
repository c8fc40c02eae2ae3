"""Read a BIDS dataset: the runs of a task, their repetition time, events and confounds.

The layout is parsed directly, not with pybids. We need a handful of BIDS
rules: file names as ``key-value`` entities plus a suffix, runs ordered by
their ``run`` entity, and the inheritance principle for sidecars and events
(a ``task-X_bold.json`` at the root applies to every run of task X, a file
deeper in the tree overrides it). That is about a hundred lines, tested
here. pybids would bring SQLAlchemy, formulaic and the validator into every
worker's environment, index the whole dataset into a database before the
first query (minutes on large datasets) and still leave events-to-labels
to us. nilearn, already a dependency, loads fMRIPrep confounds.

Scan ``k`` of a run is acquired at ``k * TR`` seconds (BIDS onsets count
from the start of the first volume). Everything here checks its input and
raises :class:`~nidecode.errors.InputError` with a one-line message naming the
file, what is wrong and the fix.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nidecode.errors import InputError, first_line
from nidecode.io import REST

BOLD_EXTENSIONS = (".nii.gz", ".nii")
#: Entities fMRIPrep adds to the raw file name of a preprocessed series.
DERIVATIVE_ENTITIES = ("space", "res", "den", "desc")
#: Denoising strategies of ``nilearn.interfaces.fmriprep.load_confounds`` we accept
#: (``ica_aroma`` and ``tedana`` need other images than ``desc-preproc_bold``).
CONFOUND_STRATEGIES = ("motion", "wm_csf", "global_signal", "compcor", "high_pass", "scrub",
                       "non_steady_state")
_ENTITY = re.compile(r"^([a-zA-Z]+)-([a-zA-Z0-9]+)$")
_TIME_DECIMALS = 6  # times are compared to the microsecond: 3 * 0.7 s is 2.1 s


@dataclass(frozen=True)
class BidsRun:
    """One run of a task: its BOLD image, events file and repetition time."""

    subject: str  # "sub-01"
    session: str | None
    run: str | None  # the run entity as written ("01"), None if the name has none
    bold: Path
    events: Path
    repetition_time: float


def parse_name(path: str | Path) -> tuple[dict[str, str], str, str]:
    """Split a BIDS file name into its entities, suffix and extension.

    Examples
    --------
    >>> parse_name("sub-01_task-faces_run-2_bold.nii.gz")
    ({'sub': '01', 'task': 'faces', 'run': '2'}, 'bold', '.nii.gz')
    """
    name = Path(path).name
    stem, dot, extension = name.partition(".")
    *pairs, suffix = stem.split("_")
    entities = {}
    for pair in pairs:
        match = _ENTITY.match(pair)
        if match is None:
            return {}, "", ""  # not a BIDS name
        entities[match.group(1)] = match.group(2)
    return entities, suffix, dot + extension


def list_subjects(bids_root: str | Path, task: str, *, space: str | None = None,
                  derivatives: str | Path | None = None) -> list[str]:
    """Labels (``"01"``) of the subjects that have at least one run of ``task``."""
    data_root = _data_root(Path(bids_root), space, derivatives)
    task = str(task).removeprefix("task-")
    found = sorted(path.name[4:] for path in data_root.glob("sub-*") if path.is_dir()
                   and _bold_files(path, task, space))
    if not found:
        kind = f"space-{space}_desc-preproc_bold" if space else "bold"
        raise InputError(f"{data_root}: no subject has a {kind} image of task {task!r}; "
                         f"check --task{' and --space' if space else ''} against the file "
                         f"names")
    return found


def find_runs(bids_root: str | Path, subject: str, task: str, *, space: str | None = None,
              derivatives: str | Path | None = None) -> list[BidsRun]:
    """Every run of ``task`` for one subject, in session then run order.

    Parameters
    ----------
    bids_root : str or Path
        The raw BIDS dataset (holding ``dataset_description.json``, the
        ``sub-*`` folders and the events).
    subject : str
        Subject label, with or without ``sub-``.
    task : str
        Task label, with or without ``task-``.
    space : str, optional
        Use fMRIPrep's ``space-<space>_desc-preproc_bold`` images from the
        derivatives instead of the raw images.
    derivatives : str or Path, optional
        fMRIPrep's output folder; default ``bids_root/derivatives/fmriprep``.

    Returns
    -------
    list of BidsRun
        Ordered by session label, then by the numeric value of ``run``.
    """
    root = Path(bids_root)
    label, task = str(subject).removeprefix("sub-"), str(task).removeprefix("task-")
    data_root = _data_root(root, space, derivatives)
    subject_dir = data_root / f"sub-{label}"
    if not subject_dir.is_dir():
        raise InputError(f"{subject_dir}: no such subject folder; give a label of one of the "
                         f"sub-* folders of {data_root}")
    files = _bold_files(subject_dir, task, space)
    if not files:
        kind = f"space-{space}_desc-preproc_bold" if space else "bold"
        raise InputError(f"{subject_dir}: no {kind} image of task {task!r}; "
                         f"check --task, --space and the file names")
    keyed = {}
    for path in files:
        entities = parse_name(path)[0]
        key = (entities.get("ses", ""), _run_number(entities.get("run"), path))
        if key in keyed:
            raise InputError(f"{path}: same session and run as {keyed[key]}; keep one BOLD "
                             f"image per run (e.g. move other acq-/echo- variants away)")
        keyed[key] = path
    runs = []
    for key in sorted(keyed):
        path = keyed[key]
        entities = parse_name(path)[0]
        runs.append(BidsRun(subject=f"sub-{label}", session=entities.get("ses"),
                            run=entities.get("run"), bold=path,
                            events=_find_events(root, data_root, path),
                            repetition_time=read_repetition_time(path, root, data_root)))
    return runs


def read_repetition_time(bold: str | Path, bids_root: str | Path,
                         data_root: str | Path | None = None) -> float:
    """``RepetitionTime`` of a BOLD image from its sidecars, by BIDS inheritance.

    Sidecars ``*_bold.json`` whose entities are a subset of the image's are
    merged from the dataset root down to the image's folder, deeper and
    more specific files overriding. For a derivative image the raw
    dataset's sidecars come first, then the derivative's own.
    """
    bold = Path(bold)
    metadata = {}
    for sidecar in _inherited(bold, Path(bids_root), Path(data_root or bids_root), "bold",
                              ".json"):
        try:
            content = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(f"{sidecar}: not a readable JSON sidecar ({first_line(error)}); "
                             f"fix or remove the file") from None
        if not isinstance(content, dict):
            raise InputError(f"{sidecar}: a sidecar must hold a JSON object; fix the file")
        metadata.update(content)
    if "RepetitionTime" not in metadata:
        raise InputError(f"{bold}: no RepetitionTime in its JSON sidecars; add "
                         f"\"RepetitionTime\" (seconds) to a *_bold.json sidecar, e.g. "
                         f"task-{parse_name(bold)[0].get('task', 'X')}_bold.json at the root")
    value = metadata["RepetitionTime"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 \
            or not np.isfinite(value):
        raise InputError(f"{bold}: RepetitionTime is {value!r} in its sidecars; it must be a "
                         f"positive number of seconds")
    return float(value)


def read_events(path: str | Path) -> pd.DataFrame:
    """Read a BIDS ``events.tsv``: columns ``onset``, ``duration`` (float), ``trial_type``.

    Rows whose ``trial_type`` is ``n/a`` or empty are dropped (they label no
    scan); other columns are ignored.

    Parameters
    ----------
    path : str or Path
        Tab-separated file with a header holding at least ``onset``,
        ``duration`` and ``trial_type``.

    Returns
    -------
    pandas.DataFrame
        One row per event, in file order; ``onset`` finite, ``duration``
        finite and non-negative, ``trial_type`` a non-empty string.
    """
    try:
        # header=None: a row longer than the header is an error, not a shift
        # of the columns into an index as pandas would infer.
        table = pd.read_csv(path, sep="\t", header=None, dtype=str, na_filter=False,
                            quoting=3, encoding="utf-8-sig", engine="c")
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty events file; give a header 'onset duration "
                         f"trial_type' (tab-separated) and one row per event") from None
    except (OSError, ValueError) as error:  # ParserError and UnicodeDecodeError are ValueErrors
        raise InputError(f"{path}: cannot read events ({first_line(error)}); expected a "
                         f"tab-separated table with columns onset, duration, trial_type") from None
    table.columns = [str(column).strip() for column in table.iloc[0].fillna("")]
    table = table.iloc[1:].fillna("")
    twice = table.columns[table.columns.duplicated()]
    if len(twice):
        raise InputError(f"{path}: column {twice[0]!r} appears twice in the header; keep one")
    for column in ("onset", "duration", "trial_type"):
        if column not in table.columns:
            raise InputError(f"{path}: no {column!r} column (header is "
                             f"{' '.join(table.columns)!r}); BIDS events need tab-separated "
                             f"columns onset, duration and trial_type")
    onset = _seconds(table, "onset", path)
    duration = _seconds(table, "duration", path)
    bad = np.flatnonzero(duration < 0)
    if bad.size:
        raise InputError(f"{path}: row {bad[0] + 2} has duration {duration[bad[0]]:g}; "
                         f"durations must be zero or positive")
    trial_type = table["trial_type"].astype(str).str.strip().to_numpy()
    keep = (trial_type != "n/a") & (trial_type != "")
    return pd.DataFrame({"onset": onset[keep], "duration": duration[keep],
                         "trial_type": trial_type[keep].astype(str)})


def events_to_labels(events: pd.DataFrame, n_scans: int, repetition_time: float,
                     hrf_shift: float = 0.0, source: str | Path = "events") -> np.ndarray:
    """Label each scan with the trial type of the event it falls in, ``rest`` otherwise.

    Scan ``k`` takes the ``trial_type`` of the event whose interval
    ``[onset, onset + duration)`` contains ``k * TR - hrf_shift``: with a
    shift of 5 s, a scan is labelled by what was shown 5 s before it was
    acquired. Times are compared to the microsecond, so float rounding
    (``3 * 0.7 = 2.0999...``) does not move a boundary. Zero-length events
    label no scan; events of one trial type may overlap.

    Parameters
    ----------
    events : pandas.DataFrame
        As returned by :func:`read_events`.
    n_scans : int
        Scans of the run.
    repetition_time : float
        TR in seconds.
    hrf_shift : float
        Seconds subtracted from each scan's acquisition time.
    source : str or Path
        The events file, named in error messages.

    Returns
    -------
    numpy.ndarray of str, shape (n_scans,)

    Raises
    ------
    InputError
        If a scan falls in events of two different trial types.
    """
    times = np.round(np.arange(n_scans) * repetition_time - hrf_shift, _TIME_DECIMALS)
    onsets = np.round(events["onset"].to_numpy(dtype=float), _TIME_DECIMALS)
    ends = np.round(events["onset"].to_numpy(dtype=float)
                    + events["duration"].to_numpy(dtype=float), _TIME_DECIMALS)
    first = np.searchsorted(times, onsets, side="left")
    stop = np.searchsorted(times, ends, side="left")
    types = events["trial_type"].to_numpy(dtype=str)
    labels = np.full(n_scans, REST, dtype=object)
    covered_by = np.full(n_scans, -1)
    for index in np.argsort(types, kind="stable"):
        scans = np.arange(first[index], stop[index])
        clash = scans[(covered_by[scans] >= 0) & (labels[scans] != types[index])]
        if clash.size:
            other = covered_by[clash[0]]
            raise InputError(f"{source}: scan {clash[0]} (at {times[clash[0]]:g} s) falls in "
                             f"the {str(types[other])!r} event at {onsets[other]:g} s and "
                             f"the {str(types[index])!r} event at {onsets[index]:g} s; events of "
                             f"different trial types must not overlap")
        labels[scans] = types[index]
        covered_by[scans] = index
    return labels.astype(str)


def load_run_confounds(bold: str | Path,
                       strategy: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """fMRIPrep confounds of one run, through nilearn's ``load_confounds``.

    Parameters
    ----------
    bold : str or Path
        An fMRIPrep ``*_desc-preproc_bold.nii.gz``; its
        ``*_desc-confounds_timeseries.tsv`` must sit beside it.
    strategy : sequence of str
        Noise components, e.g. ``("motion", "wm_csf")``, with nilearn's
        defaults for each (``motion`` is the 24-parameter model).

    Returns
    -------
    confounds : numpy.ndarray, shape (n_scans, n_confounds)
        Demeaned regressors.
    keep : numpy.ndarray of bool, shape (n_scans,), or None
        Scans to keep (False: non-steady-state or scrubbed volumes); None
        when every scan is kept.
    """
    from nilearn.interfaces.fmriprep import load_confounds

    strategy = check_confounds(strategy)
    try:
        with warnings.catch_warnings():
            # Advice about strategies check_confounds has already settled.
            warnings.filterwarnings("ignore", message="Non-steady state volumes are always "
                                    "detected", category=UserWarning)
            table, sample_mask = load_confounds(str(bold), strategy=strategy)
    except Exception as error:  # nilearn raises ValueError and its own exception types
        raise InputError(f"{bold}: cannot load the confounds {','.join(strategy)} "
                         f"({first_line(error)}); fMRIPrep's desc-confounds_timeseries.tsv "
                         f"must sit beside the image and hold those columns") from None
    values = table.to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise InputError(f"{bold}: the confounds {','.join(strategy)} hold n/a values past the "
                         f"first scan; fix the desc-confounds_timeseries.tsv")
    if sample_mask is None:
        return values, None
    keep = np.zeros(len(values), dtype=bool)
    keep[np.asarray(sample_mask, dtype=int)] = True
    return values, keep


def check_confounds(strategy: Sequence[str]) -> tuple[str, ...]:
    """Check the names of the noise components; return them as a tuple."""
    strategy = tuple(strategy)
    unknown = [name for name in strategy if name not in CONFOUND_STRATEGIES]
    if unknown or not strategy:
        raise InputError(f"--confounds {','.join(strategy)}: choose among "
                         f"{', '.join(CONFOUND_STRATEGIES)} (e.g. motion,wm_csf)")
    return strategy


def _data_root(root: Path, space: str | None, derivatives: str | Path | None) -> Path:
    if not root.is_dir():
        raise InputError(f"{root}: no such BIDS dataset folder; give the folder holding "
                         f"dataset_description.json and the sub-* folders")
    if space is None:
        return root
    data_root = Path(derivatives) if derivatives is not None else root / "derivatives" / "fmriprep"
    if not data_root.is_dir():
        raise InputError(f"{data_root}: no fMRIPrep derivatives folder; --space reads "
                         f"space-{space}_desc-preproc_bold images from fMRIPrep's output, put it "
                         f"there or drop --space to use the raw images")
    return data_root


def _bold_files(subject_dir: Path, task: str, space: str | None) -> list[Path]:
    """BOLD images of a task under a subject folder (``func/`` or ``ses-*/func/``)."""
    found = []
    for folder in (subject_dir / "func", *sorted(subject_dir.glob("ses-*/func"))):
        for path in sorted(folder.glob("sub-*_bold.nii*")) if folder.is_dir() else ():
            entities, suffix, extension = parse_name(path)
            if suffix != "bold" or extension not in BOLD_EXTENSIONS:
                continue
            if entities.get("task") != task or entities.get("sub") != subject_dir.name[4:]:
                continue
            if space is None and not any(key in entities for key in DERIVATIVE_ENTITIES):
                found.append(path)
            elif (space is not None and entities.get("space") == space
                  and entities.get("desc") == "preproc"):
                found.append(path)
    return found


def _run_number(run: str | None, path: Path) -> int:
    if run is None:
        return -1
    if not run.isdigit():
        raise InputError(f"{path}: run entity {run!r} is not a number; BIDS run labels are "
                         f"non-negative integers (run-1, run-02)")
    return int(run)


def _find_events(root: Path, data_root: Path, bold: Path) -> Path:
    candidates = _inherited(bold, root, data_root, "events", ".tsv")
    if not candidates:
        raw = "_".join(f"{key}-{value}" for key, value in _raw_entities(bold).items())
        raise InputError(f"{bold}: no events file; add {raw}_events.tsv beside the raw image "
                         f"(or task-{parse_name(bold)[0].get('task')}_events.tsv at the root)")
    return candidates[-1]


def _inherited(bold: Path, root: Path, data_root: Path, suffix: str,
               extension: str) -> list[Path]:
    """Files of ``suffix`` that apply to ``bold`` by inheritance, least specific first.

    The raw dataset is searched with the image's raw entities, then (for a
    derivative image) the derivative folder with all its entities.
    """
    relative = bold.parent.relative_to(data_root)
    trees = [(root, _raw_entities(bold))]
    if data_root != root:
        trees.append((data_root, parse_name(bold)[0]))
    found = []
    for tree, entities in trees:
        folders = [tree, *(tree / Path(*relative.parts[:depth])
                           for depth in range(1, len(relative.parts) + 1))]
        for folder in folders:
            applicable = []
            for candidate in sorted(folder.glob(f"*_{suffix}{extension}")) + sorted(
                    folder.glob(f"{suffix}{extension}")):
                names, candidate_suffix, candidate_extension = parse_name(candidate)
                if (candidate_suffix == suffix and candidate_extension == extension
                        and all(entities.get(key) == value for key, value in names.items())):
                    applicable.append((len(names), candidate))
            found += [candidate for _, candidate in sorted(applicable)]
    return found


def _raw_entities(bold: Path) -> dict[str, str]:
    return {key: value for key, value in parse_name(bold)[0].items()
            if key not in DERIVATIVE_ENTITIES}


def _seconds(table: pd.DataFrame, column: str, path: str | Path) -> np.ndarray:
    text = table[column].astype(str).str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise InputError(f"{path}: row {bad[0] + 2} has {column} {text.iloc[bad[0]]!r}; "
                         f"{column} must be a number of seconds")
    return values

