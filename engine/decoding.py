"""Estimator-style searchlight for nilearn users: ``nidecode.SearchLight``.

A drop-in for ``nilearn.decoding.SearchLight`` (same parameters, ``fit``,
``scores_`` and ``scores_img_``) built on the engine's pieces: spheres from
:func:`nidecode.spheres.sphere_neighbourhoods` (nilearn's, voxel for voxel),
the batched solvers of :data:`nidecode.solvers.SPHERE_SOLVERS` for
``SVC(kernel="linear")``, and :func:`nidecode.results.to_nifti` for the map.
Spheres run in batches, as Dask tasks on ``client`` or in the calling process.
"""

from __future__ import annotations

import importlib
import math
import os
import warnings
from numbers import Integral, Real

import nibabel as nib
import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed, effective_n_jobs
from nilearn.image import check_niimg_3d, check_niimg_4d
from nilearn.masking import apply_mask_fmri
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import get_scorer_names
from sklearn.model_selection import check_cv, cross_val_score
from sklearn.naive_bayes import GaussianNB
from sklearn.svm import SVC, LinearSVC
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    StrOptions,
)
from tqdm.auto import tqdm

from nidecode.analyses.plan import SPHERES_PER_TASK
from nidecode.errors import InputError, first_line
from nidecode.results import to_nifti
from nidecode.run import run_tasks
from nidecode.solvers import SPHERE_SOLVERS
from nidecode.spheres import batch_centres, batch_voxel_block, sphere_neighbourhoods
from nidecode.stats import sphere_fold_metrics

__all__ = ["SearchLight"]

#: Spheres per batch on the generic (one estimator per sphere) path: small,
#: so that the progress bar and the workers' load stay even.
GENERIC_SPHERES_PER_BATCH = 32

#: SVC parameters that change the fitted model or its predictions for a
#: binary problem; the batched solvers reproduce SVC only at these values (C
#: and tol are passed on; probability does not change SVC's predictions).
_SVC_DEFAULTS = {"kernel": "linear", "max_iter": -1, "shrinking": True}
#: ``SVC(class_weight=...)`` values the sphere solvers reproduce (a dict goes generic).
_SVC_CLASS_WEIGHTS = (None, "balanced")

_SVC_HINT = ('nidecode.SearchLight: estimator="svc" is nilearn\'s LinearSVC (squared hinge, '
             'penalised intercept), fitted one sphere at a time; pass '
             'estimator=SVC(kernel="linear") for the engine\'s batched exact solver')


class _ParameterError(InputError, InvalidParameterError):
    """A bad parameter: scikit-learn's error type and nidecode's at once."""


