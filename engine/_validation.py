"""Every parameter check, once, worded by parameter name (scikit-learn style).

The public functions (:func:`nidecode.analyses.decode.decode`, ...) call these with
their own name; a bad value raises :class:`~nidecode.errors.ParameterError`::

    The 'C' parameter of decode must be a positive finite float. Got nan instead.

The command line rewords the parameter as its flag in one place
(:func:`nidecode.cli.main`): ``--C nan: must be a positive finite float``.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from nidecode.errors import ParameterError

STANDARDIZE_MODES = ("run", "global", "none")
# A p-value's resolution is 1 / (1 + n): 10^6 permutations resolve 1e-6, far
# below any threshold in use, and already cost 10^6 fits per fold and pair.
MAX_PERMUTATIONS = 10**6
# Scorers of scikit-learn's names computed per fold (roc_auc from decision values).
METRICS = ("accuracy", "balanced_accuracy", "roc_auc")
CLASS_WEIGHTS = ("none", "balanced")
CV_RULE = "'logo' (leave one run out) or 'kfold:K' with K >= 2"


def check_float(value, parameter: str, function: str, *, positive: bool = False,
                hint: str = "") -> float:
    """A finite float (strictly positive with ``positive``), as a Python float.

    Parameters
    ----------
    value : object
        The value given.
    parameter, function : str
        Names used in the message: the parameter and the public function.
    positive : bool
        Refuse zero and negative values too.
    hint : str
        What to do, appended to the message.

    Returns
    -------
    float

    Raises
    ------
    ParameterError
        For booleans, non-numbers, NaN, infinities and (with ``positive``)
        values <= 0.
    """
    rule = "a positive finite float" if positive else "a finite float"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ParameterError(function, parameter, value, rule, hint)
    number = float(value)
    if not math.isfinite(number) or (positive and number <= 0):
        raise ParameterError(function, parameter, value, rule, hint)
    return number


def check_int(value, parameter: str, function: str, *, minimum: int = 0,
              maximum: int | None = None, hint: str = "") -> int:
    """An integer in ``[minimum, maximum]``, as a Python int (booleans refused).

    Raises
    ------
    ParameterError
        Naming ``parameter`` of ``function`` and the range.
    """
    if maximum is not None:
        rule = f"an int in the range [{minimum}, {maximum}]"
    else:
        rule = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ParameterError(function, parameter, value, rule, hint)
    if value < minimum or (maximum is not None and value > maximum):
        raise ParameterError(function, parameter, value, rule, hint)
    return int(value)


def check_choice(value, parameter: str, function: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        rule = "one of " + ", ".join(repr(choice) for choice in choices)
        raise ParameterError(function, parameter, value, rule)
    return value


def check_C(C, function: str) -> float:
    """The SVM penalty: a positive finite float."""
    return check_float(C, "C", function, positive=True)


def check_radius(radius, function: str) -> float:
    """A searchlight radius: a positive finite float (millimetres)."""
    return check_float(radius, "radius", function, positive=True)


def check_cv(cv, function: str) -> str:
    """``"logo"`` or ``"kfold:K"`` with K >= 2, returned normalised (``"kfold:5"``)."""
    text = cv.strip().lower() if isinstance(cv, str) else None
    if text == "logo":
        return text
    name, _, k = (text or "").partition(":")
    if name == "kfold" and k.isdigit() and int(k) >= 2:
        return f"kfold:{int(k)}"
    raise ParameterError(function, "cv", cv, CV_RULE)


#: ``cv`` of decoding across subjects: leave one subject out (folds are subjects).
LOSO = "loso"


def is_loso(cv) -> bool:
    """Whether ``cv`` asks for leave-one-subject-out (``"loso"``, any case)."""
    return isinstance(cv, str) and cv.strip().lower() == LOSO


def check_cross_cv(cv, function: str) -> str:
    """Cross-decoding's ``cv``: :func:`check_cv`'s values or ``"none"`` (no splits)."""
    if isinstance(cv, str) and cv.strip().lower() == "none":
        return "none"
    try:
        return check_cv(cv, function)
    except ParameterError:
        raise ParameterError(function, "cv", cv, CV_RULE + " or 'none' (cross-decoding: "
                             "train on every training scan, test on every test scan)") from None


def check_standardize(standardize, function: str) -> str:
    """One of :data:`STANDARDIZE_MODES`."""
    return check_choice(standardize, "standardize", function, STANDARDIZE_MODES)


def check_n_permutations(n_permutations, function: str) -> int:
    """Permutations per pair: 1 to :data:`MAX_PERMUTATIONS`."""
    return check_int(n_permutations, "n_permutations", function, minimum=1,
                     maximum=MAX_PERMUTATIONS,
                     hint="1000 resolve p < 0.001; 10^6 already resolve 1e-6 at a million "
                     "fits per fold and pair.")


def check_seed(seed, function: str) -> int:
    """A seed of :class:`numpy.random.SeedSequence`: an int >= 0."""
    return check_int(seed, "seed", function, minimum=0)


def check_workers(workers, function: str) -> int | None:
    """A number of workers (>= 1), or ``None`` for the default."""
    if workers is None:
        return None
    return check_int(workers, "workers", function, minimum=1)


def check_drop_scans(drop_scans, function: str) -> int:
    """Dummy scans dropped at the start of each run: an int >= 0."""
    return check_int(drop_scans, "drop_scans", function, minimum=0)


def check_per_task(value, parameter: str, function: str) -> int | None:
    """A task size (``fits_per_task``, ``spheres_per_task``, ...): an int >= 1, or ``None``."""
    if value is None:
        return None
    return check_int(value, parameter, function, minimum=1)


def check_scoring(scoring, function: str) -> tuple[str, ...]:
    """Metrics among :data:`METRICS`: a name, comma-separated names or a sequence of names.

    Returns
    -------
    tuple of str
        The names chosen, each once, in the order of :data:`METRICS` (so that
        ``"roc_auc,accuracy"`` and ``["accuracy", "roc_auc"]`` are one run).
    """
    rule = "one or more of " + ", ".join(repr(name) for name in METRICS)
    names = scoring.split(",") if isinstance(scoring, str) else scoring
    try:
        names = [name.strip() for name in names]
    except (TypeError, AttributeError):
        raise ParameterError(function, "scoring", scoring, rule) from None
    if not names or any(name not in METRICS for name in names):
        raise ParameterError(function, "scoring", scoring, rule)
    return tuple(name for name in METRICS if name in names)


def check_class_weight(class_weight, function: str) -> str:
    """``"balanced"`` or ``"none"`` (``None`` too), returned as one of :data:`CLASS_WEIGHTS`."""
    if class_weight is None:
        return "none"
    return check_choice(class_weight, "class_weight", function, CLASS_WEIGHTS)


#: ``--classifier`` choices -> what each fits (scikit-learn's estimator, its defaults otherwise).
CLASSIFIERS = {
    "svc": "linear SVM (SVC(kernel='linear'))",
    "lda": "shrinkage LDA (LinearDiscriminantAnalysis(solver='lsqr'))",
    "gnb": "Gaussian naive Bayes (GaussianNB())",
    "logreg": "L2 logistic regression (LogisticRegression())",
}
# Classifiers without class weights (scikit-learn's estimators have no class_weight).
_NO_CLASS_WEIGHTS = ("lda", "gnb")
_SHRINKAGE_RULE = "'auto' or a float in the range [0, 1]"


def check_classifier(classifier, function: str) -> str:
    """One of :data:`CLASSIFIERS`."""
    return check_choice(classifier, "classifier", function, tuple(CLASSIFIERS))


def check_shrinkage(shrinkage, function: str) -> str | float:
    """LDA's shrinkage: ``"auto"`` (Ledoit-Wolf) or a float in [0, 1]."""
    if isinstance(shrinkage, str) and shrinkage == "auto":
        return shrinkage
    if isinstance(shrinkage, bool) or not isinstance(shrinkage, Real):
        raise ParameterError(function, "shrinkage", shrinkage, _SHRINKAGE_RULE)
    if not 0.0 <= float(shrinkage) <= 1.0:  # NaN fails too
        raise ParameterError(function, "shrinkage", shrinkage, _SHRINKAGE_RULE)
    return float(shrinkage)


