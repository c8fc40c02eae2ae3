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

Other classifiers (``--classifier lda|gnb|logreg``):
:mod:`nidecode.solvers.estimators` makes their scikit-learn estimators and
fits them per fold (``cross_validate_estimator``); :func:`sphere_solver`
picks any classifier's searchlight function (a closed form where
:data:`_FAST_CLASSIFIERS` names one, else scikit-learn's estimator one
sphere at a time, :func:`nidecode.solvers.reference.searchlight_scores_estimator`).

:mod:`nidecode.solvers._common` holds the private helpers the searchlight
solvers share (input checks, labels, kernel arrays, the Gram matrix);
:mod:`nidecode.solvers._smo_passes` the passes of libsvm's SMO iteration in
LLVM vectors, :mod:`nidecode.solvers._vector_min` the exact line search's scan
for its next kink, and :mod:`nidecode.solvers._borrow` arrays without reference
counts for the exact solver's hot calls (numba intrinsics, built with
:mod:`nidecode.solvers._llvm_ir`).
:mod:`nidecode.solvers.warm` calls every solver kernel once on a tiny problem, for
``nidecode compile`` (:func:`nidecode.precompile.compile_all`).
Modules are imported on first use: :data:`SPHERE_SOLVERS` lists the names
without loading numba or scikit-learn.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator, Mapping

__all__ = ["SPHERE_SOLVERS", "has_closed_form", "sphere_permutation_solver", "sphere_solver"]

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


#: Classifier -> the module (in this package) whose ``searchlight_accuracies(X, y, spheres,
#: folds, *, return_decisions=False, **options)`` computes its searchlight in closed form
#: (``lda``'s takes ``shrinkage=``); classifiers absent here run their scikit-learn
#: estimator one sphere at a time.
_FAST_CLASSIFIERS: dict[str, str] = {"gnb": "gnb", "lda": "lda"}


def sphere_solver(classifier: str, solver: str, *, C: float, shrinkage="auto",
                  class_weight: str | None = None) -> Callable:
    """The searchlight function of a classifier, its parameters bound.

    Parameters
    ----------
    classifier : {"svc", "lda", "gnb", "logreg"}
    solver : {"batched", "libsvm", "sklearn"}
        ``svc``: :data:`SPHERE_SOLVERS`'s function of that name. Other
        classifiers: ``"sklearn"`` runs the scikit-learn estimator one sphere
        at a time; ``"batched"`` the classifier's closed form where there is
        one (:data:`_FAST_CLASSIFIERS`), else the same per-sphere fits.
    C : float
        ``svc`` and ``logreg``.
    shrinkage : {"auto"} or float
        ``lda`` only.
    class_weight : {None, "balanced"}
        ``svc`` and ``logreg``; passed to the SVM solvers only when given.

    Returns
    -------
    callable
        ``fit(X, y, spheres, folds, return_decisions=False, **solver_options)``
        returning the (n_spheres, n_folds) accuracies, and the test scans'
        decision values with ``return_decisions``.
    """
    if classifier == "svc":
        options = {} if class_weight is None else {"class_weight": class_weight}
        return functools.partial(SPHERE_SOLVERS[solver], C=C, **options)
    if has_closed_form(classifier, solver):
        module = importlib.import_module(f"{__name__}.{_FAST_CLASSIFIERS[classifier]}")
        options = {"shrinkage": shrinkage} if classifier == "lda" else {}
        return functools.partial(module.searchlight_accuracies, **options)
    from nidecode.solvers.estimators import make_estimator
    from nidecode.solvers.reference import searchlight_scores_estimator

    estimator = make_estimator(classifier, C, shrinkage, class_weight)
    return functools.partial(searchlight_scores_estimator, estimator=estimator)


def sphere_permutation_solver(classifier: str, solver: str, *,
                              shrinkage="auto") -> Callable | None:
    """The closed form's many-labellings function of a classifier, or None.

    ``fit(X, label_sets, spheres, folds)`` returns the (n_sets, n_spheres,
    n_folds) accuracies of every label vector (row of ``label_sets``), with
    the data checked and centred once: what searchlight permutations call
    instead of :func:`sphere_solver`'s function once per permutation.
    """
    if not has_closed_form(classifier, solver):
        return None
    module = importlib.import_module(f"{__name__}.{_FAST_CLASSIFIERS[classifier]}")
    options = {"shrinkage": shrinkage} if classifier == "lda" else {}
    return functools.partial(module.permutation_accuracies, **options)


def has_closed_form(classifier: str, solver: str) -> bool:
    """Whether the classifier's searchlight runs its closed form (without importing it)."""
    return classifier in _FAST_CLASSIFIERS and solver != "sklearn"