class SearchLight(BaseEstimator):
    """Searchlight decoding with nilearn's interface, on the engine's solvers.

    The map is nilearn's ``SearchLight`` map: the same spheres (voxels of
    ``mask_img`` within ``radius`` mm of each centre, through the affine),
    the same data (``imgs`` masked with ``mask_img``, nothing standardised
    beyond what the estimator does) and the same score (mean over the
    cross-validation folds of ``cross_val_score``).

    Parameters
    ----------
    mask_img : Niimg-like
        Mask of the voxels spheres take data from; on the grid of ``imgs``
        (shape and affine).
    process_mask_img : Niimg-like, optional
        Voxels at which spheres are centred (default: all of ``mask_img``);
        on the same grid and inside ``mask_img``.
    radius : float, default=2.0
        Sphere radius in millimetres.
    estimator : "svc" or scikit-learn estimator, default="svc"
        ``SVC(kernel="linear", C=...)`` runs the engine's batched solvers
        (``solver``): all folds of a batch of spheres at once, compiled.
        ``GaussianNB()`` (any ``var_smoothing``, ``priors=None``) and
        ``LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto" or a
        float in [0, 1], priors=None)`` run closed-form solvers
        (:mod:`nidecode.solvers.gnb`, :mod:`nidecode.solvers.lda`): every fold
        from per-run sums, no refits.
        Any other estimator (and ``SVC`` with a non-binary target, a
        ``scoring`` other than accuracy, balanced accuracy or ROC AUC, or
        parameters the solvers do not reproduce) is cross-validated one sphere at a time with
        ``cross_val_score``, as nilearn does.
        **The string "svc" means what it means in nilearn**: ``LinearSVC``
        (squared hinge loss, penalised intercept; another problem than
        ``SVC``), on the one-sphere-at-a-time path, with a warning that
        points to ``estimator=SVC(kernel="linear")``, the fast exact path.
    n_jobs : int, default=1
        Processes (joblib) for the batches when there is no ``client``;
        -1 for all cores.
    scoring : str or callable, optional
        As in ``cross_val_score``; default: the estimator's ``score``
        (accuracy for classifiers). ``"accuracy"``, ``"balanced_accuracy"``
        and ``"roc_auc"`` keep ``SVC(kernel="linear")``, ``GaussianNB`` and
        ``LinearDiscriminantAnalysis`` on the solvers (the last two computed
        from each test scan's decision value; GaussianNB's ROC AUC from
        ``predict_proba``, as scikit-learn's scorer).
    cv : int, cross-validation generator or iterable, optional
        As in ``cross_val_score`` (default: 5-fold, stratified for
        classifiers). The folds are made once, with ``groups``, and every
        sphere uses them (nilearn splits again per sphere, which differs only
        for a shuffling splitter without ``random_state``).
    verbose : int, default=0
        > 0: a progress bar of the spheres.
    client : distributed.Client, optional
        Run the batches as Dask tasks on this cluster (each task gets only the
        voxels its spheres need); default: in the calling process.
    solver : {"batched", "libsvm", "sklearn"}, default="batched"
        For ``SVC(kernel="linear")``, as ``nidecode searchlight --solver``:
        ``batched`` solves every fold exactly from the sphere's all-scans
        solution (libsvm's path at near ties); ``libsvm`` follows libsvm's
        path for every fit; ``sklearn`` fits ``SVC`` per sphere and fold.
    test_labels : dict, optional
        Cross-decoding (generalisation across conditions): ``{test label:
        training label}``. Scans whose label is a key are *test scans*, read as
        the class the key maps to; the others are *training scans*. Each fold
        of ``cv`` (split over all scans, with ``groups``) trains on its
        training part's training scans and is scored on its test part's test
        scans; a fold without test scans is dropped. E.g. train face vs house
        on perception runs and test on imagery runs,
        ``test_labels={"face_im": "face", "house_im": "house"}``, with
        ``cv=LeaveOneGroupOut()`` and the runs as ``groups``: each fold trains on
        the perception scans of the other runs and tests on the held-out
        run's imagery scans. ``cv=[(np.arange(n), np.arange(n))]`` (one fold
        of all ``n`` scans) trains on every training scan and tests on every
        test scan. Default: ordinary decoding, every scan both.

    Attributes
    ----------
    scores_ : numpy.ndarray, 3D
        Score of the sphere centred at each voxel of the process mask, zero
        elsewhere (nilearn's ``scores_``).
    masked_scores_ : numpy.ndarray, 1D
        The same scores, one per centre, in C order of the process mask.
    scores_img_ : nibabel.Nifti1Image
        ``scores_`` as an image on the grid of ``imgs``.
    process_mask_ : numpy.ndarray of bool, 3D
        The sphere centres.
    n_elements_ : int
        Number of centres.
    method_ : str
        How the spheres were scored: ``"batched"``, ``"libsvm"``,
        ``"sklearn"`` (SVC's fast path), ``"gnb"``, ``"lda"`` (the closed-form
        solvers) or ``"generic"``.
    n_folds_ : int
        Folds scored (cross-decoding: those with test scans).

    Notes
    -----
    Where it differs from nilearn's: the masks must already be on the grid of
    ``imgs`` and the process mask inside the mask (an ``InputError`` says
    so; nilearn resamples the mask and scores centres outside it); the folds
    are made once; ``scores_img_`` is float32 (``scores_`` is float64); there
    is no ``transform``.

    Examples
    --------
    >>> from sklearn.svm import SVC
    >>> from sklearn.model_selection import LeaveOneGroupOut
    >>> light = SearchLight(mask_img, radius=5.6, estimator=SVC(kernel="linear"),
    ...                     cv=LeaveOneGroupOut())  # doctest: +SKIP
    >>> light.fit(imgs, y, groups=runs).scores_img_  # doctest: +SKIP

    Cross-decoding, trained on ``faceA``/``catA`` scans and tested on
    ``faceB``/``catB`` scans of the held-out run (``faceB`` read as ``faceA``):

    >>> light = SearchLight(mask_img, radius=5.6, estimator=SVC(kernel="linear"),
    ...                     cv=LeaveOneGroupOut(),
    ...                     test_labels={"faceB": "faceA", "catB": "catA"})  # doctest: +SKIP
    >>> light.fit(imgs, y, groups=runs).scores_img_  # doctest: +SKIP

    Across subjects on one grid: concatenate their scans and pass the subject
    of each scan as ``groups`` with ``cv=LeaveOneGroupOut()``.
    """

    _parameter_constraints: dict = {
        "mask_img": [str, os.PathLike, nib.spatialimages.SpatialImage],
        "process_mask_img": [None, str, os.PathLike, nib.spatialimages.SpatialImage],
        "radius": [Interval(Real, 0, None, closed="neither")],
        "estimator": [StrOptions({"svc"}), HasMethods(["fit"])],
        "n_jobs": [None, Integral],
        "scoring": [None, StrOptions(set(get_scorer_names())), callable],
        "cv": ["cv_object"],
        "verbose": ["verbose"],
        "client": [None, HasMethods(["submit", "gather"])],
        "solver": [StrOptions(set(SPHERE_SOLVERS))],
        "test_labels": [None, dict],
    }

    def __init__(self, mask_img, process_mask_img=None, radius=2.0, estimator="svc", n_jobs=1,
                 scoring=None, cv=None, verbose=0, client=None, solver="batched",
                 test_labels=None):
        self.mask_img = mask_img
        self.process_mask_img = process_mask_img
        self.radius = radius
        self.estimator = estimator
        self.n_jobs = n_jobs
        self.scoring = scoring
        self.cv = cv
        self.verbose = verbose
        self.client = client
        self.solver = solver
        self.test_labels = test_labels

    def __sklearn_clone__(self):
        """An unfitted copy; the Dask client is shared, not copied (a connection can't be)."""
        params = {name: value if name == "client" else clone(value, safe=False)
                  for name, value in self.get_params(deep=False).items()}
        return type(self)(**params)

    def fit(self, imgs, y, groups=None):
        """Score the sphere centred at every voxel of the process mask.

        Parameters
        ----------
        imgs : Niimg-like
            4D image, list of 3D images or path(s), one scan per sample.
        y : array-like of shape (n_scans,)
            Target of each scan.
        groups : array-like of shape (n_scans,), optional
            Group (e.g. run) of each scan, for group-wise ``cv``.

        Returns
        -------
        self
        """
        self._check_parameters()
        imgs = _load_imgs(imgs)
        mask = _load_mask(self.mask_img, imgs, "mask_img")
        process = (mask if self.process_mask_img is None
                   else _load_mask(self.process_mask_img, imgs, "process_mask_img"))
        _check_inside(process, mask)
        X = apply_mask_fmri(imgs, nib.Nifti1Image(mask.astype(np.uint8), imgs.affine))
        y = _check_targets(y, X.shape[0], "y")
        if groups is not None:
            groups = _check_targets(groups, X.shape[0], "groups")
        estimator = self._resolve_estimator()
        y, is_test = _read_test_labels(y, self.test_labels)
        folds = list(check_cv(self.cv, y, classifier=is_classifier(estimator))
                     .split(X, y, groups))
        if is_test is not None:
            folds = _cross_folds(folds, is_test)
        centres, spheres = sphere_neighbourhoods(mask, imgs.affine, self.radius, process)
        self.method_ = _method(estimator, self.scoring, y, self.solver)
        scores = self._score_spheres(X, y, spheres, folds, estimator)

        self.process_mask_ = process
        self.n_folds_ = len(folds)
        self.n_elements_ = int(process.sum())
        self.masked_scores_ = scores
        self.scores_ = np.zeros(process.shape)
        self.scores_[process] = scores
        self._affine = imgs.affine
        return self

    @property
    def scores_img_(self) -> nib.Nifti1Image:
        """``scores_`` as a NIfTI image on the grid of the fitted images."""
        if not hasattr(self, "scores_"):
            raise AttributeError("scores_img_: call fit(imgs, y) first")
        # to_nifti writes float32, as the command's maps.
        return to_nifti(self.masked_scores_, self.process_mask_, self._affine)

    def _check_parameters(self) -> None:
        try:
            self._validate_params()
        except InvalidParameterError as error:
            raise _ParameterError(str(error)) from None

    def _resolve_estimator(self):
        if isinstance(self.estimator, str):  # "svc", the only string accepted
            warnings.warn(_SVC_HINT, UserWarning, stacklevel=3)
            # nilearn's "svc": nilearn.decoding._utils.SUPPORTED_ESTIMATORS.
            return LinearSVC(penalty="l2", max_iter=10000, random_state=0)
        return self.estimator

    def _score_spheres(self, X, y, spheres, folds, estimator) -> np.ndarray:
        # Batches of centres as Dask tasks (client) or joblib jobs (n_jobs; in
        # this process when 1); each gets only the voxels its spheres need.
        size = SPHERES_PER_TASK if self.method_ != "generic" else GENERIC_SPHERES_PER_BATCH
        n_workers = (len(self.client.scheduler_info().get("workers", {})) or 1
                     if self.client is not None else effective_n_jobs(self.n_jobs))
        # At least two batches per worker: every worker gets work and the load evens out.
        size = max(1, min(size, math.ceil(spheres.shape[0] / (2 * n_workers))))
        batches = batch_centres(spheres.shape[0], size)
        args = (y, folds, self.method_, estimator, self.scoring)
        scores = np.empty(spheres.shape[0])
        progress = self.verbose > 0
        if self.client is not None:
            futures = []
            for batch, block, local in _blocks(X, spheres, batches):
                # Scattered, not embedded in the task: distributed warns about
                # (and resends) large arguments of the graph.
                data = self.client.scatter(block, hash=False)
                futures.append(self.client.submit(_score_batch, batch, data, local, *args,
                                                  pure=False))

            def keep(result):
                scores[result[0]] = result[1]

            run_tasks(self.client, futures, on_result=keep, count=lambda result: len(result[1]),
                      total=len(scores), progress=progress, unit="sphere")
            return scores
        jobs = (delayed(_score_batch)(*block, *args) for block in _blocks(X, spheres, batches))
        with tqdm(total=len(scores), unit="sphere", disable=not progress) as bar:
            for batch, values in Parallel(n_jobs=self.n_jobs, return_as="generator")(jobs):
                scores[batch] = values
                bar.update(len(values))
        return scores


