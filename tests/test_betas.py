"""Trial betas: equal to nilearn's FirstLevelModel, and decodable on planted signal."""

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import FirstLevelModel

from nidecode import store
from nidecode.analyses.decode import decode
from nidecode.betas import estimate_betas, lsa_events, lss_events
from nidecode.errors import InputError
from nidecode.ingest import find_bids_subjects, haxby_source, ingest_bids, ingest_subject
from nidecode.run import ingest_sources_on_cluster
from nidecode.synth import make_subject
from tests.conftest import tiny_subject
from tests.test_bids import write_bids

TR = 2.0
TRIALS = pd.DataFrame({"onset": [50.0, 6.0, 22.0, 36.0, 64.0],
                       "duration": [6.0, 6.0, 4.0, 6.0, 0.0],
                       "trial_type": ["house", "face", "house", "face", "face"]})


@pytest.fixture(scope="module")
def tiny_run():
    """One run of 40 scans on a 3 x 3 x 2 grid, with a response to the trials."""
    rng = np.random.default_rng(3)
    n_scans, shape = 40, (3, 3, 2)
    frame_times = np.arange(n_scans) * TR
    response = sum(np.exp(-0.5 * ((frame_times - onset - 5) / 3) ** 2)
                   for onset in TRIALS["onset"])
    data = rng.normal(600, 6, (*shape, n_scans)) + 15 * rng.normal(size=shape)[..., None] * response
    mask = np.ones(shape, bool)
    mask[0, 0, 0] = False
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    image = nib.Nifti1Image(data.astype(np.float32), affine)
    signal = np.asarray(image.dataobj)[mask].T
    return image, nib.Nifti1Image(mask.astype(np.uint8), affine), signal


def _nilearn_effects(image, mask, events, names, **fit):
    model = FirstLevelModel(t_r=TR, mask_img=mask, minimize_memory=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(null duration|mask was given)")
        model.fit(image, events=events, **fit)
    mask_data = np.asarray(mask.dataobj).astype(bool)
    return np.array([model.compute_contrast(name, output_type="effect_size").get_fdata()[mask_data]
                     for name in names])


def test_lsa_equals_first_level_model(tiny_run):
    image, mask, signal = tiny_run
    betas, trial_types = estimate_betas(signal, TRIALS, TR, "lsa")
    assert list(trial_types) == ["face", "house", "face", "house", "face"]  # onset order
    trials = TRIALS.sort_values("onset")
    expected = _nilearn_effects(image, mask, lsa_events(trials),
                                [f"trial_{index:05d}" for index in range(5)])
    np.testing.assert_allclose(betas, expected, rtol=1e-4, atol=1e-4)
    assert np.abs(betas).max() > 1  # the response is there, in percent signal change


def test_lss_equals_one_first_level_model_per_trial(tiny_run):
    image, mask, signal = tiny_run
    betas, _ = estimate_betas(signal, TRIALS, TR, "lss")
    trials = TRIALS.sort_values("onset").reset_index(drop=True)
    expected = np.concatenate([_nilearn_effects(image, mask, lss_events(trials, trial),
                                                ["target"]) for trial in range(5)])
    np.testing.assert_allclose(betas, expected, rtol=1e-4, atol=1e-4)
    lsa, _ = estimate_betas(signal, TRIALS, TR, "lsa")
    assert not np.allclose(betas, lsa, atol=1e-3)


def test_confounds_and_dropped_scans_as_first_level_model(tiny_run):
    image, mask, signal = tiny_run
    confounds = np.random.default_rng(4).normal(size=(40, 2))
    keep = np.arange(40) >= 3
    betas, _ = estimate_betas(signal, TRIALS, TR, "lsa", confounds=confounds, keep=keep)
    expected = _nilearn_effects(
        image, mask, lsa_events(TRIALS.sort_values("onset")),
        [f"trial_{index:05d}" for index in range(5)],
        confounds=pd.DataFrame(confounds, columns=["confound_000", "confound_001"]),
        sample_masks=np.flatnonzero(keep))
    np.testing.assert_allclose(betas, expected, rtol=1e-4, atol=1e-4)


def test_event_after_the_run_is_refused(tiny_run):
    _, _, signal = tiny_run
    late = pd.concat([TRIALS, pd.DataFrame({"onset": [80.0], "duration": [2.0],
                                            "trial_type": ["face"]})])
    with pytest.raises(InputError, match=r"run-1_events.tsv: the event at 80 s starts after the "
                                         r"run ends \(40 scans of 2 s\)"):
        estimate_betas(signal, late, TR, "lsa", source="run-1_events.tsv")


@pytest.fixture(scope="module")
def synthetic_bids(tmp_path_factory):
    """A synthetic subject with planted category patterns, as BIDS (6 runs, blocks -> events)."""
    subject = make_subject(1, n_runs=6)
    root = write_bids(tmp_path_factory.mktemp("synth") / "ds", subject.bold,
                      subject.labels["labels"], subject.labels["chunks"], task="synth")
    nib.save(subject.vt_mask, root / "mask_vt.nii.gz")
    return root


@pytest.mark.parametrize("method", ["lsa", "lss"])
def test_beta_series_decode_planted_signal(synthetic_bids, client, tmp_path, method):
    path = tmp_path / "betas.zarr"
    ingest_bids(synthetic_bids, path, "synth", synthetic_bids / "mask_vt.nii.gz", betas=method)
    design = store.read_design(path, "sub-01")
    assert len(design.labels) == 6 * 8  # one row per block
    assert (pd.Series(design.labels).value_counts() == 6).all()
    np.testing.assert_array_equal(design.runs, np.repeat(np.arange(6), 8))
    assert store.read_attributes(path, "sub-01")["cleaning"]["betas"] == method
    summary = decode(path, tmp_path / "out", client, categories=["face", "house"],
                     progress=False)
    assert summary["mean_accuracy"].iloc[0] > 0.75


def test_betas_on_a_cluster_one_task_per_run_equal_local(synthetic_bids, client, tmp_path):
    mask = synthetic_bids / "mask_vt.nii.gz"
    ingest_bids(synthetic_bids, tmp_path / "local.zarr", "synth", mask, betas="lsa")
    sources = find_bids_subjects(synthetic_bids, "synth", mask, betas="lsa")
    reports = ingest_sources_on_cluster(sources, tmp_path / "cluster.zarr", client,
                                        betas="lsa", progress=False)
    assert [report["subject"] for report in reports] == ["sub-01"]
    np.testing.assert_allclose(store.read_timeseries(tmp_path / "cluster.zarr", "sub-01"),
                               store.read_timeseries(tmp_path / "local.zarr", "sub-01"),
                               rtol=1e-6, atol=1e-6)


def test_betas_need_events_and_no_hrf_shift(synthetic_bids, tmp_path):
    directory = tiny_subject(tmp_path / "sub01")
    with pytest.raises(InputError, match="labels.txt: trial betas need BIDS events"):
        ingest_subject(haxby_source(directory, "mask4_vt"), tmp_path / "s.zarr", betas="lsa")
    mask = synthetic_bids / "mask_vt.nii.gz"
    with pytest.raises(InputError, match="--hrf-shift 5: trial betas model"):
        ingest_bids(synthetic_bids, tmp_path / "s.zarr", "synth", mask, betas="lss",
                    hrf_shift=5)
    with pytest.raises(InputError, match="--betas lsq: choose lsa"):
        ingest_bids(synthetic_bids, tmp_path / "s.zarr", "synth", mask, betas="lsq")
