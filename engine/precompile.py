"""``nidecode compile``: every numba kernel of nidecode compiled into numba's cache at once.

:func:`nidecode.solvers.warm.solver_groups` covers the solvers; group
inference's kernels (:mod:`nidecode.inference`) sit above the solvers in the
layers, so this module, above both, adds them. No Dask: it runs in the
process that calls it, e.g. an image build or a job before the workers start.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["cache_location", "compile_all"]


def compile_all(progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Compile (or load) every numba kernel of nidecode once, with real runs' argument types.

    Parameters
    ----------
    progress : callable, optional
        Called with each group's dict as soon as the group is done.

    Returns
    -------
    list of dict
        Per group: ``group``, ``seconds``, ``compiled`` and ``loaded`` (see
        :func:`nidecode.solvers.warm.compile_groups`).

    Raises
    ------
    nidecode.errors.InputError
        When ``NUMBA_CACHE_DIR`` is set but not writable (before anything compiles).
    """
    from nidecode import inference
    from nidecode.solvers import warm

    groups = {**warm.solver_groups(), "group inference": _group_inference}
    return warm.compile_groups(groups, [*warm.solver_modules(), inference], progress)


def cache_location() -> tuple[list[Path], bool]:
    """Where the kernels are cached: ``[NUMBA_CACHE_DIR]`` when it is set, else the
    directories numba uses next to the package; and whether ``NUMBA_CACHE_DIR`` is set."""
    from nidecode import inference
    from nidecode.solvers import warm

    directory = warm.cache_directory()
    if directory is not None:
        return [directory], True
    return warm.kernel_directories([*warm.solver_modules(), inference]), False


def _group_inference() -> None:
    """Stelzer's test on two subjects' maps of eight voxels (its draws' kernels)."""
    from nidecode import inference

    rng = np.random.default_rng(0)
    nulls = [rng.uniform(0.3, 0.7, size=(4, 8)).astype(np.float32) for _ in range(2)]
    observed = rng.uniform(0.4, 0.8, size=(2, 8)).astype(np.float32)
    draws = inference.draw_combinations([4, 4], 10, seed=0)
    inference.stelzer_test(observed, nulls, draws, cluster_p=0.5,
                           volume_index=np.arange(8), shape=(2, 2, 2))
