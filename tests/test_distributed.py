"""Real Dask processes: a killed worker, resumed runs, any number of workers.

These tests start ``dask scheduler`` and ``dask worker`` processes (or a
LocalCluster of processes) on 127.0.0.1; nothing is mocked.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from distributed import Client
from sklearn.model_selection import LeaveOneGroupOut, cross_val_score
from sklearn.svm import SVC

from nidecode import store
from nidecode.analyses.decode import decode
from nidecode.cli import main
from nidecode.cluster import MallocTuning, get_client, tune_malloc
from nidecode.run import ingest_on_cluster

pytestmark = pytest.mark.cluster
DASK = str(Path(sys.executable).with_name("dask"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def dask_processes():
    """A ``dask scheduler`` and two ``dask worker`` processes (no nanny) on 127.0.0.1."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port",
                                  address.rsplit(":", 1)[1], "--no-dashboard"], **common)
    workers = [subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--no-nanny",
                                 "--host", "127.0.0.1", "--no-dashboard"], **common)
               for _ in range(2)]
    try:
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for process in [*workers, scheduler]:
            process.kill()
            process.wait()


def _symlinked_subjects(slice_dir, directory, n):
    directory.mkdir()
    paths = [directory / f"sub-{index:02d}" for index in range(1, n + 1)]
    for path in paths:
        path.symlink_to(slice_dir, target_is_directory=True)
    return paths


def _sklearn_pair_scores(X, labels, runs, class_a, class_b):
    keep = np.isin(labels, [class_a, class_b])
    return cross_val_score(SVC(kernel="linear"), X[keep], labels[keep], cv=LeaveOneGroupOut(),
                           groups=runs[keep])


def test_workers_of_a_running_scheduler_get_glibc_malloc_thresholds(dask_processes):
    # distributed's MALLOC_TRIM_THRESHOLD_ slows libsvm fits by 20-25 % in workers.
    address, _ = dask_processes
    assert sys.platform != "linux" or tune_malloc()
    with get_client(scheduler=address) as client:
        tuned = client.run(lambda dask_worker: MallocTuning.name in dask_worker.plugins)
    assert list(tuned.values()) == [True, True]


@pytest.mark.slow
def test_killed_worker_does_not_change_the_results(haxby_slice_dir, dask_processes, tmp_path):
    address, workers = dask_processes
    subjects = _symlinked_subjects(haxby_slice_dir, tmp_path / "data", 3)
    store_path = tmp_path / "store.zarr"
    out = tmp_path / "out"
    with Client(address, timeout=30) as client:
        reports = ingest_on_cluster(subjects, store_path, "mask", client, progress=False)
        assert [report["subject"] for report in reports] == ["sub-01", "sub-02", "sub-03"]
        assert [report["n_voxels"] for report in reports] == [530] * 3
        failure = []

        def run():
            try:
                decode(store_path, out, client, progress=False, fits_per_task=12)
            except BaseException as error:  # reported by the main thread
                failure.append(error)

        thread = threading.Thread(target=run)
        thread.start()
        _wait_for(lambda: failure or len(list((out / "parts").glob("[!.]*.npz"))) >= 1,
                  what="a result")
        assert not failure, failure
        saved_at_kill = len(list((out / "parts").glob("[!.]*.npz")))
        workers[0].send_signal(signal.SIGKILL)
        thread.join(timeout=300)
        assert not thread.is_alive() and not failure, failure
        assert saved_at_kill < 84  # the kill happened part-way
        assert len(client.scheduler_info()["workers"]) == 1

    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["fits"] == 3 * 28 * 12
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 3 * 28 * 12
    design = store.read_design(store_path, "sub-01")
    X = store.read_timeseries(store_path, "sub-01")
    for (subject, class_a, class_b), rows in scores.groupby(["subject", "class_a", "class_b"]):
        expected = _sklearn_pair_scores(X, design.labels, design.runs, class_a, class_b)
        np.testing.assert_array_equal(rows["accuracy"].to_numpy(), expected,
                                      err_msg=f"{subject} {class_a} vs {class_b}")