def _blocks(X: np.ndarray, spheres: sp.csr_matrix, batches: list[slice]):
    """Per batch: the centres, the voxels their spheres need and the spheres in them."""
    for batch in batches:
        voxels, local = batch_voxel_block(spheres, batch)
        yield batch, X[:, voxels], local


def _score_batch(batch: slice, X: np.ndarray, spheres: sp.csr_matrix, y: np.ndarray,
                 folds: list, method: str, estimator, scoring) -> tuple[slice, np.ndarray]:
    """Mean cross-validated score of each sphere of a batch of centres.

    Parameters
    ----------
    batch : slice
        The centres, returned with the scores so that results can come back
        in any order.
    X : numpy.ndarray of shape (n_scans, n_block_voxels)
        The masked data of the voxels the batch's spheres need.
    spheres : scipy.sparse.csr_matrix of shape (n_spheres, n_block_voxels)
        The batch's spheres, indexing the columns of ``X``.
    y, folds, method, estimator, scoring
        Targets, ``(train, test)`` pairs, :func:`_method`'s choice, the
        estimator and ``cross_val_score``'s scoring.

    Returns
    -------
    batch : slice
    scores : numpy.ndarray of shape (n_spheres,)
    """
    if method in _CLOSED_FORM:
        return batch, _closed_form_scores(X, y, spheres, folds, method, estimator, scoring)
    if method in SPHERE_SOLVERS:
        params = estimator.get_params()
        fit = SPHERE_SOLVERS[method]
        if scoring in (None, "accuracy"):
            return batch, fit(X, y, spheres, folds, C=params["C"], tol=params["tol"],
                              class_weight=params["class_weight"]).mean(axis=1)
        # batched: rank near ties refitted on libsvm's path only for the AUC.
        ranks = {"rank_margin": 0.0} if method == "batched" and scoring != "roc_auc" else {}
        _, decisions = fit(X, y, spheres, folds, C=params["C"], tol=params["tol"],
                           return_decisions=True, class_weight=params["class_weight"], **ranks)
        y01 = np.unique(y, return_inverse=True)[1]
        scores = sphere_fold_metrics(decisions, y01, [test for _, test in folds], [scoring])
        # A plain mean, as nilearn's: an AUC fold of one class (NaN) makes the sphere NaN.
        return batch, scores[scoring].mean(axis=1)
    scores = np.empty(spheres.shape[0])
    for row in range(spheres.shape[0]):
        columns = spheres.indices[spheres.indptr[row]:spheres.indptr[row + 1]]
        with warnings.catch_warnings():  # nilearn hides these too
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores[row] = np.mean(cross_val_score(clone(estimator), X[:, columns], y, cv=folds,
                                                  scoring=scoring, n_jobs=1))
    return batch, scores


