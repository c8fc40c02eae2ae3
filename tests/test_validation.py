"""Parameter checks: one rule per parameter, worded by name, the same for every function."""

import json
import math
import pickle
import re
import warnings

import numpy as np
import pytest

from nidecode import _validation as check
from nidecode.cluster import get_client, local_workers, max_local_workers
from nidecode.errors import (
    ClusterError,
    InputError,
    NidecodeError,
    NidecodeWarning,
    OutputDirError,
    ParameterError,
    StoreError,
)
from nidecode.ingest import ingest
from nidecode.outdir import OutputDir
from tests.conftest import tiny_subject


@pytest.fixture(scope="module")
def tiny_stores(tmp_path_factory):
    """One tiny subject ingested z-scored within runs, and not standardized at all."""
    directory = tmp_path_factory.mktemp("validation")
    subject = tiny_subject(directory / "sub01")
    stores = {}
    for standardize in ("run", "none"):
        stores[standardize] = directory / f"{standardize}.zarr"
        ingest([subject], stores[standardize], "mask4_vt", standardize=standardize)
    return stores


def test_error_hierarchy():
    for error in (InputError, StoreError, OutputDirError, ClusterError):
        assert issubclass(error, NidecodeError)
    assert issubclass(InputError, ValueError) and issubclass(ParameterError, InputError)
    assert not issubclass(ClusterError, InputError)  # a dead scheduler is not bad input
    # A store or an output directory is input the user gives and can fix.
    assert issubclass(StoreError, InputError) and issubclass(OutputDirError, InputError)


def test_store_and_output_problems_raise_their_own_errors(tmp_path):
    from nidecode.outdir import OutputDir
    from nidecode.store import open_store

    with pytest.raises(StoreError, match="not a nidecode store"):
        open_store(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="not empty and holds no run.json"):
        OutputDir(tmp_path).start({"command": "decode"})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0, 0.0, -1, True, "1", None])
def test_C_must_be_a_positive_finite_float(value):
    with pytest.raises(ParameterError) as caught:
        check.check_C(value, "decode")
    assert str(caught.value) == (f"The 'C' parameter of decode must be a positive finite "
                                 f"float. Got {value!r} instead.")
    assert (caught.value.parameter, caught.value.function) == ("C", "decode")


@pytest.mark.parametrize("value", [1, 0.5, np.float32(2.0), 1e6])
def test_good_C_is_returned_as_a_float(value):
    assert check.check_C(value, "decode") == float(value)
    assert type(check.check_C(value, "decode")) is float


@pytest.mark.parametrize("value", [math.nan, math.inf, 0.0, -2.0])
def test_radius_has_one_rule(value):
    with pytest.raises(ParameterError, match="'radius' parameter of permute must be a "
                       "positive finite float"):
        check.check_radius(value, "permute")


@pytest.mark.parametrize(("text", "expected"), [("logo", "logo"), (" LOGO ", "logo"),
                                                ("kfold:05", "kfold:5")])
def test_cv_is_normalised(text, expected):
    assert check.check_cv(text, "decode") == expected


@pytest.mark.parametrize("text", ["loso", "kfold", "kfold:1", "kfold:x", "", 3, None])
def test_bad_cv_names_the_parameter(text):
    with pytest.raises(ParameterError, match="'cv' parameter of decode must be 'logo'"):
        check.check_cv(text, "decode")


@pytest.mark.parametrize(("checker", "value", "rule"), [
    (check.check_n_permutations, 0, r"an int in the range \[1, 1000000\]"),
    (check.check_n_permutations, 10**9, r"an int in the range \[1, 1000000\]"),
    (check.check_n_permutations, 1e3, r"an int in the range \[1, 1000000\]"),
    (check.check_seed, -1, "an int >= 0"),
    (check.check_workers, 0, "a positive int"),
    (check.check_workers, -2, "a positive int"),
    (check.check_workers, 2.5, "a positive int"),
    (check.check_drop_scans, -1, "an int >= 0"),
    (check.check_standardize, "zscore", "one of 'run', 'global', 'none'"),
])
def test_integer_and_choice_parameters(checker, value, rule):
    with pytest.raises(ParameterError, match=f"parameter of f must be {rule}. Got"):
        checker(value, "f")


