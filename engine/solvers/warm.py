"""Fill numba's cache ahead of time: every compiled solver kernel called once.

A fresh install compiles the solvers' numba kernels on their first call (about
16 s for the batched SVC, 8 s more for libsvm's SMO replica, a few seconds for
the others). :func:`solver_groups` calls each public entry point once on a
tiny problem, through the same argument checks and conversions a real run's
call goes through, so the kernels compile with the argument types real runs
use and numba's cache holds the entries they load. Run it where the cache is
written (``NUMBA_CACHE_DIR`` or numba's default next to the package), e.g. in
an image build or before a cluster's workers start: ``nidecode compile``.

Each group of calls reports how many specialisations numba compiled (a
``numba:compile`` event: not in the cache) and how many it loaded from the
cache (numba's count of cache hits). Group inference's
kernels live in a higher layer: :mod:`nidecode.precompile` adds them.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
import scipy.sparse as sp

from nidecode.errors import InputError

__all__ = ["cache_directory", "check_cache_directory", "compile_groups",
           "kernel_directories", "solver_groups", "solver_modules"]

#: The solver modules that hold numba kernels (``@njit(cache=True)``).
_KERNEL_MODULES = ("_common", "batched", "libsvm", "gnb", "lda", "svc")


def solver_modules() -> list[ModuleType]:
    """The solver modules whose numba kernels :func:`solver_groups` compiles."""
    return [importlib.import_module(f"nidecode.solvers.{name}") for name in _KERNEL_MODULES]


def cache_directory() -> Path | None:
    """``NUMBA_CACHE_DIR`` as numba reads it (environment or numba's config file), or None."""
    from numba.core import config

    return Path(config.CACHE_DIR) if config.CACHE_DIR else None


def check_cache_directory() -> Path | None:
    """Make sure numba can write to ``NUMBA_CACHE_DIR`` when it is set.

    numba tries the same (the directory made, a temporary file in it) and, when
    that fails, silently caches next to the package instead: a cache filled
    there is not the one the workers read.

    Returns
    -------
    pathlib.Path or None
        The directory, or None when ``NUMBA_CACHE_DIR`` is unset.

    Raises
    ------
    nidecode.errors.InputError
        When the directory cannot be made or written.
    """
    path = cache_directory()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as error:
        reason = ("a file, not a directory" if path.exists() and not path.is_dir()
                  else (error.strerror or str(error)).lower())
        raise InputError(f"NUMBA_CACHE_DIR={path}: numba cannot write its cache there "
                         f"({reason}); point NUMBA_CACHE_DIR at a writable directory, or "
                         "unset it to cache next to the package") from None
    return path


def _dispatchers(modules: Iterable[ModuleType]) -> list:
    """The numba dispatchers defined in ``modules`` (not those they import)."""
    from numba.core.dispatcher import Dispatcher

    return [value for module in modules for value in vars(module).values()
            if isinstance(value, Dispatcher) and value.py_func.__module__ == module.__name__]


def kernel_directories(modules: Iterable[ModuleType]) -> list[Path]:
    """The directories numba really caches the kernels of ``modules`` in, sorted."""
    paths = set()
    for dispatcher in _dispatchers(modules):
        try:
            paths.add(Path(dispatcher._cache._cache_path))
        except AttributeError:  # numba's private layout, or no cache for this function
            continue
    return sorted(paths)


def _cache_hits(dispatcher) -> int:
    """How many specialisations the dispatcher has loaded from numba's cache so far."""
    return sum(dispatcher.stats.cache_hits.values())


def _run_group(name: str, call: Callable[[], object], dispatchers: list) -> dict:
    """Run ``call``; count nidecode's specialisations numba compiled and loaded meanwhile."""
    from numba.core import event

    before = {dispatcher: _cache_hits(dispatcher) for dispatcher in dispatchers}
    started = time.perf_counter()
    with event.install_recorder("numba:compile") as recorder:
        call()
    seconds = time.perf_counter() - started
    # A compile event: not in the cache (numba found no entry, or could not load it).
    compiled = sum(1 for _, record in recorder.buffer if record.is_start
                   and record.data["dispatcher"].py_func.__module__.startswith("nidecode"))
    loaded = sum(_cache_hits(dispatcher) - hits for dispatcher, hits in before.items())
    return {"group": name, "seconds": seconds, "compiled": compiled, "loaded": loaded}


def compile_groups(groups: Mapping[str, Callable[[], object]], modules: Iterable[ModuleType],
                   progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Run each group of calls once, after checking the cache directory.

    Parameters
    ----------
    groups : mapping of str to callable
        Name -> a call without arguments that runs some kernels.
    modules : iterable of module
        The modules whose kernels are counted.
    progress : callable, optional
        Called with each group's dict as soon as the group is done.

    Returns
    -------
    list of dict
        Per group: ``group`` (name), ``seconds``, ``compiled`` and ``loaded``
        (specialisations of nidecode's kernels compiled, and loaded from the cache).

    Raises
    ------
    nidecode.errors.InputError
        When ``NUMBA_CACHE_DIR`` is set but not writable (before anything compiles).
    """
    check_cache_directory()
    dispatchers = _dispatchers(modules)
    results = []
    for name, call in groups.items():
        results.append(_run_group(name, call, dispatchers))
        if progress is not None:
            progress(results[-1])
    return results


def solver_groups() -> dict[str, Callable[[], object]]:
    """Name -> a call on a tiny problem, in the order they compile best (the replica
    after the batched kernel, libsvm's searchlight after the replica it shares)."""
    return {"batched searchlight": _batched, "batched refits (libsvm replica)": _replica,
            "libsvm searchlight": _libsvm, "gnb searchlight": _gnb, "lda searchlight": _lda,
            "roi decode": _roi}


def _problem() -> tuple:
    """Eight scans of three voxels, two classes, two spheres, two folds."""
    X = np.random.default_rng(0).normal(size=(8, 3))
    y = np.tile([0, 1], 4)
    spheres = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]))
    folds = [(np.arange(4, 8), np.arange(4)), (np.arange(4), np.arange(4, 8))]
    return X, y, spheres, folds


def _batched() -> None:
    from nidecode.solvers import batched

    # tie_margin=0: no near-tie refit (they would run on scikit-learn's libsvm here).
    batched.searchlight_accuracies(*_problem(), return_decisions=True, tie_margin=0.0,
                                   rank_margin=0.0)


def _replica() -> None:
    from nidecode.solvers import batched

    # rank_margin=inf: every fold's AUC is refitted, always on the replica.
    batched.searchlight_accuracies(*_problem(), return_decisions=True, tie_margin=0.0,
                                   rank_margin=np.inf)


def _libsvm() -> None:
    from nidecode.solvers import libsvm

    libsvm.searchlight_accuracies(*_problem(), return_decisions=True)


def _permutations(y: np.ndarray) -> np.ndarray:
    """Two label vectors: ``y`` and a permutation of it."""
    return np.stack([y, np.random.default_rng(0).permutation(y)])


def _gnb() -> None:
    from nidecode.solvers import gnb

    X, y, spheres, folds = _problem()
    gnb.searchlight_accuracies(X, y, spheres, folds, return_decisions=True, return_proba=True)
    gnb.permutation_accuracies(X, _permutations(y), spheres, folds)


def _lda() -> None:
    from nidecode.solvers import lda

    X, y, spheres, folds = _problem()
    lda.searchlight_accuracies(X, y, spheres, folds, return_decisions=True)
    lda.permutation_accuracies(X, _permutations(y), spheres, folds, shrinkage=0.5)


def _roi() -> None:
    """The decode's kernel between scans (SVC's dot products) and the ROI permutations'
    fits from a Gram matrix."""
    from nidecode.solvers import libsvm, svc

    X, y, _, _ = _problem()
    groups = y.astype(np.intp)
    kernel = svc.linear_kernel(X, groups, np.ones((2, 2), dtype=bool))
    dual_coef, intercept = libsvm.fit_linear_svm_gram(kernel, y)
    libsvm.decision_function_gram(kernel, dual_coef, intercept)
