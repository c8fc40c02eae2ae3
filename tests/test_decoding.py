"""nidecode.SearchLight: nilearn's SearchLight interface on the engine's solvers."""

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.decoding import SearchLight as NilearnSearchLight
from nilearn.maskers import NiftiMasker
from sklearn.base import clone
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.naive_bayes import GaussianNB
from sklearn.svm import SVC
from sklearn.utils._param_validation import InvalidParameterError

import nidecode
from nidecode.errors import InputError
from tests.conftest import slice_centres

RADIUS = 5.6


def _scans(haxby_slice_dir, categories):
    """Scans of some categories of the real slice, z-scored over all scans, as one 4D image.

    Both searchlights get this same image (the reference README's set-up).
    """
    labels = pd.read_csv(haxby_slice_dir / "labels.txt", sep=" ")
    mask = haxby_slice_dir / "mask.nii.gz"
    masker = NiftiMasker(mask_img=mask, standardize="zscore_sample")
    X = masker.fit_transform(haxby_slice_dir / "bold.nii.gz")
    keep = labels["labels"].isin(categories).to_numpy()
    return {"imgs": masker.inverse_transform(X[keep]), "mask": mask,
            "y": labels["labels"].to_numpy()[keep], "runs": labels["chunks"].to_numpy()[keep]}


@pytest.fixture(scope="module")
def face_cat(haxby_slice_dir):
    """Face and cat scans (216) of the real slice."""
    return _scans(haxby_slice_dir, ["face", "cat"])


@pytest.fixture(scope="module")
def process_mask(haxby_slice_dir):
    """Every ninth voxel of the slice's mask (59 centres): nilearn takes seconds."""
    return slice_centres(haxby_slice_dir, 9)


@pytest.fixture(scope="module")
def few_centres(haxby_slice_dir):
    """Every 53rd voxel of the slice's mask (10 centres)."""
    return slice_centres(haxby_slice_dir, 53)


def _nilearn(data, estimator, process_mask=None):
    light = NilearnSearchLight(mask_img=data["mask"], process_mask_img=process_mask,
                               radius=RADIUS, estimator=estimator, cv=LeaveOneGroupOut())
    with warnings.catch_warnings():  # "Use a custom estimator at your own risk": on purpose
        warnings.simplefilter("ignore")
        return light.fit(data["imgs"], data["y"], groups=data["runs"])


def _ours(data, estimator, process_mask=None, **params):
    light = nidecode.SearchLight(data["mask"], process_mask_img=process_mask, radius=RADIUS,
                                 estimator=estimator, cv=LeaveOneGroupOut(), **params)
    return light.fit(data["imgs"], data["y"], groups=data["runs"])


@pytest.mark.slow
def test_svc_map_matches_nilearn_on_the_real_slice(face_cat):
    reference = _nilearn(face_cat, SVC(kernel="linear"))
    light = _ours(face_cat, SVC(kernel="linear"))
    assert light.method_ == "batched"
    assert light.scores_.shape == reference.scores_.shape == (40, 20, 1)
    assert light.n_elements_ == reference.n_elements_ == 530
    equal = np.isclose(light.scores_, reference.scores_, rtol=0, atol=1e-9)
    assert equal.mean() >= 0.98
    # Where they differ, by one test scan of one fold (1/18 over 12 folds) at most.
    assert np.abs(light.scores_ - reference.scores_).max() <= 1 / 18 / 12 + 1e-9
    np.testing.assert_allclose(light.scores_img_.get_fdata(), light.scores_, atol=1e-6)
    np.testing.assert_allclose(light.scores_img_.affine, reference.scores_img_.affine)


@pytest.mark.parametrize("solver", ["libsvm", "sklearn"])
def test_other_svc_solvers_match_nilearn_exactly(face_cat, process_mask, solver):
    reference = _nilearn(face_cat, SVC(kernel="linear"), process_mask)
    light = _ours(face_cat, SVC(kernel="linear"), process_mask, solver=solver)
    assert light.method_ == solver
    np.testing.assert_allclose(light.masked_scores_, reference.masked_scores_, rtol=0,
                               atol=1e-12)


def test_generic_estimator_matches_nilearn(face_cat, process_mask):
    # GaussianNB() itself runs the closed-form solver; fixed priors keep it generic.
    estimator = GaussianNB(priors=[0.5, 0.5])
    reference = _nilearn(face_cat, estimator, process_mask)
    light = _ours(face_cat, estimator, process_mask)
    assert light.method_ == "generic"
    assert light.n_elements_ == 59
    np.testing.assert_array_equal(light.scores_, reference.scores_)
    assert 0.5 < light.masked_scores_.mean() < 1


def test_svc_string_is_nilearns_linearsvc_and_warns(face_cat, process_mask):
    reference = _nilearn(face_cat, "svc", process_mask)
    with pytest.warns(UserWarning, match=r'estimator=SVC\(kernel="linear"\)'):
        light = _ours(face_cat, "svc", process_mask)
    assert light.method_ == "generic"
    np.testing.assert_array_equal(light.scores_, reference.scores_)


def test_svc_the_solvers_do_not_reproduce_takes_the_generic_path(face_cat, few_centres):
    weighted = SVC(kernel="linear", class_weight={"cat": 2.0, "face": 1.0})
    light = _ours(face_cat, weighted, few_centres)
    assert light.method_ == "generic"
    np.testing.assert_array_equal(light.scores_,
                                  _nilearn(face_cat, weighted, few_centres).scores_)
    light = _ours(face_cat, SVC(kernel="linear"), few_centres, scoring="f1_macro")
    assert light.method_ == "generic"