#: ``scoring`` values the solvers reproduce (the others from the test decisions).
_FAST_SCORING = (None, "accuracy", "balanced_accuracy", "roc_auc")


#: Closed-form solvers by ``method_``: the module in :mod:`nidecode.solvers`
#: (imported on first use) and its keyword arguments from the estimator's parameters.
_CLOSED_FORM = {
    "gnb": ("gnb", lambda params: {"var_smoothing": params["var_smoothing"]}),
    "lda": ("lda", lambda params: {"shrinkage": params["shrinkage"]}),
}


def _closed_form_method(estimator) -> str | None:
    """"gnb" or "lda" when a closed-form solver reproduces the estimator exactly."""
    params = estimator.get_params()
    if type(estimator) is GaussianNB:
        return "gnb" if params["priors"] is None else None
    if type(estimator) is LinearDiscriminantAnalysis:
        shrinkage = params["shrinkage"]
        fixed = (isinstance(shrinkage, Real) and not isinstance(shrinkage, bool)
                 and 0 <= shrinkage <= 1)
        if (params["solver"] == "lsqr" and params["priors"] is None
                and params["covariance_estimator"] is None and (shrinkage == "auto" or fixed)):
            return "lda"
    return None


def _closed_form_scores(X, y, spheres, folds, method: str, estimator, scoring) -> np.ndarray:
    """Mean fold score of each sphere from a closed-form solver (:data:`_CLOSED_FORM`)."""
    module, options = _CLOSED_FORM[method]
    fit = importlib.import_module(f"nidecode.solvers.{module}").searchlight_accuracies
    kwargs = options(estimator.get_params())
    if scoring in (None, "accuracy"):
        return fit(X, y, spheres, folds, **kwargs).mean(axis=1)
    if method == "gnb" and scoring == "roc_auc":
        # scikit-learn ranks GaussianNB's predict_proba, which saturates (ties) at 1.
        _, decisions = fit(X, y, spheres, folds, return_proba=True, **kwargs)
    else:
        # Exact zeros come back as -tiny: sphere_fold_metrics's >= 0 rule holds.
        _, decisions = fit(X, y, spheres, folds, return_decisions=True, **kwargs)
    y01 = np.unique(y, return_inverse=True)[1]
    scores = sphere_fold_metrics(decisions, y01, [test for _, test in folds], [scoring])
    return scores[scoring].mean(axis=1)


