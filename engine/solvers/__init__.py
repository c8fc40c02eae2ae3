"""The linear SVM solvers: one module per ``--solver`` choice, and the ROI fits.

Searchlight solvers, all with ``searchlight_accuracies(X, y, spheres, folds,
C=1.0, tol=1e-3, *, ...)`` returning the (n_spheres, n_folds) accuracies of
``SVC(kernel="linear", C=C)``, keyword options of their own after the ``*``:

* :mod:`nidecode.solvers.batched` (``--solver batched``, the default): every
  fold solved exactly from the sphere's all-scans solution by active-set
  methods, refitted on libsvm's path at near ties (numba).
* :mod:`nidecode.solvers.libsvm` (``--solver libsvm``): libsvm's SMO ported
  step for step, one Gram matrix per sphere for all folds (numba); also
  ``fit_linear_svm_gram`` / ``decision_function_gram``, single fits from a
  Gram matrix (the ROI permutations).
* :mod:`nidecode.solvers.reference` (``--solver sklearn``): scikit-learn's
  ``SVC`` one sphere at a time, the reference the others are tested against.

ROI decoding: :mod:`nidecode.solvers.svc` (``cross_validate_svc``) calls
scikit-learn's libsvm wrapper as ``SVC`` does, with bit-identical results.

:mod:`nidecode.solvers._common` holds the private helpers the searchlight
solvers share (input checks, labels, kernel arrays, the Gram matrix).
Modules are imported on first use: :data:`SPHERE_SOLVERS` lists the names
without loading numba or scikit-learn.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping

__all__ = ["SPHERE_SOLVERS"]

#: ``--solver`` choice -> the module (in this package) whose function it runs.
_SPHERE_SOLVER_MODULES = {"batched": "batched", "libsvm": "libsvm", "sklearn": "reference"}


class _SphereSolvers(Mapping):
    """``--solver`` choice -> ``searchlight_accuracies`` of its module, which is
    imported on the first lookup, not when the names are listed."""

    def __getitem__(self, name: str) -> Callable:
        module = importlib.import_module(f"{__name__}.{_SPHERE_SOLVER_MODULES[name]}")
        return module.searchlight_accuracies

    def __iter__(self) -> Iterator[str]:
        return iter(_SPHERE_SOLVER_MODULES)

    def __len__(self) -> int:
        return len(_SPHERE_SOLVER_MODULES)


#: Searchlight solvers by ``--solver`` name (see the module docstring).
SPHERE_SOLVERS: Mapping[str, Callable] = _SphereSolvers()