def test_client_gives_the_in_process_scores(face_cat, process_mask, few_centres, client):
    local = _ours(face_cat, SVC(kernel="linear", C=0.1), process_mask)
    remote = _ours(face_cat, SVC(kernel="linear", C=0.1), process_mask, client=client)
    assert remote.method_ == "batched"
    np.testing.assert_array_equal(remote.scores_, local.scores_)
    assert clone(remote).client is client  # shared: a connection cannot be deep-copied
    generic = _ours(face_cat, GaussianNB(), few_centres, client=client)
    np.testing.assert_array_equal(generic.scores_,
                                  _ours(face_cat, GaussianNB(), few_centres).scores_)


def test_list_of_3d_images_gives_the_4d_scores(face_cat, few_centres):
    from nilearn.image import iter_img

    images = list(iter_img(face_cat["imgs"]))
    light = nidecode.SearchLight(face_cat["mask"], process_mask_img=few_centres,
                                 radius=RADIUS, estimator=GaussianNB(), cv=LeaveOneGroupOut())
    light.fit(images, face_cat["y"], groups=face_cat["runs"])
    np.testing.assert_array_equal(light.scores_,
                                  _ours(face_cat, GaussianNB(), few_centres).scores_)


def test_clone_get_params_set_params_round_trip(tmp_path):
    light = nidecode.SearchLight("mask.nii.gz", radius=4.0, estimator=SVC(kernel="linear", C=2),
                                 cv=LeaveOneGroupOut(), solver="libsvm")
    params = light.get_params()
    assert params["radius"] == 4.0 and params["solver"] == "libsvm"
    assert params["estimator__C"] == 2 and params["client"] is None
    twin = clone(light)
    assert twin is not light and twin.get_params()["estimator__C"] == 2
    assert set(twin.get_params()) == set(params)
    twin.set_params(radius=6.0, estimator__C=0.5, solver="batched")
    assert (twin.radius, twin.estimator.C, twin.solver) == (6.0, 0.5, "batched")
    assert light.radius == 4.0 and light.estimator.C == 2  # the original is untouched


@pytest.mark.parametrize(("params", "message"), [
    ({"radius": -1}, "The 'radius' parameter of SearchLight must be a float in the range "
                     "(0.0, inf). Got -1 instead."),
    ({"solver": "fast"}, "The 'solver' parameter of SearchLight must be a str among "),
    ({"cv": "logo"}, "The 'cv' parameter of SearchLight must be an int in the range [2, inf)"),
    ({"estimator": "logistic"}, "The 'estimator' parameter of SearchLight must be a str among "
                                "{'svc'} or an object implementing 'fit'"),
])
def test_bad_parameters_are_named_before_any_work(face_cat, params, message):
    light = nidecode.SearchLight(face_cat["mask"], **params)
    with pytest.raises(InputError) as caught:
        light.fit(face_cat["imgs"], face_cat["y"], groups=face_cat["runs"])
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, InvalidParameterError)  # scikit-learn's type too


def test_bad_inputs_name_the_argument(face_cat, haxby_slice_dir, tmp_path):
    mask = nib.load(face_cat["mask"])
    light = nidecode.SearchLight(face_cat["mask"], radius=RADIUS, estimator=GaussianNB())
    with pytest.raises(InputError, match=r"^y: \(10,\) values for 216 scans"):
        light.fit(face_cat["imgs"], face_cat["y"][:10])
    shifted = nib.Nifti1Image(np.asarray(mask.dataobj), mask.affine + np.eye(4) * 0.5)
    with pytest.raises(InputError, match=r"^mask_img: .*resample_to_img"):
        nidecode.SearchLight(shifted).fit(face_cat["imgs"], face_cat["y"])
    everywhere = nib.Nifti1Image(np.ones(mask.shape, np.uint8), mask.affine)
    with pytest.raises(InputError, match=r"^process_mask_img: \d+ voxels lie outside mask_img"):
        nidecode.SearchLight(mask, process_mask_img=everywhere).fit(face_cat["imgs"],
                                                                   face_cat["y"])
    with pytest.raises(InputError, match=r"^imgs: "):
        nidecode.SearchLight(mask).fit(tmp_path / "missing.nii.gz", face_cat["y"])
    with pytest.raises(AttributeError, match="call fit"):
        _ = nidecode.SearchLight(mask).scores_img_


def test_verbose_shows_a_progress_bar_of_the_spheres(face_cat, few_centres, capsys):
    _ours(face_cat, GaussianNB(), few_centres)
    assert "sphere" not in capsys.readouterr().err
    _ours(face_cat, GaussianNB(), few_centres, verbose=1)
    assert "10/10" in capsys.readouterr().err


def test_default_cv_is_nilearns_stratified_5_fold(face_cat, few_centres):
    reference = NilearnSearchLight(mask_img=face_cat["mask"], process_mask_img=few_centres,
                                   radius=RADIUS, estimator=SVC(kernel="linear"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(face_cat["imgs"], face_cat["y"])
    light = nidecode.SearchLight(face_cat["mask"], process_mask_img=few_centres, radius=RADIUS,
                                 estimator=SVC(kernel="linear"), solver="libsvm")
    light.fit(face_cat["imgs"], face_cat["y"])
    assert light.method_ == "libsvm"
    np.testing.assert_allclose(light.scores_, reference.scores_, rtol=0, atol=1e-12)


def test_multiclass_svc_takes_the_generic_path(haxby_slice_dir, few_centres):
    three = _scans(haxby_slice_dir, ["face", "cat", "house"])
    light = _ours(three, SVC(kernel="linear"), few_centres)
    assert light.method_ == "generic"  # the batched solvers are binary
    np.testing.assert_array_equal(light.scores_,
                                  _nilearn(three, SVC(kernel="linear"), few_centres).scores_)