def test_defaults_pass_through():
    assert check.check_workers(None, "f") is None
    assert check.check_per_task(None, "fits_per_task", "decode") is None
    assert check.check_per_task(12, "fits_per_task", "decode") == 12
    assert check.check_n_permutations(10**6, "permute") == 10**6
    with pytest.raises(ParameterError, match="'fits_per_task' parameter of decode"):
        check.check_per_task(0, "fits_per_task", "decode")


def test_run_json_never_holds_nan(tmp_path):
    output = OutputDir(tmp_path)
    with pytest.raises(ValueError, match="not JSON compliant"):
        output.write_manifest({"identity": {"C": math.nan}})
    assert not (tmp_path / "run.json").exists()
    output.write_manifest({"identity": {"C": 1.0}})
    assert json.loads((tmp_path / "run.json").read_text())["identity"]["C"] == 1.0


@pytest.mark.parametrize("C", [math.nan, math.inf])
def test_every_analysis_refuses_a_non_finite_C_before_claiming_out(tiny_stores, tmp_path, C):
    from nidecode.analyses.decode import prepare_decode
    from nidecode.analyses.permute import prepare_permute
    from nidecode.analyses.searchlight import prepare_searchlight

    for name, prepare, extra in (("decode", prepare_decode, {}),
                                 ("searchlight", prepare_searchlight, {"radius": 5.0}),
                                 ("permute", prepare_permute, {"n_permutations": 10})):
        with pytest.raises(ParameterError, match=f"'C' parameter of {name} must be a positive "
                           f"finite float. Got {C!r}"):
            prepare(tiny_stores["run"], tmp_path / name, C=C, **extra)
        assert not (tmp_path / name).exists()


def test_permute_refuses_an_infinite_radius(tiny_stores, tmp_path):
    from nidecode.analyses.permute import prepare_permute

    with pytest.raises(ParameterError, match="'radius' parameter of permute"):
        prepare_permute(tiny_stores["run"], tmp_path / "o", n_permutations=10, radius=math.inf)
    assert not (tmp_path / "o").exists()


def test_a_million_permutations_are_planned_lazily(tiny_stores, tmp_path):
    from nidecode.analyses.permute import prepare_permute

    with pytest.warns(NidecodeWarning, match=r"1000000 permutations \(svc\): about 4.17 "
                      r"core-hours, as 3e\+06 SVM fits"):
        run = prepare_permute(tiny_stores["run"], tmp_path / "o", n_permutations=10**6,
                              categories=["face", "cat"])
    plan = run.tasks
    assert len(plan.units) == 1  # one pair: the plan holds one descriptor, not the tasks
    assert len(pickle.dumps(plan)) < 2000
    assert len(plan) == 20001  # the observed labelling (-1) and 10^6 permutations, 50 a task
    assert plan[0].indices == range(-1, 49) and plan[0].key == ("sub01", "cat", "face", "00000")
    assert plan[-1].indices == range(999999, 1000000)
    assert sum(len(task.indices) for task in plan) == 10**6 + 1


def test_a_billion_permutations_are_refused_before_claiming_out(tiny_stores, tmp_path):
    from nidecode.analyses.permute import prepare_permute

    with pytest.raises(ParameterError, match=r"'n_permutations' parameter of permute must be "
                       r"an int in the range \[1, 1000000\]. Got 1000000000 instead. 1000 "
                       r"resolve p < 0.001"):
        prepare_permute(tiny_stores["run"], tmp_path / "o", n_permutations=10**9)
    assert not (tmp_path / "o").exists()


