"""BIDS input: runs, sidecars, events -> labels, fMRIPrep confounds; same store as Haxby."""

import json
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nilearn import signal
from nilearn.interfaces.fmriprep import load_confounds

from nidecode import store
from nidecode.analyses.decode import decode
from nidecode.errors import InputError
from nidecode.ingest import find_bids_subjects, ingest_bids
from nidecode.io.bids import events_to_labels, find_runs, read_events, read_repetition_time
from tests.test_decode_real import README_FOLDS

TASK = "objectviewing"
MOTION = [f"{axis}{suffix}" for axis in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y",
                                         "rot_z")
          for suffix in ("", "_derivative1", "_power2", "_derivative1_power2")]


def label_blocks(labels, repetition_time):
    """Events from per-scan labels: one event per block of equal labels, rest left out."""
    labels = np.asarray(labels)
    changes = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts, stops = np.r_[0, changes], np.r_[changes, len(labels)]
    return pd.DataFrame([(start * repetition_time, (stop - start) * repetition_time, labels[start])
                         for start, stop in zip(starts, stops, strict=True)
                         if labels[start] != "rest"],
                        columns=["onset", "duration", "trial_type"])


def write_bids(root, bold, labels, runs, *, task=TASK, repetition_time=2.5, subject="01"):
    """A BIDS dataset from one 4D series and its labels: one image and events file per run.

    Run entities are ``run-1 .. run-N`` (not zero-padded, so that the order is
    numeric only if parsed as numbers); the TR is in a root sidecar.
    """
    func = root / f"sub-{subject}" / "func"
    func.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "copy",
                                                                "BIDSVersion": "1.9.0"}))
    (root / f"task-{task}_bold.json").write_text(json.dumps({"RepetitionTime": repetition_time}))
    data = np.asarray(bold.dataobj)
    for index, run in enumerate(np.unique(runs)):
        name = f"sub-{subject}_task-{task}_run-{index + 1}"
        scans = np.asarray(runs) == run
        nib.save(nib.Nifti1Image(data[..., scans], bold.affine), func / f"{name}_bold.nii.gz")
        label_blocks(np.asarray(labels)[scans], repetition_time).to_csv(
            func / f"{name}_events.tsv", sep="\t", index=False)
    return root


@pytest.fixture(scope="module")
def bids_slice(haxby_slice_dir, tmp_path_factory):
    """The real slice as a BIDS dataset: 12 run images, events made from the label blocks."""
    labels = pd.read_csv(haxby_slice_dir / "labels.txt", sep=" ")
    return write_bids(tmp_path_factory.mktemp("bids") / "ds", nib.load(haxby_slice_dir /
                                                                      "bold.nii.gz"),
                      labels["labels"], labels["chunks"])


def test_bids_copy_of_the_real_slice_gives_the_same_store_and_accuracies(
        bids_slice, haxby_slice_dir, haxby_store, client, tmp_path):
    path = tmp_path / "bids.zarr"
    assert ingest_bids(bids_slice, path, TASK, haxby_slice_dir / "mask.nii.gz") == ["sub-01"]
    haxby = haxby_store["run"], "haxby2001_slice"
    np.testing.assert_array_equal(store.read_timeseries(path, "sub-01"),
                                  store.read_timeseries(*haxby))
    bids_design, haxby_design = store.read_design(path, "sub-01"), store.read_design(*haxby)
    np.testing.assert_array_equal(bids_design.labels, haxby_design.labels)
    np.testing.assert_array_equal(bids_design.runs, haxby_design.runs)
    assert bids_design.checksum == haxby_design.checksum
    for bids_array, haxby_array in zip(store.read_geometry(path, "sub-01"),
                                       store.read_geometry(*haxby), strict=True):
        np.testing.assert_array_equal(bids_array, haxby_array)

    accuracies = []
    for store_path, out in ((path, tmp_path / "bids"), (haxby[0], tmp_path / "haxby")):
        decode(store_path, out, client, categories=["face", "cat"], progress=False)
        accuracies.append(pd.read_csv(out / "scores.csv")["accuracy"].to_numpy())
    np.testing.assert_array_equal(accuracies[0], accuracies[1])
    np.testing.assert_allclose(accuracies[0], README_FOLDS["run"], atol=5e-5)


