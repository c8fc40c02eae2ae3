"""What numba compiles for the default searchlight solver, and the workers' warm-up.

A fresh install's first searchlight pays for every specialisation numba
compiles: each kernel must compile once, whatever literal its callers pass.
"""

import json
import os
import subprocess
import sys
import time

import pytest

# Compiles the batched solver in a fresh process with an empty cache (a fresh install) and
# prints what numba compiled: {function: specialisations} and the library functions.
COMPILE_SCRIPT = """
import json
from collections import Counter

import numpy as np
import scipy.sparse as sp
from numba.core import event

from nidecode.solvers import batched, libsvm


def compiled(tie_margin=1.0, **options):
    X = np.random.default_rng(0).normal(size=(8, 3))
    folds = [(np.arange(4, 8), np.arange(4)), (np.arange(4), np.arange(4, 8))]
    # tie_margin=1: every fold is a near tie, refitted (by scikit-learn's libsvm here).
    with event.install_recorder("numba:compile") as recorder:
        batched.searchlight_accuracies(X, np.tile([0, 1], 4), sp.csr_matrix(np.ones((1, 3))),
                                       folds, return_decisions=True, tie_margin=tie_margin,
                                       **options)
    ours, library = Counter(), Counter()
    for _, record in recorder.buffer:
        if record.is_start:
            function = record.data["dispatcher"].py_func
            counter = ours if function.__module__.startswith("nidecode") else library
            counter[function.__qualname__] += 1
    return ours, library


ours, library = compiled(rank_margin=0.0)
rent = batched._rent_paid()  # the near-tie refits' time on scikit-learn's libsvm
auc, _ = compiled(rank_margin=np.inf, tie_margin=0.0)  # every fold's AUC refitted: the replica
X = np.random.default_rng(0).normal(size=(8, 3))
folds = [(np.arange(4, 8), np.arange(4)), (np.arange(4), np.arange(4, 8))]
with event.install_recorder("numba:compile") as recorder:
    libsvm.searchlight_accuracies(X, np.tile([0, 1], 4), sp.csr_matrix(np.ones((1, 3))), folds,
                                  return_decisions=True)
then = sorted({record.data["dispatcher"].py_func.__qualname__
               for _, record in recorder.buffer if record.is_start})
print(json.dumps({"ours": ours, "library": library, "rent": rent, "auc": auc,
                  "libsvm_after": then}))
"""

#: libsvm's SMO replica and what only it calls: never compiled for an accuracy searchlight.
REPLICA = {"_fit", "_smo", "_score_fold_libsvm", "_do_shrinking", "_swap_index",
           "_reconstruct_gradient", "_row_offset", "_build_compact", "_calculate_rho",
           "_alloc_workspace", "_gram", "_to_qfloat", "_refit_kernel", "_rank_refit"}


@pytest.mark.slow
def test_fresh_install_compiles_each_kernel_once(tmp_path):
    """With an empty cache, the batched solver compiles each of its kernels once (no
    second copy for a literal 0 or True), no shape-mismatch message (numba's slice
    assignment formats one with its string functions: seconds of compilation) and not
    libsvm's SMO replica: its refits run on scikit-learn's libsvm until the replica is
    compiled. The ROC AUC's rank refits compile the replica, and libsvm's solver then
    finds its SMO compiled."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, check=True,
                          capture_output=True, text=True)
    compiled = json.loads(done.stdout)
    assert "_searchlight_kernel" in compiled["ours"]
    assert not REPLICA & set(compiled["ours"])
    assert {name: n for name, n in compiled["ours"].items() if n > 1} == {
        "_bordered_leave": 2}  # left: an int/bool mix
    # 54 two stops ago, then 28; +4: the near-tie rule's _sensitivity and its bound,
    # and _first_min and _matvec compiled apart (inlined, the kernel took ~1.5 s longer);
    # +1: _accurate, the check that spares most folds the rebuild of their B; +3: the
    # line search in float32 (its 1-d and 2-d arrays), its kinks searched as integers;
    # -1: that search now an intrinsic, compiled within its caller
    assert sum(compiled["ours"].values()) + sum(compiled["library"].values()) == 35
    assert not [name for name in compiled["library"]
                if "shape_context" in name or "str" in name or "repr" in name]
    # Their time is kept beside numba's cache, for every later run to count on.
    assert compiled["rent"] > 0
    assert [path.name for path in tmp_path.rglob("nidecode-sklearn-refit-seconds")]
    assert {"_refit_kernel", "_fit", "_smo"} <= set(compiled["auc"])
    # --solver libsvm then reuses the refits' compiled libsvm path (same argument types).
    assert "_fit" not in compiled["libsvm_after"]
    assert "_score_fold_libsvm" not in compiled["libsvm_after"]
    assert "_searchlight_kernel" in compiled["libsvm_after"]


def _warm_up_state() -> tuple[bool, int]:
    """On a worker: whether the warm-up thread still runs, and the kernel's signatures."""
    import threading

    from nidecode.solvers import batched as worker_batched

    running = any(thread.name == "nidecode-warm-up" for thread in threading.enumerate())
    return running, len(worker_batched._searchlight_kernel.signatures)


def _imported() -> bool:
    """On a worker: whether scipy.sparse, scikit-learn and the batched solver are imported
    (not only being imported: a module is in sys.modules from the start of its import)."""
    import sys

    modules = ("scipy.sparse", "sklearn.model_selection", "nidecode.solvers.batched")
    last_names = ("csr_matrix", "LeaveOneGroupOut", "_info")  # defined late in each
    return all(hasattr(sys.modules.get(module), name)
               for module, name in zip(modules, last_names, strict=True))


@pytest.mark.slow
def test_warm_up_imports_the_solver_before_its_thread(client):
    """The warm-up returns with the solver and what it imports imported on every
    worker: imported by its thread, scipy.sparse or sklearn could be half initialised
    when the worker unpickles a task that imports them too (a circular-import error,
    the run stalled; seen with scipy.sparse and sklearn.base)."""
    from nidecode.cluster import warm_up_solvers

    client.restart()  # workers that never imported them
    assert not any(client.run(_imported).values())
    warm_up_solvers(client)
    assert all(client.run(_imported).values())


@pytest.mark.slow
def test_warm_up_compiles_the_solver_on_every_worker(client):
    """warm_up_solvers returns at once and leaves the batched kernel ready on every worker."""
    from nidecode.cluster import warm_up_solvers

    started = time.perf_counter()
    warm_up_solvers(client)
    # The imports (~1-5 s, as the first task would) wait; the compilation runs in the
    # background.
    assert time.perf_counter() - started < 15.0
    deadline = time.monotonic() + 300
    while True:
        states = client.run(_warm_up_state)
        if not any(running for running, _ in states.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(states) == 2
    assert all(state == (False, 1) for state in states.values()), states


def test_warm_up_skips_other_solvers(client):
    """Other classifiers and solvers start no thread on the workers."""
    from nidecode.cluster import warm_up_solvers

    before = client.run(_warm_up_state)
    warm_up_solvers(client, "gnb", "batched")
    warm_up_solvers(client, "svc", "libsvm")
    after = client.run(_warm_up_state)
    assert [running for running, _ in after.values()] == [False, False]
    assert {w: n for w, (_, n) in after.items()} == {w: n for w, (_, n) in before.items()}
