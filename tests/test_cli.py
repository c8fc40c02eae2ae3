"""The command line: bad input gives one line naming the file, exit status 2."""

import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pytest

from nidecode.cli import main
from tests.conftest import one_line_error, tiny_subject


def _break_bold_missing(d):
    (d / "bold.nii.gz").unlink()


def _break_bold_text(d):
    (d / "bold.nii.gz").write_text("not an image")


def _break_bold_3d(d):
    image = nib.load(d / "bold.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[..., 0], image.affine), d / "bold.nii.gz")


def _break_bold_nan(d):
    image = nib.load(d / "bold.nii.gz")
    data = np.asarray(image.dataobj).astype(np.float32)
    data[1, 1, 1, 3] = np.nan
    nib.save(nib.Nifti1Image(data, image.affine), d / "bold.nii.gz")


def _break_labels_rows(d):
    lines = (d / "labels.txt").read_text().splitlines()
    (d / "labels.txt").write_text("\n".join(lines[:-2]) + "\n")


def _break_labels_header(d):
    lines = (d / "labels.txt").read_text().splitlines()
    (d / "labels.txt").write_text("\n".join(["labels runs", *lines[1:]]) + "\n")


def _break_labels_runs(d):
    lines = (d / "labels.txt").read_text().splitlines()
    lines[3] = "face one"
    (d / "labels.txt").write_text("\n".join(lines) + "\n")


def _break_mask_shape(d):
    nib.save(nib.Nifti1Image(np.ones((5, 3, 2), np.uint8), nib.load(d / "bold.nii.gz").affine),
             d / "mask4_vt.nii.gz")


def _break_mask_affine(d):
    nib.save(nib.Nifti1Image(np.ones((4, 3, 2), np.uint8), np.eye(4)), d / "mask4_vt.nii.gz")


def _break_mask_empty(d):
    nib.save(nib.Nifti1Image(np.zeros((4, 3, 2), np.uint8), nib.load(d / "bold.nii.gz").affine),
             d / "mask4_vt.nii.gz")


def _break_mask_missing(d):
    (d / "mask4_vt.nii.gz").unlink()


def _break_bold_truncated(d):
    content = (d / "bold.nii.gz").read_bytes()
    (d / "bold.nii.gz").write_bytes(content[:-100])  # the header stays readable


def _break_labels_split_run(d):
    # Runs 0, 1, 0: run 0 comes back after run 1 (two sessions numbered alike).
    lines = (d / "labels.txt").read_text().splitlines()
    lines[13:] = [line.replace(" 2", " 0") for line in lines[13:]]
    (d / "labels.txt").write_text("\n".join(lines) + "\n")


def _break_labels_one_scan_run(d):
    lines = (d / "labels.txt").read_text().splitlines()
    lines[7] = lines[7].replace(" 1", " 33")
    (d / "labels.txt").write_text("\n".join(lines) + "\n")


def _break_mask_4d(d):
    mask = np.asarray(nib.load(d / "mask4_vt.nii.gz").dataobj)
    nib.save(nib.Nifti1Image(np.stack([mask, mask], axis=3), nib.load(d / "bold.nii.gz").affine),
             d / "mask4_vt.nii.gz")


BAD_SUBJECTS = [
    (_break_bold_missing, "bold.nii.gz: file not found"),
    (_break_bold_text, "bold.nii.gz: not a readable NIfTI image"),
    (_break_bold_3d, "bold.nii.gz: image is 3D"),
    (_break_bold_nan, "bold.nii.gz: NaN or infinite values"),
    (_break_labels_rows, "labels.txt: 16 rows but .*bold.nii.gz has 18 scans"),
    (_break_labels_header, "labels.txt: header is 'labels runs', missing column 'chunks'"),
    (_break_labels_runs, "labels.txt: line 4 has run 'one'"),
    (_break_mask_shape, r"mask4_vt.nii.gz: mask shape \(5, 3, 2\) differs from the BOLD shape"),
    (_break_mask_affine, "mask4_vt.nii.gz: mask affine .* differs from the BOLD affine"),
    (_break_mask_empty, "mask4_vt.nii.gz: the mask is empty"),
    (_break_mask_missing, "mask4_vt: mask not found"),
    (_break_bold_truncated, r"bold.nii.gz: cannot read scans \d+-\d+ \(.*\); the file is "
                            r"truncated or corrupt"),
    (_break_labels_split_run, r"labels.txt: run 0 at lines 14-19 already came at lines 2-7"),
    (_break_labels_one_scan_run, r"labels.txt: run 33 has one scan \(line 8\)"),
    (_break_mask_4d, r"mask4_vt.nii.gz: mask is 4D with shape \(4, 3, 2, 2\); a mask must be "
                     r"3D"),
]


@pytest.mark.parametrize(("breaker", "message"), BAD_SUBJECTS,
                         ids=[breaker.__name__[7:] for breaker, _ in BAD_SUBJECTS])
def test_bad_subject_input(tmp_path, capsys, breaker, message):
    directory = tiny_subject(tmp_path / "sub01")
    breaker(directory)
    status = main(["ingest", str(directory), "--store", str(tmp_path / "s.zarr"),
                   "--mask", "mask4_vt", "--quiet"])
    one_line_error(capsys, status, message)
    assert not (tmp_path / "s.zarr" / "sub01").exists()


def test_constant_voxels_are_reported_and_stored_as_zeros(tmp_path, capsys):
    from nidecode import store

    directory = tiny_subject(tmp_path / "sub01")
    image = nib.load(directory / "bold.nii.gz")
    data = np.asarray(image.dataobj).copy()
    data[1, 0, 0, 6:12] = 700  # constant over the second run
    nib.save(nib.Nifti1Image(data, image.affine), directory / "bold.nii.gz")
    assert main(["ingest", str(directory), "--store", str(tmp_path / "s.zarr"),
                 "--mask", "mask4_vt"]) == 0
    assert "sub01: 1 of 12 voxels are constant within a run" in capsys.readouterr().err
    X = store.read_timeseries(tmp_path / "s.zarr", "sub01")
    assert np.isfinite(X).all()
    assert (X[6:12] == 0).any(axis=0).sum() == 1
    assert store.read_attributes(tmp_path / "s.zarr", "sub01")["cleaning"][
        "n_constant_voxels"] == 1


@pytest.fixture
def tiny_store(tmp_path):
    directory = tiny_subject(tmp_path / "sub01")
    assert main(["ingest", str(directory), "--store", str(tmp_path / "s.zarr"),
                 "--mask", "mask4_vt", "--quiet"]) == 0
    return tmp_path / "s.zarr"


@pytest.mark.parametrize(("arguments", "message"), [
    (["--categories", "face,chair"], "subject sub01: no scans labelled 'chair'"),
    (["--cv", "loso"], r"--cv loso: the store holds 1 subject \(sub01\)"),
    (["--C", "-1"], "--C -1: must be a positive finite float"),
    (["--categories", "face,cat", "--cv", "kfold:40"], "--cv kfold:40: 40 folds for 12 samples"),
])
def test_bad_decode_arguments(tiny_store, tmp_path, capsys, arguments, message):
    status = main(["decode", str(tiny_store), "--out", str(tmp_path / "out"), "--quiet",
                   *arguments])
    one_line_error(capsys, status, message)


def test_decode_of_a_missing_store(tmp_path, capsys):
    status = main(["decode", str(tmp_path / "nope.zarr"), "--out", str(tmp_path / "o")])
    one_line_error(capsys, status, "nope.zarr: not a nidecode store")


def test_scheduler_that_does_not_answer_fails_fast(tiny_store, tmp_path, capsys):
    started = time.perf_counter()
    status = main(["decode", str(tiny_store), "--out", str(tmp_path / "out"), "--quiet",
                   "--scheduler", "tcp://127.0.0.1:9"])
    one_line_error(capsys, status, "--scheduler tcp://127.0.0.1:9: no Dask scheduler answered")
    assert time.perf_counter() - started < 30


def test_console_script_prints_no_traceback(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "nidecode.cli", "decode",
                                str(tmp_path / "nope.zarr"), "--out", str(tmp_path / "o")],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert completed.stderr.count("\n") == 1


@pytest.mark.parametrize(("drop", "message"), [
    (6, r"--drop-scans 6: run 0 of .*labels.txt has only 6 scans; drop fewer"),
    (9, r"--drop-scans 9: run 0 of .*labels.txt has only 6 scans"),
    (5, r"labels.txt: run 0 keeps 1 scan after --drop-scans 5; a run with fewer than 2 scans "
        r"cannot be z-scored"),
])
def test_drop_scans_that_empty_a_run_are_refused(tmp_path, capsys, drop, message):
    directory = tiny_subject(tmp_path / "sub01")
    status = main(["ingest", str(directory), "--store", str(tmp_path / "s.zarr"), "--mask",
                   "mask4_vt", "--drop-scans", str(drop), "--quiet"])
    one_line_error(capsys, status, message)


def test_uncompressed_bold_and_a_labels_bom_are_accepted(tmp_path):
    from nidecode import store

    reference = tiny_subject(tmp_path / "ref" / "sub01")
    directory = tiny_subject(tmp_path / "sub01")
    image = nib.load(directory / "bold.nii.gz")
    nib.save(image, directory / "bold.nii")
    (directory / "bold.nii.gz").unlink()
    labels = directory / "labels.txt"
    labels.write_bytes(labels.read_text().encode("utf-8-sig"))
    for subject, path in ((directory, "s.zarr"), (reference, "ref.zarr")):
        assert main(["ingest", str(subject), "--store", str(tmp_path / path), "--mask",
                     "mask4_vt", "--quiet"]) == 0
    np.testing.assert_array_equal(store.read_timeseries(tmp_path / "s.zarr", "sub01"),
                                  store.read_timeseries(tmp_path / "ref.zarr", "sub01"))
    assert store.read_attributes(tmp_path / "s.zarr", "sub01")["source"]["bold"].endswith(
        "bold.nii")


def test_truncated_bold_on_a_cluster_is_one_line(tmp_path, capsys, client):
    for number in (1, 2):
        tiny_subject(tmp_path / f"sub0{number}", seed=number)
    _break_bold_truncated(tmp_path / "sub02")
    status = main(["ingest", str(tmp_path / "sub01"), str(tmp_path / "sub02"), "--store",
                   str(tmp_path / "s.zarr"), "--mask", "mask4_vt", "--quiet",
                   "--scheduler", client.scheduler.address])
    one_line_error(capsys, status, r"sub02/bold.nii.gz: cannot read scans .* truncated")


def test_one_class_advice_does_not_suggest_the_cv_in_use(tmp_path, capsys, haxby_slice_dir):
    # 11 scans left per run: a pair's training runs can hold one class only.
    assert main(["ingest", str(haxby_slice_dir), "--store", str(tmp_path / "s.zarr"),
                 "--mask", "mask", "--drop-scans", "110", "--quiet"]) == 0
    status = main(["decode", str(tmp_path / "s.zarr"), "--out", str(tmp_path / "out"),
                   "--quiet"])
    one_line_error(capsys, status, r"training scans hold one class only; choose categories "
                                    r"present in more runs, or keep more scans of each run")


@pytest.mark.parametrize(("command", "arguments", "message"), [
    ("decode", ["--C", "nan"], "--C nan: must be a positive finite float"),
    ("decode", ["--C", "inf"], "--C inf: must be a positive finite float"),
    ("decode", ["--C", "0"], "--C 0: must be a positive finite float"),
    ("searchlight", ["--radius", "inf"], "--radius inf: must be a positive finite float"),
    ("searchlight", ["--radius", "5", "--C=-inf"], "--C -inf: must be a positive finite"),
    ("permute", ["--n-permutations", "10", "--searchlight", "--radius", "nan"],
     "--radius nan: must be a positive finite float"),
    ("permute", ["--n-permutations", "1000000000"], r"--n-permutations 1000000000: must be "
     r"an int in the range \[1, 1000000\]; 1000 resolve p < 0.001"),
    ("permute", ["--n-permutations", "0"], "--n-permutations 0: must be an int in the range"),
    ("permute", ["--n-permutations", "10", "--seed", "-1"], "--seed -1: must be an int >= 0"),
    ("decode", ["--workers", "0"], "--workers 0: must be a positive int"),
    ("decode", ["--workers", "-2"], "--workers -2: must be a positive int"),
])
def test_bad_parameters_are_refused_before_out_is_claimed(tiny_store, tmp_path, capsys, command,
                                                          arguments, message):
    out = tmp_path / "out"
    status = main([command, str(tiny_store), "--out", str(out), "--quiet", *arguments])
    one_line_error(capsys, status, message)
    assert not out.exists()


def test_bad_ingest_and_demo_parameters_are_one_line(tmp_path, capsys):
    directory = tiny_subject(tmp_path / "sub01")
    status = main(["ingest", str(directory), "--store", str(tmp_path / "s.zarr"),
                   "--mask", "mask4_vt", "--drop-scans", "-1", "--quiet"])
    one_line_error(capsys, status, "--drop-scans -1: must be an int >= 0")
    status = main(["ingest", str(directory), "--store", str(tmp_path / "s.zarr"),
                   "--mask", "mask4_vt", "--hrf-shift", "nan", "--quiet"])
    one_line_error(capsys, status, "--hrf-shift nan: must be a finite float")
    status = main(["demo", "--out", str(tmp_path / "demo"), "--subjects", "0", "--quiet"])
    one_line_error(capsys, status, "--subjects 0: must be a positive int")
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "demo").exists()