def test_runs_are_ordered_by_run_number(bids_slice):
    runs = find_runs(bids_slice, "sub-01", TASK)
    assert [run.run for run in runs] == [str(number) for number in range(1, 13)]
    assert {run.repetition_time for run in runs} == {2.5}
    assert runs[9].bold.name == f"sub-01_task-{TASK}_run-10_bold.nii.gz"


def _tiny_bids(root, n_runs=2, n_scans=12, shape=(4, 3, 2), seed=0):
    """Random int16 runs of task 'tiny' for sub-01, a root sidecar and a mask."""
    rng = np.random.default_rng(seed)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    bold = nib.Nifti1Image(rng.normal(800, 50, (*shape, n_runs * n_scans)).astype(np.int16),
                           affine)
    labels = np.tile(["rest", "face", "face", "house", "house", "rest"], 2 * n_runs)
    write_bids(root, bold, labels[:n_runs * n_scans], np.repeat(np.arange(n_runs), n_scans),
               task="tiny", repetition_time=2.0)
    nib.save(nib.Nifti1Image(np.ones(shape, np.uint8), affine), root / "mask.nii.gz")
    return root


def test_sidecars_and_events_are_inherited(tmp_path):
    root = _tiny_bids(tmp_path / "ds")
    func = root / "sub-01" / "func"
    (root / "sub-01" / "sub-01_task-tiny_bold.json").write_text('{"RepetitionTime": 1.0}')
    (func / "sub-01_task-tiny_run-2_bold.json").write_text('{"RepetitionTime": 3.0}')
    for events in func.glob("*_events.tsv"):
        events.unlink()
    pd.DataFrame({"onset": [2.0], "duration": [4.0], "trial_type": ["face"]}).to_csv(
        root / "task-tiny_events.tsv", sep="\t", index=False)
    first, second = find_runs(root, "01", "tiny")
    assert (first.repetition_time, second.repetition_time) == (1.0, 3.0)
    assert first.events == second.events == root / "task-tiny_events.tsv"
    source, = find_bids_subjects(root, "tiny", root / "mask.nii.gz", subjects=["01", "sub-01"])
    assert source.subject == "sub-01"
    labels = source.scans["labels"].to_numpy()
    np.testing.assert_array_equal(np.flatnonzero(labels[:12] == "face"), [2, 3, 4, 5])
    np.testing.assert_array_equal(np.flatnonzero(labels[12:] == "face"), [1])
    np.testing.assert_array_equal(source.scans["chunks"], np.repeat([0, 1], 12))


def test_repetition_time_missing_names_the_image(tmp_path):
    root = _tiny_bids(tmp_path / "ds")
    (root / "task-tiny_bold.json").write_text('{"TaskName": "tiny"}')
    bold = root / "sub-01" / "func" / "sub-01_task-tiny_run-1_bold.nii.gz"
    with pytest.raises(InputError, match=r"run-1_bold.nii.gz: no RepetitionTime .* "
                                         r"task-tiny_bold.json"):
        read_repetition_time(bold, root)
    with pytest.raises(InputError, match="no RepetitionTime"):
        ingest_bids(root, tmp_path / "s.zarr", "tiny", root / "mask.nii.gz")


def _events(*rows):
    return pd.DataFrame(rows, columns=["onset", "duration", "trial_type"])


@pytest.mark.parametrize(("events", "hrf_shift", "tr", "expected"), [
    # scans at 0, 2.5, 5, 7.5, 10, 12.5 s; [onset, onset + duration) is half-open
    (_events((5.0, 5.0, "face")), 0, 2.5, "rest rest face face rest rest"),
    (_events((4.9, 5.2, "face")), 0, 2.5, "rest rest face face face rest"),
    # with a 5 s shift, scan k is labelled by what was shown at k * TR - 5
    (_events((5.0, 5.0, "face")), 5.0, 2.5, "rest rest rest rest face face"),
    (_events((0.0, 5.0, "cat"), (5.0, 5.0, "face")), 0, 2.5, "cat cat face face rest rest"),
    # overlapping events of one type, zero-length events, events after the run
    (_events((0.0, 5.0, "cat"), (2.5, 5.0, "cat"), (10.0, 0.0, "face"), (99.0, 5.0, "face")),
     0, 2.5, "cat cat cat rest rest rest"),
    (_events(), 0, 2.5, "rest rest rest rest rest rest"),
    # 3 * 0.7 is 2.0999999999999996 in floating point: still inside [2.1, 2.8)
    (_events((2.1, 0.7, "face")), 0, 0.7, "rest rest rest face rest rest"),
], ids=["boundaries", "inside", "hrf-shift", "adjacent", "overlap-same-type", "no-events",
        "float-rounding"])
