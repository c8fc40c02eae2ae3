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
