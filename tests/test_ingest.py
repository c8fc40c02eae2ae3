"""Ingest: NIfTI + labels + mask into the store, equal to nilearn's masking."""

import numpy as np
import pytest
from nilearn import signal
from nilearn.maskers import NiftiMasker

from nidecode import store
from nidecode.errors import InputError
from nidecode.ingest import ingest
from nidecode.io.haxby import read_labels
from tests.conftest import tiny_subject


def test_real_slice_global_equals_nifti_masker_bit_for_bit(haxby_slice_dir, haxby_store):
    X = store.read_timeseries(haxby_store["global"], "haxby2001_slice")
    expected = NiftiMasker(mask_img=haxby_slice_dir / "mask.nii.gz",
                           standardize="zscore_sample").fit_transform(
                               haxby_slice_dir / "bold.nii.gz")
    np.testing.assert_array_equal(X, expected)
    design = store.read_design(haxby_store["global"], "haxby2001_slice")
    labels = read_labels(haxby_slice_dir / "labels.txt")
    np.testing.assert_array_equal(design.labels, labels["labels"])
    np.testing.assert_array_equal(design.runs, labels["chunks"])


def test_drop_scans_and_detrend(tmp_path):
    directory = tiny_subject(tmp_path / "sub01")
    path = tmp_path / "s.zarr"
    ingest([directory], path, "mask4_vt", standardize="run", detrend=True, drop_scans=2)
    design = store.read_design(path, "sub01")
    assert len(design.labels) == 3 * 4
    np.testing.assert_array_equal(design.labels[:4], ["face", "cat", "cat", "rest"])
    raw = NiftiMasker(mask_img=directory / "mask4_vt.nii.gz", standardize=None).fit_transform(
        directory / "bold.nii.gz")
    keep = np.tile(np.arange(6) >= 2, 3)
    expected = signal.clean(raw[keep], runs=design.runs, detrend=True,
                            standardize="zscore_sample")
    np.testing.assert_allclose(store.read_timeseries(path, "sub01"), expected, atol=1e-6)
    cleaning = store.read_attributes(path, "sub01")["cleaning"]
    assert cleaning == {"standardize": "run", "detrend": True, "drop_scans": 2,
                        "n_constant_voxels": 0}


def test_mask_by_path_and_small_blocks_give_the_same_store(tmp_path):
    directory = tiny_subject(tmp_path / "sub01")
    ingest([directory], tmp_path / "a.zarr", "mask4_vt", block_size=64)
    ingest([directory], tmp_path / "b.zarr", directory / "mask4_vt.nii.gz", block_size=5)
    np.testing.assert_array_equal(store.read_timeseries(tmp_path / "a.zarr", "sub01"),
                                  store.read_timeseries(tmp_path / "b.zarr", "sub01"))


def test_duplicate_subject_ids_are_refused(tmp_path):
    first = tiny_subject(tmp_path / "a" / "sub01")
    second = tiny_subject(tmp_path / "b" / "sub01")
    with pytest.raises(InputError, match="subject id 'sub01' already used"):
        ingest([first, second], tmp_path / "s.zarr", "mask4_vt")


SLICE = "haxby2001_slice"


def _renumbered_slice(directory, haxby_slice_dir, new_id):
    """The real slice with run ``r`` (file order) renamed ``new_id[r]``, same scans."""
    directory.mkdir(parents=True)
    for name in ("bold.nii.gz", "mask.nii.gz"):
        (directory / name).symlink_to(haxby_slice_dir / name)
    labels = read_labels(haxby_slice_dir / "labels.txt")
    labels["chunks"] = np.asarray(new_id)[labels["chunks"]]
    labels.to_csv(directory / "labels.txt", sep=" ", index=False)
    return directory


def _face_vs_cat(path, subject=SLICE):
    from nidecode.analyses.plan import PairJob
    from nidecode.analyses.tasks import decode_pairs

    design = store.read_design(path, subject)
    [result] = decode_pairs(str(path), [PairJob(subject, "cat", "face", 12)], design.checksum,
                            "logo", 1.0)
    return result