@pytest.mark.slow
def test_results_do_not_depend_on_the_number_of_workers(haxby_store, client, tmp_path):
    categories = ["face", "cat", "house", "shoe"]
    decode(haxby_store["run"], tmp_path / "two", client, categories=categories,
           progress=False, fits_per_task=12)
    with get_client(workers=1) as single:
        decode(haxby_store["run"], tmp_path / "one", single, categories=categories,
               progress=False, fits_per_task=48)
    for name in ("scores.csv", "summary.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    for path in (tmp_path / "two" / "weights").iterdir():
        np.testing.assert_array_equal(nib.load(path).get_fdata(),
                                      nib.load(tmp_path / "one" / "weights" / path.name)
                                      .get_fdata())


def _start_cli_decode(store_path, out):
    environment = {**os.environ, "DASK_NIDECODE__FITS_PER_TASK": "12"}
    return subprocess.Popen([sys.executable, "-m", "nidecode.cli", "decode", str(store_path),
                             "--out", str(out), "--workers", "1", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment, start_new_session=True)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigkill"])
def test_interrupted_run_resumes_with_identical_results(haxby_store, client, tmp_path, how):
    reference = tmp_path / "reference"
    decode(haxby_store["run"], reference, client, progress=False)
    out = tmp_path / "out"
    process = _start_cli_decode(haxby_store["run"], out)
    _wait_for(lambda: len(list((out / "parts").glob("[!.]*.npz"))) >= 2, timeout=120,
              what="two saved results")
    if how == "ctrl-c":
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 130, stderr
        assert "run the same command again to resume" in stderr
        assert "Traceback" not in stderr
    else:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
    # Interrupted: nothing looks complete.
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    assert not (out / "scores.csv").exists()
    saved = len(list((out / "parts").glob("[!.]*.npz")))
    assert 2 <= saved < 28

    assert main(["decode", str(haxby_store["run"]), "--out", str(out), "--workers", "2",
                 "--quiet"]) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["counts"]["fits_computed"] == (28 - saved) * 12
    assert (out / "scores.csv").read_bytes() == (reference / "scores.csv").read_bytes()

    # A complete run started again computes nothing and leaves the same files.
    assert main(["decode", str(haxby_store["run"]), "--out", str(out), "--workers", "1",
                 "--quiet"]) == 0
    assert json.loads((out / "run.json").read_text())["counts"]["fits_computed"] == 0
    assert (out / "scores.csv").read_bytes() == (reference / "scores.csv").read_bytes()


def test_other_parameters_are_refused_unless_overwrite(haxby_store, client, tmp_path, capsys):
    decode(haxby_store["run"], tmp_path, client, categories=["face", "cat"], progress=False)
    status = main(["decode", str(haxby_store["run"]), "--out", str(tmp_path), "--categories",
                   "face,cat", "--C", "0.5", "--quiet"])
    assert status == 2
    assert "other parameters (C)" in capsys.readouterr().err
    summary = decode(haxby_store["run"], tmp_path, client, categories=["face", "cat"], C=0.5,
                     overwrite=True, progress=False)
    assert json.loads((tmp_path / "run.json").read_text())["identity"]["C"] == 0.5
    assert len(summary) == 1 and len(list((tmp_path / "parts").iterdir())) == 1


def _heartbeat_failure_is_logged() -> bool:
    import logging

    from nidecode.cluster import HEARTBEAT_FAILURE

    record = logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1,
                               HEARTBEAT_FAILURE + ".", None, None)
    return bool(logging.getLogger("distributed.worker").filter(record))


def test_workers_drop_heartbeat_failures_once_the_cluster_closes():
    # The traceback of a heartbeat in flight while the LocalCluster closes is
    # harmless noise; before closing, get_client drops just that message.
    from nidecode.cluster import quiet_heartbeats

    with get_client(workers=1) as local:
        assert list(local.run(_heartbeat_failure_is_logged).values()) == [True]
        quiet_heartbeats(local)
        assert list(local.run(_heartbeat_failure_is_logged).values()) == [False]


@pytest.mark.cluster
def test_a_task_whose_workers_keep_dying_is_one_cluster_error(tmp_path):
    import dask

    from nidecode.errors import ClusterError
    from nidecode.run import run_tasks

    saved = []
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            get_client(workers=1) as client:
        futures = [client.submit(int, 7, pure=False), client.submit(os._exit, 1, pure=False)]
        with pytest.raises(ClusterError, match="the workers running a task died"):
            run_tasks(client, futures, on_result=saved.append, count=lambda _: 1, total=2,
                      progress=False)
    assert saved in ([], [7])  # what finished first stays handed over
