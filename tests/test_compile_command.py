"""``nidecode compile``: numba's cache filled ahead of time, loaded by later runs.

Real processes with their own ``NUMBA_CACHE_DIR`` (numba reads it at import).
"""

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nidecode

GROUPS = ["batched searchlight", "batched refits (libsvm replica)", "libsvm searchlight",
          "gnb searchlight", "lda searchlight", "roi decode", "group inference"]
LINE = re.compile(r"^(?P<group>.+?)\s+compiled (?P<compiled>\d+), loaded (?P<loaded>\d+), "
                  r"(?P<seconds>\d+\.\d) s$")

# Another process on the same cache: the solvers as analyses call them, on a problem unlike
# the compile command's (float32 data, string labels, scikit-learn's folds, int32 sphere
# indices), recording what numba compiles.
CHECK_SCRIPT = """
import json

import numpy as np
import scipy.sparse as sp
from numba.core import event
from sklearn.model_selection import LeaveOneGroupOut

from nidecode import inference
from nidecode.solvers import batched, gnb, lda, libsvm, svc

# Before any call: the replica counts as ready from the cache's index alone.
ready, rent = batched._replica_ready(), batched._rent_paid()
rng = np.random.default_rng(1)
X = rng.normal(size=(24, 7)).astype(np.float32)
y = np.tile(["face", "house"], 12)
runs = np.repeat(np.arange(4), 6)
folds = list(LeaveOneGroupOut().split(X, y, runs))
spheres = sp.csr_matrix((rng.uniform(size=(5, 7)) < 0.5) | np.eye(5, 7, dtype=bool))
with event.install_recorder("numba:compile") as recorder:
    batched.searchlight_accuracies(X, y, spheres, folds, return_decisions=True, rank_margin=np.inf)
    libsvm.searchlight_accuracies(X, y, spheres, folds)
    gnb.searchlight_accuracies(X, y, spheres, folds, return_decisions=True)
    gnb.permutation_accuracies(X, np.stack([y, y[::-1]]), spheres, folds)
    lda.searchlight_accuracies(X, y, spheres, folds)
    lda.permutation_accuracies(X, np.stack([y, y[::-1]]), spheres, folds)
    kernel = svc.linear_kernel(X)
    libsvm.fit_linear_svm_gram(kernel[:12, :12], y[:12], C=0.5)
    nulls = [rng.uniform(size=(5, 8)) for _ in range(3)]
    inference.stelzer_test(np.stack([null[0] for null in nulls]), nulls,
                           inference.draw_combinations([5, 5, 5], 20, seed=1), 0.2,
                           np.arange(8) * 2, (4, 2, 2))
compiled = sorted(record.data["dispatcher"].py_func.__qualname__
                  for _, record in recorder.buffer
                  if record.is_start
                  and record.data["dispatcher"].py_func.__module__.startswith("nidecode"))
print(json.dumps({"ready": ready, "rent": rent, "compiled": compiled,
                  "replica_loaded": sum(batched._refit_kernel.stats.cache_hits.values())}))
"""


def _kernels() -> set[str]:
    """``module.function`` of every numba kernel of nidecode that is not inlined (in any
    module of the package that decorates one: a new one is found too)."""
    from numba.core.dispatcher import Dispatcher

    root = Path(nidecode.__file__).parent
    names = [".".join(("nidecode", *path.relative_to(root).with_suffix("").parts))
             for path in root.rglob("*.py") if "@njit" in path.read_text()]
    modules = [importlib.import_module(name) for name in names]
    return {f"{module.__name__.rsplit('.', 1)[-1]}.{name}"
            for module in modules
            for name, value in vars(module).items()
            if isinstance(value, Dispatcher) and value.py_func.__module__ == module.__name__
            and value.targetoptions.get("inline") != "always"}


def _run(args, cache, check=True):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          check=check)


def _groups(stdout: str) -> dict[str, dict[str, int]]:
    """The command's per-group lines: {group: {"compiled": n, "loaded": n}}."""
    matches = [LINE.match(line) for line in stdout.splitlines()]
    return {match["group"]: {"compiled": int(match["compiled"]), "loaded": int(match["loaded"])}
            for match in matches if match}


@pytest.mark.slow
def test_compile_fills_the_cache_that_later_runs_load(tmp_path):
    """On an empty cache every group compiles; a later process then compiles none of
    nidecode's kernels for any solver (the replica included, ready before any refit), and
    the command run again loads everything."""
    cold = _run(["-m", "nidecode.cli", "compile"], tmp_path)
    groups = _groups(cold.stdout)
    assert list(groups) == GROUPS, cold.stdout
    assert all(counts["compiled"] > 0 for counts in groups.values()), groups
    assert groups["batched searchlight"]["compiled"] >= 10
    assert cold.stdout.strip().splitlines()[-1] == f"numba cache: {tmp_path} (NUMBA_CACHE_DIR)"
    assert cold.stderr.strip().splitlines() == [
        "compiling nidecode's numba kernels (about a minute on an empty cache)"]
    # Every kernel of nidecode has its index in the cache (those inlined have none).
    indexed = {path.name.split("-")[0] for path in tmp_path.rglob("*.nbi")}
    assert indexed == _kernels()

    checked = json.loads(_run(["-c", CHECK_SCRIPT], tmp_path).stdout)
    assert checked["compiled"] == []
    assert checked["ready"] is True and checked["rent"] == 0.0
    assert checked["replica_loaded"] == 1  # the rank refits ran on it, from the cache

    warm = _run(["-m", "nidecode.cli", "compile", "--quiet"], tmp_path)
    assert warm.stdout == "" and warm.stderr == ""
    warm = _run(["-m", "nidecode.cli", "compile"], tmp_path)
    assert {name: counts["compiled"] for name, counts in _groups(warm.stdout).items()} == {
        name: 0 for name in GROUPS}
    assert all(counts["loaded"] > 0 for counts in _groups(warm.stdout).values())


@pytest.mark.parametrize("where", ["file", "file/below"])
def test_unwritable_cache_directory_is_one_line(tmp_path, where):
    """NUMBA_CACHE_DIR on a file (or below one): numba would quietly cache next to the
    package instead, so the command refuses before compiling, in one line."""
    (tmp_path / "file").write_text("not a directory")
    cache = tmp_path / where
    done = _run(["-m", "nidecode.cli", "compile"], cache, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"nidecode: error: NUMBA_CACHE_DIR={cache}: numba cannot write "
                               "its cache there (")
    assert lines[0].endswith("point NUMBA_CACHE_DIR at a writable directory, or unset it to "
                             "cache next to the package")
    assert not any(tmp_path.rglob("*.nbi"))
