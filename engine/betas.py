"""Trial-wise GLM betas (beta series): one beta map per trial, by LSA or LSS.

Pure functions: a run's masked signal, its events and its TR in; one row of
betas per trial, with its trial type, out. The model is nilearn's
``FirstLevelModel`` with its defaults (Glover HRF, cosine drifts above
0.01 Hz, AR(1) noise, signal scaled to percent of the voxel mean), run on
the masked array instead of an image, so that a run is read block by block
and never whole: the betas equal
``FirstLevelModel(t_r=TR, mask_img=mask).fit(run_img, events=...)
.compute_contrast(trial, output_type="effect_size")`` on the same voxels.

- **LSA** (least squares all; Rissman et al. 2004): one model per run with
  one regressor per trial.
- **LSS** (least squares separate; Mumford et al. 2012): one model per trial,
  with a regressor for that trial and one per trial type for all the other
  trials of that type. Less collinear than LSA for fast event-related designs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from nilearn.glm.first_level import make_first_level_design_matrix, mean_scaling, run_glm

from nidecode.errors import InputError

METHODS = ("lsa", "lss")
HRF_MODEL = "glover"
DRIFT_MODEL = "cosine"
HIGH_PASS = 0.01
NOISE_MODEL = "ar1"
_TARGET = "target"


def estimate_betas(signal: np.ndarray, events: pd.DataFrame, repetition_time: float,
                   method: str = "lsa", *, confounds: np.ndarray | None = None,
                   keep: np.ndarray | None = None,
                   source: str = "events") -> tuple[np.ndarray, np.ndarray]:
    """One beta map per trial of a run.

    Parameters
    ----------
    signal : numpy.ndarray, shape (n_scans, n_voxels)
        Masked, uncleaned signal of every scan of the run (scan ``k`` at
        ``k * repetition_time`` seconds).
    events : pandas.DataFrame
        Columns ``onset``, ``duration``, ``trial_type``; one trial per row.
    repetition_time : float
        TR in seconds.
    method : {"lsa", "lss"}
        Least squares all, or least squares separate.
    confounds : numpy.ndarray, shape (n_scans, n_confounds), optional
        Nuisance regressors added to every model.
    keep : numpy.ndarray of bool, shape (n_scans,), optional
        Scans the model is fitted on (as ``FirstLevelModel``'s
        ``sample_masks``); all by default.
    source : str
        The events file, named in error messages.

    Returns
    -------
    betas : numpy.ndarray, shape (n_trials, n_voxels), float32
        Effect sizes in percent signal change, trials in onset order.
    trial_types : numpy.ndarray of str, shape (n_trials,)
    """
    check_method(method)
    n_scans = len(signal)
    keep = np.ones(n_scans, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    trials = events.sort_values("onset", kind="stable").reset_index(drop=True)
    late = np.flatnonzero(trials["onset"].to_numpy() >= n_scans * repetition_time)
    if late.size:
        raise InputError(f"{source}: the event at {trials['onset'].iloc[late[0]]:g} s starts "
                         f"after the run ends ({n_scans} scans of {repetition_time:g} s); "
                         f"remove it or check RepetitionTime")
    trial_types = trials["trial_type"].to_numpy(dtype=str)
    if len(trials) == 0:
        return np.zeros((0, signal.shape[1]), np.float32), trial_types
    scaled, _ = mean_scaling(np.asarray(signal)[keep], 0)
    if method == "lsa":
        design = design_matrix(lsa_events(trials), n_scans, repetition_time, confounds)
        theta = _fit(scaled, design[keep])
        names = lsa_events(trials)["trial_type"]
        betas = theta[[design.columns.get_loc(name) for name in names]]
    else:
        betas = np.empty((len(trials), signal.shape[1]))
        for trial in range(len(trials)):
            design = design_matrix(lss_events(trials, trial), n_scans, repetition_time,
                                   confounds)
            betas[trial] = _fit(scaled, design[keep])[design.columns.get_loc(_TARGET)]
    return betas.astype(np.float32), trial_types


def lsa_events(trials: pd.DataFrame) -> pd.DataFrame:
    """The events of an LSA model: each trial its own condition ``trial_00000``, ...

    Trials keep their order; conditions sort in the same order.
    """
    return pd.DataFrame({"onset": trials["onset"].to_numpy(dtype=float),
                         "duration": trials["duration"].to_numpy(dtype=float),
                         "trial_type": [f"trial_{index:05d}" for index in range(len(trials))]})


def lss_events(trials: pd.DataFrame, trial: int) -> pd.DataFrame:
    """The events of the LSS model of one trial.

    Condition ``target`` is that trial; the other trials of the ``i``-th
    trial type (in sorted order) are condition ``other_{i:03d}``.
    """
    types = trials["trial_type"].to_numpy(dtype=str)
    codes = np.searchsorted(np.unique(types), types)
    names = np.array([f"other_{code:03d}" for code in codes], dtype=object)
    names[trial] = _TARGET
    return pd.DataFrame({"onset": trials["onset"].to_numpy(dtype=float),
                         "duration": trials["duration"].to_numpy(dtype=float),
                         "trial_type": names.astype(str)})


def design_matrix(events: pd.DataFrame, n_scans: int, repetition_time: float,
                  confounds: np.ndarray | None = None) -> pd.DataFrame:
    """The design matrix ``FirstLevelModel`` builds for a run (scans at ``k * TR``)."""
    frame_times = np.linspace(0.0, (n_scans - 1) * repetition_time, n_scans)
    names = None if confounds is None else [f"confound_{index:03d}"
                                            for index in range(confounds.shape[1])]
    with warnings.catch_warnings():
        # Zero-duration (impulse) events are ordinary in event-related
        # designs; LSS would repeat nilearn's note about them for every trial.
        warnings.filterwarnings("ignore", message=".*events with null duration",
                                category=UserWarning)
        return make_first_level_design_matrix(frame_times, events, hrf_model=HRF_MODEL,
                                              drift_model=DRIFT_MODEL, high_pass=HIGH_PASS,
                                              add_regs=confounds, add_reg_names=names)


def check_method(method: str) -> str:
    """Check a beta-series method name."""
    if method not in METHODS:
        raise InputError(f"--betas {method}: choose lsa (one model per run) or lss (one "
                         f"model per trial)")
    return method


def _fit(scaled: np.ndarray, design: pd.DataFrame) -> np.ndarray:
    """Regression coefficients (n_regressors, n_voxels) of ``run_glm``'s model."""
    labels, results = run_glm(scaled, design.to_numpy(), noise_model=NOISE_MODEL)
    theta = np.zeros((design.shape[1], scaled.shape[1]))
    for label, result in results.items():
        theta[:, labels == label] = result.theta
    return theta