def _method(estimator, scoring, y, solver: str) -> str:
    """The engine's solver when it reproduces the estimator's score, else "generic"."""
    if scoring in _FAST_SCORING and len(np.unique(y)) == 2:
        closed_form = _closed_form_method(estimator)
        if closed_form is not None:
            return closed_form
    if type(estimator) is not SVC or scoring not in _FAST_SCORING:
        return "generic"
    params = estimator.get_params()
    if any(params[name] != value for name, value in _SVC_DEFAULTS.items()):
        return "generic"
    if params["class_weight"] not in _SVC_CLASS_WEIGHTS:
        return "generic"
    # The batched solvers are binary; SVC's one-vs-one multiclass goes generic.
    return solver if len(np.unique(y)) == 2 else "generic"


def _load_imgs(imgs) -> nib.Nifti1Image:
    """The scans as one 4D image, as nilearn reads them (4D image, 3D images, paths)."""
    try:
        return check_niimg_4d(imgs)
    except (TypeError, ValueError, FileNotFoundError) as error:
        raise InputError(f"imgs: {first_line(error)}; give a 4D image or a list of 3D "
                         f"images") from None



def _load_mask(img, imgs: nib.Nifti1Image, name: str) -> np.ndarray:
    """A non-empty 3D mask on the grid of ``imgs``, as a boolean array."""
    try:
        image = check_niimg_3d(img)
    except (TypeError, ValueError, FileNotFoundError) as error:
        raise InputError(f"{name}: {first_line(error)}; give a 3D mask image") from None
    if image.shape[:3] != imgs.shape[:3] or not np.allclose(image.affine, imgs.affine,
                                                            atol=1e-3):
        raise InputError(f"{name}: shape {image.shape[:3]} / affine differ from the images' "
                         f"grid {imgs.shape[:3]}; resample it with nilearn.image."
                         f"resample_to_img({name}, imgs, interpolation='nearest')")
    mask = np.nan_to_num(np.asarray(image.dataobj)) != 0
    if not mask.any():
        raise InputError(f"{name}: the mask is empty; give a mask with at least one voxel")
    return mask