def check_classifier_options(classifier, shrinkage, class_weight: str, function: str,
                             solver: str | None = None) -> tuple[str, str | float | None]:
    """The classifier and its shrinkage, checked together with the options it constrains.

    Parameters
    ----------
    classifier : str
        One of :data:`CLASSIFIERS`.
    shrinkage : {None, "auto"} or float
        Only with ``"lda"``; ``None`` means ``"auto"`` there.
    class_weight : {"none", "balanced"}
        As returned by :func:`check_class_weight`; ``lda`` and ``gnb`` have none.
    function : str
    solver : str, optional
        The searchlight's ``--solver``: ``"libsvm"`` is the SVM's only
        (``"sklearn"`` runs the scikit-learn estimator one sphere at a time,
        ``"batched"`` a closed form where there is one).

    Returns
    -------
    (str, "auto" or float or None)
        The classifier and the shrinkage (``None`` unless ``lda``).
    """
    classifier = check_classifier(classifier, function)
    if classifier != "lda":
        if shrinkage is not None:
            raise ParameterError(function, "shrinkage", shrinkage,
                                 "left unset unless classifier is 'lda'",
                                 f"'{classifier}' has no shrinkage.")
    else:
        shrinkage = check_shrinkage("auto" if shrinkage is None else shrinkage, function)
    if classifier in _NO_CLASS_WEIGHTS and class_weight != "none":
        raise ParameterError(function, "class_weight", class_weight,
                             f"'none' with classifier '{classifier}'",
                             "LDA and naive Bayes take no class weights; use classifier "
                             "'svc' or 'logreg', or score balanced_accuracy.")
    if solver == "libsvm" and classifier != "svc":
        raise ParameterError(function, "solver", solver,
                             f"'batched' or 'sklearn' with classifier '{classifier}'",
                             "libsvm is the SVM's solver.")
    return classifier, shrinkage