def test_events_to_labels(events, hrf_shift, tr, expected):
    labels = events_to_labels(events, 6, tr, hrf_shift)
    assert " ".join(labels) == expected


def test_events_of_two_types_on_one_scan_are_refused():
    events = _events((0.0, 6.0, "cat"), (5.0, 5.0, "face"))
    with pytest.raises(InputError, match=r"run-3_events.tsv: scan 2 \(at 5 s\) falls in the "
                                         r"'cat' event at 0 s and the 'face' event at 5 s"):
        events_to_labels(events, 6, 2.5, source="run-3_events.tsv")


@pytest.mark.parametrize(("text", "message"), [
    ("onset\tduration\ttrial_type\n0\t5\tface\nsoon\t5\tcat\n", "row 3 has onset 'soon'"),
    ("onset\tduration\ttrial_type\nn/a\t5\tface\n", "row 2 has onset 'n/a'"),
    ("onset\tduration\ttrial_type\n0\t-5\tface\n", "row 2 has duration -5"),
    ("onset\tduration\tcondition\n0\t5\tface\n", "no 'trial_type' column"),
    ("onset,duration,trial_type\n0,5,face\n", "no 'onset' column"),
    ("", "empty events file"),
    ("onset\tduration\ttrial_type\n0\t5\tface\textra\n", "cannot read events .*saw 4"),
    ("onset\tduration\tonset\ttrial_type\n0\t5\t1\tface\n", "column 'onset' appears twice"),
])
def test_bad_events_name_the_file(tmp_path, text, message):
    path = tmp_path / "sub-01_task-x_events.tsv"
    path.write_text(text)
    with pytest.raises(InputError, match=f"sub-01_task-x_events.tsv: .*{message}"):
        read_events(path)


def test_events_with_na_trial_type_label_no_scan(tmp_path):
    path = tmp_path / "events.tsv"
    path.write_text("onset\tduration\ttrial_type\tresponse\n0\t5\tn/a\tn/a\n5\t2.5\tface\t1\n")
    events = read_events(path)
    assert events.to_dict("list") == {"onset": [5.0], "duration": [2.5], "trial_type": ["face"]}


def _check_events_table(text):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "events.tsv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        try:
            events = read_events(path)
        except InputError as error:
            assert str(error).startswith(str(path))
            return
    assert list(events.columns) == ["onset", "duration", "trial_type"]
    assert np.isfinite(events["onset"]).all() and (events["duration"] >= 0).all()
    assert all(isinstance(name, str) and name for name in events["trial_type"])
    try:
        labels = events_to_labels(events, 8, 2.0)
    except InputError as error:
        assert "must not overlap" in str(error)
        return
    assert set(labels) <= {"rest", *events["trial_type"]}


_COLUMNS = st.sampled_from(["onset", "duration", "trial_type", "response", "", " onset",
                            "n/a", "onset"])
_CELLS = st.one_of(st.sampled_from(["0", "1.5", "-2", "n/a", "", "nan", "inf", "1e400", "face",
                                    "2,5", " 3 ", '"4"', "0x10", "\r"]),
                   st.text(st.characters(codec="utf-8"), max_size=5))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.lists(_COLUMNS, max_size=5),
       rows=st.lists(st.lists(_CELLS, max_size=6), max_size=6))
def test_events_parser_never_fails_otherwise_on_random_columns(header, rows):
    _check_events_table("\n".join("\t".join(row) for row in [header, *rows]))


@settings(max_examples=150, deadline=None)
@given(content=st.one_of(st.text(st.characters(codec="utf-8")), st.binary()))
def test_events_parser_never_fails_otherwise_on_random_text(content):
    _check_events_table(content)