@pytest.mark.parametrize("numbering", ["lexicographic", "descending", "large"])
def test_runs_in_any_order_give_the_same_store_and_accuracy(tmp_path, haxby_slice_dir,
                                                            haxby_store, numbering):
    # File order 1, 10, 11, 12, 2, ... (runs numbered as strings sort), or
    # 11 .. 0, or ids beyond int32: each scan keeps its row and its run.
    new_id = {"lexicographic": sorted(range(1, 13), key=str),
              "descending": list(range(11, -1, -1)),
              "large": [2**40 + 7 * run for run in range(12)][::-1]}[numbering]
    directory = _renumbered_slice(tmp_path / SLICE, haxby_slice_dir, new_id)
    ingest([directory], tmp_path / "s.zarr", "mask")
    np.testing.assert_array_equal(store.read_timeseries(tmp_path / "s.zarr", SLICE),
                                  store.read_timeseries(haxby_store["run"], SLICE))
    design = store.read_design(tmp_path / "s.zarr", SLICE)
    original = read_labels(haxby_slice_dir / "labels.txt")["chunks"].to_numpy()
    np.testing.assert_array_equal(design.runs, np.asarray(new_id)[original])
    result = _face_vs_cat(tmp_path / "s.zarr")
    assert result.accuracy.mean() == pytest.approx(0.8102, abs=5e-5)
    reference = _face_vs_cat(haxby_store["run"])
    by_fold = dict(zip(result.folds.tolist(), result.accuracy, strict=True))
    np.testing.assert_array_equal([by_fold[new_id[run]] for run in reference.folds],
                                  reference.accuracy)


def test_a_run_id_in_two_separate_blocks_is_refused(tmp_path, haxby_slice_dir):
    # Two sessions numbered 0-5 each: leave-one-run-out would hold out
    # both sessions' run 0 together, and cleaning would mix them.
    directory = _renumbered_slice(tmp_path / SLICE, haxby_slice_dir, list(range(6)) * 2)
    with pytest.raises(InputError, match=r"labels.txt: run 0 at lines 728-848 already "
                                         r"came at lines 2-122.*renumber"):
        ingest([directory], tmp_path / "s.zarr", "mask")
    assert not (tmp_path / "s.zarr").exists()


def test_a_run_of_one_scan_is_refused(tmp_path):
    directory = tiny_subject(tmp_path / "sub01")
    labels = (directory / "labels.txt").read_text().splitlines()
    labels[9] = labels[9].replace(" 1", " 33")  # a typo in the middle of run 1
    (directory / "labels.txt").write_text("\n".join(labels) + "\n")
    with pytest.raises(InputError, match=r"labels.txt: run 33 has one scan \(line 10\)"):
        ingest([directory], tmp_path / "s.zarr", "mask4_vt")