def test_searchlight_on_an_unstandardized_store_warns(tiny_stores, tmp_path):
    from nidecode.analyses.searchlight import prepare_searchlight

    with pytest.warns(NidecodeWarning, match=r"1 subject\(s\) \('sub01'\) were ingested with "
                      r"--standardize none: on raw BOLD values C=1 is a near hard-margin SVM.*"
                      r"ingest with --standardize run \(or global\), or lower C"):
        prepare_searchlight(tiny_stores["none"], tmp_path / "none", radius=5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NidecodeWarning)
        prepare_searchlight(tiny_stores["run"], tmp_path / "run", radius=5.0)


def test_searchlight_permutations_on_an_unstandardized_store_warn(tiny_stores, tmp_path):
    from nidecode.analyses.permute import prepare_permute

    with pytest.warns(NidecodeWarning, match="--standardize none"):
        prepare_permute(tiny_stores["none"], tmp_path / "o", n_permutations=5, radius=5.0)


def test_zero_workers_are_refused_before_a_cluster_starts():
    with pytest.raises(ParameterError, match="'workers' parameter of get_client must be a "
                       "positive int. Got 0 instead"), get_client(workers=0):
        pass


@pytest.mark.parametrize("timeout", [math.nan, 0, -1.0])
def test_scheduler_timeout_must_be_positive(timeout):
    with pytest.raises(ParameterError, match="'timeout' parameter of get_client"), \
            get_client(scheduler="tcp://127.0.0.1:9", timeout=timeout):
        pass


def test_too_many_workers_are_capped_with_a_warning():
    limit = max_local_workers()
    assert limit >= 1
    with pytest.warns(NidecodeWarning, match=f"--workers 1000: this machine holds at most "
                      f"{limit} workers"):
        assert local_workers(1000) == limit
    with warnings.catch_warnings():
        warnings.simplefilter("error", NidecodeWarning)
        assert local_workers(1) == 1


def test_permutations_run_a_window_of_tasks_at_a_time(tiny_stores, client, tmp_path,
                                                      monkeypatch):
    from nidecode.analyses import permute as permute_module

    common = {"n_permutations": 19, "categories": ["face", "cat"], "progress": False,
              "permutations_per_task": 5}
    permute_module.permute(tiny_stores["run"], tmp_path / "all", client, **common)
    monkeypatch.setattr(permute_module, "TASKS_IN_FLIGHT", 2)
    permute_module.permute(tiny_stores["run"], tmp_path / "windows", client, **common)
    name = "permutations/null/sub01_cat_vs_face.npy"
    null = np.load(tmp_path / "windows" / name)
    assert null.shape == (19,)
    np.testing.assert_array_equal(null, np.load(tmp_path / "all" / name))
    manifest = json.loads((tmp_path / "windows" / "run.json").read_text())
    assert manifest["counts"] == {"subjects": 1, "tasks": 4, "tasks_computed": 4}


def test_the_expected_time_of_searchlight_permutations_follows_the_classifier(tiny_stores,
                                                                               tmp_path):
    # A closed-form GaussianNB sphere costs about a twentieth of the SVM's: twenty
    # times the permutations give the same estimate.
    import dataclasses

    from nidecode.analyses.permute import _warn_expected_time, prepare_permute

    plan = prepare_permute(tiny_stores["run"], tmp_path / "o", n_permutations=10,
                           categories=["face", "cat"], radius=5.0).tasks
    hours = {}
    for classifier, n_permutations in (("svc", 10**7), ("gnb", 2 * 10**8)):
        with pytest.warns(NidecodeWarning, match=rf"permutations \({classifier}\)") as caught:
            _warn_expected_time(dataclasses.replace(plan, n_permutations=n_permutations),
                                classifier)
        hours[classifier] = re.search(r"about (\S+) core-hours", str(caught[0].message))[1]
    assert hours["svc"] == hours["gnb"]
    assert float(hours["svc"]) > 1