def _fmriprep(root, n_runs=2, n_scans=16, shape=(4, 3, 2), seed=0):
    """Raw events + fMRIPrep derivatives: desc-preproc images and confounds tables.

    The signal carries a large copy of ``trans_x`` and ``white_matter``, and
    run 2 has a non-steady-state first volume.
    """
    rng = np.random.default_rng(seed)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    (root / "dataset_description.json").parent.mkdir(parents=True)
    (root / "dataset_description.json").write_text('{"Name": "prep", "BIDSVersion": "1.9.0"}')
    (root / "task-tiny_bold.json").write_text('{"RepetitionTime": 2.0}')
    func = root / "sub-01" / "func"
    prep = root / "derivatives" / "fmriprep" / "sub-01" / "func"
    func.mkdir(parents=True)
    prep.mkdir(parents=True)
    for run in range(1, n_runs + 1):
        name = f"sub-01_task-tiny_run-{run}"
        pd.DataFrame({"onset": [4.0, 16.0], "duration": [8.0, 8.0],
                      "trial_type": ["face", "house"]}).to_csv(
            func / f"{name}_events.tsv", sep="\t", index=False)
        table = pd.DataFrame(rng.normal(size=(n_scans, len(MOTION) + 3)),
                             columns=[*MOTION, "white_matter", "csf", "global_signal"])
        table.loc[0, [column for column in MOTION if "derivative1" in column]] = np.nan
        if run == 2:
            table["non_steady_state_outlier00"] = np.eye(n_scans)[0]
        table.to_csv(prep / f"{name}_desc-confounds_timeseries.tsv", sep="\t", index=False,
                     na_rep="n/a")
        data = rng.normal(500, 5, (*shape, n_scans))
        data += 20 * table["trans_x"].to_numpy() + 10 * table["white_matter"].to_numpy()
        nib.save(nib.Nifti1Image(data.astype(np.float32), affine),
                 prep / f"{name}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz")
        nib.save(nib.Nifti1Image(data[..., :3].astype(np.float32), affine),
                 prep / f"{name}_space-T1w_desc-preproc_bold.nii.gz")
    nib.save(nib.Nifti1Image(np.ones(shape, np.uint8), affine), root / "mask.nii.gz")
    return root


def test_fmriprep_confounds_are_regressed_as_nilearn_does(tmp_path):
    root = _fmriprep(tmp_path / "ds")
    space, strategy = "MNI152NLin2009cAsym", ["motion", "wm_csf"]
    path = tmp_path / "s.zarr"
    ingest_bids(root, path, "tiny", root / "mask.nii.gz", space=space, confounds=strategy)
    ingest_bids(root, tmp_path / "plain.zarr", "tiny", root / "mask.nii.gz", space=space)

    raw, regressors, runs = [], [], []
    for run in (1, 2):
        image = (root / "derivatives" / "fmriprep" / "sub-01" / "func" /
                 f"sub-01_task-tiny_run-{run}_space-{space}_desc-preproc_bold.nii.gz")
        confounds, sample_mask = load_confounds(str(image), strategy=strategy)
        keep = np.arange(16) if sample_mask is None else sample_mask
        raw.append(np.asarray(nib.load(image).dataobj).reshape(-1, 16).T[keep])
        regressors.append(confounds.to_numpy()[keep])
        runs.append(np.full(len(keep), run - 1))
    assert confounds.shape[1] == 24 + 2 and len(runs[1]) == 15
    runs = np.concatenate(runs)
    expected = signal.clean(np.concatenate(raw), runs=runs, detrend=False,
                            standardize="zscore_sample", confounds=np.concatenate(regressors))
    X = store.read_timeseries(path, "sub-01")
    np.testing.assert_allclose(X, expected, atol=2e-5)
    np.testing.assert_array_equal(store.read_design(path, "sub-01").runs, runs)
    plain = store.read_timeseries(tmp_path / "plain.zarr", "sub-01")
    assert len(plain) == 32  # without --confounds, fMRIPrep's table is not read
    assert np.abs(X[:16] - plain[:16]).max() > 0.5
    attributes = store.read_attributes(path, "sub-01")
    assert attributes["cleaning"]["confounds"] == strategy
    assert attributes["source"]["bold"][0].endswith(f"run-1_space-{space}_desc-preproc_bold.nii.gz")


