"""Processes killed at random moments never leave output that looks complete but isn't.

Real ``nidecode`` processes are killed with SIGKILL at random points (a
bounded number of trials, fixed seeds); after each kill the store and the
outputs must be either complete and correct, or recognisably incomplete,
and the next run must repair them.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nidecode import store
from nidecode.cli import main
from nidecode.synth import make_dataset

pytestmark = pytest.mark.slow
TRIALS = 5


def _run_and_kill(arguments, delay):
    process = subprocess.Popen([sys.executable, "-m", "nidecode.cli", *arguments, "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    time.sleep(delay)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    directory = tmp_path_factory.mktemp("crash")
    subjects = make_dataset(directory / "data", n_subjects=2, shape=(12, 14, 6))
    reference = directory / "reference.zarr"
    assert main(["ingest", *map(str, subjects), "--store", str(reference), "--mask",
                 "mask4_vt", "--workers", "1", "--quiet"]) == 0
    return directory, subjects, reference


def test_killed_ingest_leaves_complete_subjects_or_none(synthetic):
    directory, subjects, reference = synthetic
    rng = random.Random(0)
    target = directory / "killed.zarr"
    for trial in range(TRIALS):
        _run_and_kill(["ingest", *map(str, subjects), "--store", str(target), "--mask",
                       "mask4_vt"], delay=rng.uniform(0.5, 4.0))
        if not (target / "zarr.json").exists():
            continue
        for subject in store.list_subjects(target):
            design = store.read_design(target, subject)
            data = store.read_timeseries(target, subject, verify=design.checksum)
            np.testing.assert_array_equal(data, store.read_timeseries(reference, subject),
                                          err_msg=f"trial {trial}, {subject}")
    assert main(["ingest", *map(str, subjects), "--store", str(target), "--mask", "mask4_vt",
                 "--quiet"]) == 0
    assert store.list_subjects(target) == ["subj1", "subj2"]


def test_killed_decode_is_flagged_and_repaired(synthetic, tmp_path):
    _, _, reference = synthetic
    expected = tmp_path / "expected"
    assert main(["decode", str(reference), "--out", str(expected), "--workers", "1",
                 "--quiet"]) == 0
    out = tmp_path / "killed"
    rng = random.Random(1)
    for trial in range(TRIALS):
        _run_and_kill(["decode", str(reference), "--out", str(out), "--workers", "1"],
                      delay=rng.uniform(1.0, 8.0))
        manifest_path = out / "run.json"
        if not manifest_path.exists():
            continue
        status = json.loads(manifest_path.read_text())["status"]
        scores = out / "scores.csv"
        if status == "complete" or scores.exists():
            assert scores.read_bytes() == (expected / "scores.csv").read_bytes(), trial
        assert not [path for path in out.rglob(".*")
                    if status == "complete"], f"temporary files left in a complete run ({trial})"
    assert main(["decode", str(reference), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert (out / "scores.csv").read_bytes() == (expected / "scores.csv").read_bytes()
    assert not list(out.rglob(".*"))