def test_too_many_workers_are_capped_with_one_warning_line(tiny_store, tmp_path, capsys):
    import json

    from nidecode.cluster import max_local_workers

    out = tmp_path / "out"
    assert main(["decode", str(tiny_store), "--out", str(out), "--quiet",
                 "--workers", "1000"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nidecode: warning: --workers 1000: this machine holds at most "
                   f"{max_local_workers()} workers" + err[0].split("workers", 2)[2]], err
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["cluster"]["n_workers"] == max_local_workers()


def test_bench_keeps_its_own_workers_option(tmp_path, capsys):
    # 'bench --workers 1,2,4' is a list: the analyses' --workers rule is not applied to it.
    status = main(["bench", "--workers", "0,x", "--out", str(tmp_path / "b")])
    one_line_error(capsys, status, "--workers 0,x: give worker counts as positive whole")


def test_empty_out_with_overwrite_deletes_nothing(tiny_store, tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "run.json").write_text('{"identity": {"command": "other"}}')
    (work / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(work)
    status = main(["decode", str(tiny_store), "--out", "", "--overwrite", "--quiet"])
    one_line_error(capsys, status, "--out '': empty path")
    status = main(["decode", str(tiny_store), "--out", ".", "--overwrite", "--quiet"])
    one_line_error(capsys, status, "--out .: --overwrite refused for the current directory")
    assert sorted(path.name for path in work.iterdir()) == ["run.json", "thesis.tex"]


def test_out_naming_a_file_is_one_line(tiny_store, tmp_path, capsys):
    (tmp_path / "results").write_text("not a directory")
    status = main(["decode", str(tiny_store), "--out", str(tmp_path / "results"), "--quiet"])
    one_line_error(capsys, status, "results: is a file, not a directory")


def test_report_of_a_corrupt_weights_map_is_one_line(tmp_path, capsys):
    import json

    import pandas as pd

    out = tmp_path / "out"
    (out / "weights").mkdir(parents=True)
    (out / "run.json").write_text(json.dumps({"status": "complete", "identity": {"cv": "logo"}}))
    pd.DataFrame({"subject": ["01"], "class_a": ["cat"], "class_b": ["face"],
                  "mean_accuracy": [0.75], "std_accuracy": [0.1], "n_folds": [4]}).to_csv(
        out / "summary.csv", index=False)
    nib.save(nib.Nifti1Image(np.ones((4, 4, 3), np.float32), np.eye(4)),
             out / "weights" / "01_cat_vs_face.nii.gz")
    data = (out / "weights" / "01_cat_vs_face.nii.gz").read_bytes()
    (out / "weights" / "01_cat_vs_face.nii.gz").write_bytes(data[:len(data) // 2])
    status = main(["report", str(out), "--quiet"])
    one_line_error(capsys, status, "01_cat_vs_face.nii.gz: not a readable NIfTI image")