@pytest.mark.parametrize("name", ["zarr.json", ".versions", ".sub01"])
def test_subject_directories_named_like_store_files_are_refused(tmp_path, capsys, name):
    from nidecode.cli import main

    good = tiny_subject(tmp_path / "sub01")
    path = tmp_path / "s.zarr"
    ingest([good], path, "mask4_vt")
    bad = tiny_subject(tmp_path / "in" / name, seed=1)
    other = tiny_subject(tmp_path / "in" / "sub02", seed=2)
    status = main(["ingest", str(other), str(bad), "--store", str(path), "--mask", "mask4_vt",
                   "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert f"subject id {name!r}" in err and str(bad) in err
    assert store.list_subjects(path) == ["sub01"]  # nothing written, the store intact
    np.testing.assert_array_equal(store.read_design(path, "sub01").runs, np.repeat([0, 1, 2], 6))


@pytest.mark.parametrize("mask", ["mask4_vt", "sub01/mask4_vt.nii.gz"])
def test_relative_paths_reach_workers_running_in_another_directory(tmp_path, client,
                                                                   monkeypatch, capsys, mask):
    # The workers of the cluster started in another working directory: a
    # relative path sent as is would name a file that is not there.
    from nidecode.cli import main

    for number in (1, 2):
        tiny_subject(tmp_path / f"sub0{number}", seed=number)
    monkeypatch.chdir(tmp_path)
    status = main(["ingest", "sub01", "sub02", "--store", "s.zarr", "--mask", mask, "--quiet",
                   "--scheduler", client.scheduler.address])
    assert status == 0, capsys.readouterr().err
    assert store.list_subjects(tmp_path / "s.zarr") == ["sub01", "sub02"]
    assert store.read_attributes("s.zarr", "sub02")["source"]["bold"] == str(
        tmp_path / "sub02" / "bold.nii.gz")


def test_bids_sessions_with_the_same_run_numbers_stay_separate_runs(tmp_path):
    # Each BIDS run image is its own run: ses-1 run-1/2 and ses-2 run-1/2 are
    # four runs, as the same four images in one session.
    from nidecode.ingest import ingest_bids
    from tests.test_bids import _tiny_bids

    flat = _tiny_bids(tmp_path / "flat", n_runs=4)
    sessions = _tiny_bids(tmp_path / "sessions", n_runs=4)
    func = sessions / "sub-01" / "func"
    for run in range(1, 5):
        session, number = 1 + (run - 1) // 2, 1 + (run - 1) % 2
        target = sessions / "sub-01" / f"ses-{session}" / "func"
        target.mkdir(parents=True, exist_ok=True)
        for suffix in ("bold.nii.gz", "events.tsv"):
            (func / f"sub-01_task-tiny_run-{run}_{suffix}").rename(
                target / f"sub-01_ses-{session}_task-tiny_run-{number}_{suffix}")
    func.rmdir()
    for root in (flat, sessions):
        ingest_bids(root, tmp_path / f"{root.name}.zarr", "tiny", root / "mask.nii.gz")
    design = store.read_design(tmp_path / "sessions.zarr", "sub-01")
    np.testing.assert_array_equal(design.runs, np.repeat(np.arange(4), 12))
    np.testing.assert_array_equal(store.read_timeseries(tmp_path / "sessions.zarr", "sub-01"),
                                  store.read_timeseries(tmp_path / "flat.zarr", "sub-01"))


def test_relative_bids_paths_reach_workers_running_in_another_directory(tmp_path, client,
                                                                        monkeypatch, capsys):
    from nidecode.cli import main
    from tests.test_bids import _tiny_bids

    _tiny_bids(tmp_path / "ds")
    monkeypatch.chdir(tmp_path)
    status = main(["ingest", "ds", "--task", "tiny", "--store", "s.zarr", "--mask",
                   "ds/mask.nii.gz", "--quiet", "--scheduler", client.scheduler.address])
    assert status == 0, capsys.readouterr().err
    assert store.list_subjects(tmp_path / "s.zarr") == ["sub-01"]


def test_drop_scans_that_empty_a_bids_run_name_its_image(tmp_path):
    from nidecode.ingest import ingest_bids
    from tests.test_bids import _tiny_bids

    root = _tiny_bids(tmp_path / "ds", n_runs=2)
    with pytest.raises(InputError, match=r"--drop-scans 12: run 0 of .*sub-01_task-tiny_run-1_"
                                         r"bold.nii.gz has only 12 scans"):
        ingest_bids(root, tmp_path / "s.zarr", "tiny", root / "mask.nii.gz", drop_scans=12)
    with pytest.raises(InputError, match=r"run-1_bold.nii.gz: run 0 keeps 1 scan after "
                                         r"--drop-scans 11"):
        ingest_bids(root, tmp_path / "s.zarr", "tiny", root / "mask.nii.gz", drop_scans=11)
    ingest_bids(root, tmp_path / "s.zarr", "tiny", root / "mask.nii.gz", drop_scans=10)
    np.testing.assert_array_equal(store.read_design(tmp_path / "s.zarr", "sub-01").runs,
                                  [0, 0, 1, 1])