def _check_inside(process: np.ndarray, mask: np.ndarray) -> None:
    outside = int(np.count_nonzero(process & ~mask))
    if outside:
        raise InputError(f"process_mask_img: {outside} voxels lie outside mask_img; centres "
                         f"must be mask voxels: intersect the two masks")


def _read_test_labels(y: np.ndarray, test_labels: dict | None):
    """Targets with the test scans read as their training class, and which scans are test
    scans (None without ``test_labels``)."""
    if test_labels is None:
        return y, None
    if not test_labels:
        raise InputError("test_labels: the mapping is empty; give {test label: training "
                         "label}, e.g. {'faceB': 'faceA', 'catB': 'catA'}, or None")
    is_test = np.isin(y, list(test_labels))
    trained = set(y[~is_test].tolist())
    for name, read_as in test_labels.items():
        if not np.any(y == name):
            raise InputError(f"test_labels: no scan of y is labelled {name!r}; its keys must "
                             f"be labels of y (the test scans)")
        if read_as not in trained:
            raise InputError(f"test_labels: {name!r} is read as {read_as!r}, which no "
                             f"training scan has; map each test label to a training label")
    read = y.astype(object)
    read[is_test] = [test_labels[name] for name in y[is_test]]
    return np.array(read.tolist()), is_test  # a dtype that fits the training labels


def _cross_folds(folds: list, is_test: np.ndarray) -> list:
    """Each fold's training scans of its training part and test scans of its test part;
    folds without test scans are dropped."""
    crossed = [(train[~is_test[train]], test[is_test[test]]) for train, test in folds]
    crossed = [(train, test) for train, test in crossed if len(test)]
    if not crossed:
        raise InputError("test_labels: no fold of cv tests a test scan; choose a cv whose "
                         "test parts hold test scans (e.g. LeaveOneGroupOut over runs)")
    return crossed


def _check_targets(values, n_scans: int, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != n_scans:
        raise InputError(f"{name}: {values.shape} values for {n_scans} scans in imgs; give "
                         f"one value per scan")
    return values