@pytest.mark.parametrize(("arguments", "message"), [
    ({"space": "MNI152NLin2009cAsym", "confounds": ["aroma"]}, "--confounds aroma: choose among"),
    ({"confounds": ["motion"]}, "--confounds motion: confounds come from fMRIPrep; give --space"),
    ({"space": "MNI152NLin2009cAsym", "confounds": ["global_signal", "compcor"]},
     "run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz: cannot load the confounds"),
    ({"space": "MNI"}, "fmriprep: no subject has a space-MNI_desc-preproc_bold image of task "
                       "'tiny'; check --task and --space"),
    ({"space": "MNI", "subjects": ["01"]},
     "sub-01: no space-MNI_desc-preproc_bold image of task 'tiny'"),
    ({"space": "T1w", "derivatives": "nowhere"}, "nowhere: no fMRIPrep derivatives folder"),
    ({"subjects": ["02"]}, "sub-02: no such subject folder"),
    ({"hrf_shift": float("nan")}, "--hrf-shift nan: give a number of seconds"),
])
def test_bad_bids_arguments(tmp_path, arguments, message):
    root = _fmriprep(tmp_path / "ds")
    with pytest.raises(InputError, match=message):
        find_bids_subjects(root, "tiny", root / "mask.nii.gz", **arguments)


def test_missing_events_and_bad_mask_name_the_files(tmp_path):
    root = _tiny_bids(tmp_path / "ds")
    with pytest.raises(InputError, match=r"missing.nii.gz: mask not found"):
        find_bids_subjects(root, "tiny", root / "missing.nii.gz")
    (root / "sub-01" / "func" / "sub-01_task-tiny_run-2_events.tsv").unlink()
    with pytest.raises(InputError, match=r"run-2_bold.nii.gz: no events file; add "
                                         r"sub-01_task-tiny_run-2_events.tsv"):
        find_bids_subjects(root, "tiny", root / "mask.nii.gz")


@pytest.mark.parametrize("standardize", ["run", "global", "none"])
def test_confounds_are_regressed_within_each_run(standardize):
    from nidecode.clean import clean_signal

    rng = np.random.default_rng(5)
    runs = np.repeat([0, 1], 30)
    confounds = rng.normal(size=(60, 3))
    X = (rng.normal(size=(60, 4)) + confounds @ rng.normal(size=(3, 4)) * 5 + 100).astype(
        np.float32)
    cleaned = clean_signal(X, runs, standardize=standardize, confounds=confounds)
    for run in (0, 1):
        rows = runs == run
        residual = cleaned[rows] - cleaned[rows].mean(axis=0)
        centred = confounds[rows] - confounds[rows].mean(axis=0)
        assert np.abs(centred.T @ residual).max() < 1e-3 * np.abs(residual).max()
    if standardize == "global":
        np.testing.assert_allclose(cleaned.mean(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(cleaned.std(axis=0, ddof=1), 1, rtol=1e-5)
    if standardize == "none":
        np.testing.assert_allclose(cleaned[runs == 1].mean(axis=0), X[runs == 1].mean(axis=0),
                                   rtol=1e-5)


def test_command_line_ingests_a_bids_dataset(bids_slice, haxby_slice_dir, haxby_store,
                                             tmp_path, capsys):
    from nidecode.cli import main

    path = tmp_path / "cli.zarr"
    arguments = ["ingest", str(bids_slice), "--store", str(path), "--mask",
                 str(haxby_slice_dir / "mask.nii.gz"), "--quiet"]
    assert main(arguments[:-1] + ["--quiet"]) == 2  # --task is required for BIDS
    assert "give --task TASK" in capsys.readouterr().err
    assert main([*arguments, "--task", TASK]) == 0
    assert store.read_design(path, "sub-01").checksum == store.read_design(
        haxby_store["run"], "haxby2001_slice").checksum
    assert main(["ingest", str(haxby_slice_dir), "--store", str(path), "--mask", "mask",
                 "--task", TASK, "--quiet"]) == 2
    assert "--task: only for a BIDS dataset" in capsys.readouterr().err
