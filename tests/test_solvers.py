"""The solvers package: ``--solver`` names, one module each, one shared signature."""

import inspect
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from nidecode.errors import InputError
from nidecode.solvers import SPHERE_SOLVERS, batched, libsvm, reference
from tests._solver_cases import synthetic_searchlight

_PROBE = """
import sys
from nidecode.solvers import SPHERE_SOLVERS
print(",".join(SPHERE_SOLVERS), *(name for name in ("numba", "sklearn") if name in sys.modules))
"""


def test_names_are_listed_without_loading_numba_or_sklearn():
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["batched,libsvm,sklearn"]


def test_each_choice_runs_the_module_named_after_it():
    assert dict(SPHERE_SOLVERS) == {"batched": batched.searchlight_accuracies,
                                    "libsvm": libsvm.searchlight_accuracies,
                                    "sklearn": reference.searchlight_accuracies}
    with pytest.raises(KeyError):
        SPHERE_SOLVERS["warm"]


def test_the_solvers_share_one_signature():
    shared = ["X", "y", "spheres", "folds", "C", "tol"]
    for solve in SPHERE_SOLVERS.values():
        parameters = list(inspect.signature(solve).parameters.values())
        assert [p.name for p in parameters[:6]] == shared
        assert [p.default for p in parameters[4:6]] == [1.0, 1e-3]
        assert all(p.kind is p.KEYWORD_ONLY for p in parameters[6:])


@pytest.mark.parametrize("name", ["batched", "libsvm", "sklearn"])
def test_the_solvers_refuse_bad_inputs_alike(name):
    solve = SPHERE_SOLVERS[name]
    X, y, spheres, folds = synthetic_searchlight(6)
    one_class = [(np.flatnonzero(y == 0), np.flatnonzero(y == 1))]
    cases = [((X, y, spheres, one_class), "a training fold contains a single class"),
             ((X[:, :10], y, spheres, folds), "spheres has 40 voxel columns but X has 10"),
             ((X, np.arange(len(y)) % 3, spheres, folds), "exactly 2 classes"),
             ((X, y, sp.csr_matrix((2, 40), dtype=bool), folds), "some spheres are empty"),
             ((X, y, spheres, [(np.array([0, 999]), np.array([2]))]),
              r"fold 0: train indices must be 1D in \[0, 72\)")]
    for args, message in cases:
        with pytest.raises(InputError, match=message):
            solve(*args)
    with pytest.raises(InputError, match="The 'C' parameter of searchlight_accuracies must be "
                                         "a positive finite float. Got 0.0 instead."):
        solve(X, y, spheres, folds, C=0.0)


@pytest.mark.parametrize("name", ["batched", "libsvm", "sklearn"])
def test_the_solvers_refuse_an_unknown_class_weight_alike(name):
    X, y, spheres, folds = synthetic_searchlight(6)
    with pytest.raises(InputError, match="The 'class_weight' parameter of "
                                         "searchlight_accuracies must be"):
        SPHERE_SOLVERS[name](X, y, spheres, folds, class_weight="auto")


@pytest.mark.parametrize("name", ["batched", "libsvm", "sklearn"])
def test_class_weight_none_is_the_unweighted_svm(name):
    X, y, spheres, folds = synthetic_searchlight(7, n_spheres=6)
    solve = SPHERE_SOLVERS[name]
    np.testing.assert_array_equal(solve(X, y, spheres, folds, class_weight="none"),
                                  solve(X, y, spheres, folds))
