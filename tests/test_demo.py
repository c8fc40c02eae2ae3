"""``nidecode demo``: the main job end to end on synthetic data."""

import json
import subprocess
import sys

import nibabel as nib
import pandas as pd
import pytest

from nidecode.cli import main


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--workers", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "face vs house" in printed and "subj3" in printed
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert len(summary) == 3 * 28
    by_pair = summary.groupby(["class_a", "class_b"])["mean_accuracy"].mean()
    assert by_pair["face", "house"] > 0.75
    assert by_pair["bottle", "shoe"] < 0.65  # the planted null pair
    assert json.loads((tmp_path / "results" / "run.json").read_text())["status"] == "complete"
    group = pd.read_csv(tmp_path / "results" / "group.csv").set_index(["class_a", "class_b"])
    assert group.loc[("face", "house"), "p_value"] < 0.05
    assert group.loc[("face", "house"), "n_subjects"] == 3
    multiclass = pd.read_csv(tmp_path / "results" / "multiclass" / "accuracy.csv")
    assert (multiclass["accuracy"] > 0.4).all() and (multiclass["chance"] == 0.125).all()
    assert (tmp_path / "results" / "report.html").stat().st_size > 10_000
    weights = nib.load(tmp_path / "results" / "weights" / "subj1_face_vs_house.nii.gz")
    assert weights.shape == nib.load(tmp_path / "data" / "subj1" / "bold.nii.gz").shape[:3]
    assert weights.affine[0, 0] < 0  # the generator's flipped x axis is kept


@pytest.mark.slow
def test_demo_shuts_its_cluster_down_without_a_traceback(tmp_path):
    # A heartbeat in flight while the LocalCluster closed printed distributed's
    # "Failed to communicate with scheduler during heartbeat" traceback (1 run in 4).
    for attempt in range(4):
        completed = subprocess.run(
            [sys.executable, "-m", "nidecode.cli", "demo", "--out", str(tmp_path / str(attempt)),
             "--subjects", "2", "--workers", "2", "--quiet"],
            capture_output=True, text=True, timeout=600)
        assert completed.returncode == 0, completed.stderr
        assert "Traceback" not in completed.stderr, completed.stderr
        assert not [line for line in completed.stderr.splitlines() if "Error" in line], \
            completed.stderr
        assert "face vs house" in completed.stdout


@pytest.mark.slow
def test_demo_on_the_real_slice_gives_the_reference_accuracies(tmp_path, capsys):
    assert main(["demo", "--data", "haxby", "--out", str(tmp_path), "--workers", "1",
                 "--quiet"]) == 0
    assert "cat vs face" in capsys.readouterr().out
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert set(summary["subject"]) == {"haxby2001_slice"} and len(summary) == 28
    # The slice's README: z-scored within runs, leave one run out, SVC(C=1).
    face_cat = summary[(summary["class_a"] == "cat") & (summary["class_b"] == "face")]
    assert face_cat["mean_accuracy"].item() == pytest.approx(0.8102, abs=5e-5)
    assert summary["mean_accuracy"].mean() == pytest.approx(0.8641, abs=5e-5)
    assert not (tmp_path / "data").exists()  # the packaged slice is read in place
    assert (tmp_path / "results" / "report.html").is_file()
