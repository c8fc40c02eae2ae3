"""Searchlight runs: nilearn's maps on real data, the planted peak on synthetic data."""

import json
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.decoding import SearchLight
from nilearn.maskers import NiftiMasker
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.svm import SVC

from nidecode.analyses.searchlight import searchlight
from nidecode.errors import InputError
from nidecode.ingest import ingest
from nidecode.report import write_report
from nidecode.synth import make_dataset
from tests.conftest import slice_centres


@pytest.fixture(scope="module")
def process_mask(haxby_slice_dir, tmp_path_factory):
    """A process mask of 59 centres of the slice, so nilearn finishes in seconds."""
    path = tmp_path_factory.mktemp("process") / "process.nii.gz"
    nib.save(slice_centres(haxby_slice_dir, 9), path)
    return path


@pytest.fixture(scope="module")
def nilearn_map(haxby_slice_dir, process_mask):
    """nilearn's SearchLight with SVC(kernel="linear") on face vs cat (standardized over all scans).

    nilearn's ``estimator="svc"`` is LinearSVC (squared hinge, penalized
    intercept), another problem; the engine solves SVC's, so SVC is passed.
    """
    labels = pd.read_csv(haxby_slice_dir / "labels.txt", sep=" ")
    masker = NiftiMasker(mask_img=haxby_slice_dir / "mask.nii.gz", standardize="zscore_sample")
    X = masker.fit_transform(haxby_slice_dir / "bold.nii.gz")
    keep = labels["labels"].isin(["face", "cat"]).to_numpy()
    light = SearchLight(mask_img=haxby_slice_dir / "mask.nii.gz", process_mask_img=process_mask,
                        radius=5.6, estimator=SVC(kernel="linear"), cv=LeaveOneGroupOut(),
                        n_jobs=1)
    with warnings.catch_warnings():  # "Use a custom estimator at your own risk": on purpose
        warnings.filterwarnings("ignore", message="Use a custom estimator")
        light.fit(masker.inverse_transform(X[keep]), labels["labels"][keep],
                  groups=labels["chunks"][keep])
    return light.scores_img_.get_fdata()


@pytest.mark.parametrize("solver", ["sklearn", "batched", "libsvm"])
def test_real_slice_map_matches_nilearn(haxby_store, client, tmp_path, process_mask,
                                        nilearn_map, solver):
    table = searchlight(haxby_store["global"], tmp_path, client, radius=5.6,
                        categories=["face", "cat"], process_mask=process_mask, solver=solver,
                        progress=False)
    ours = nib.load(tmp_path / "searchlight" / "haxby2001_slice_cat_vs_face.nii.gz").get_fdata()
    centres = nib.load(process_mask).get_fdata() > 0
    assert table["n_spheres"].tolist() == [centres.sum()] == [59]
    assert (ours[~centres] == 0).all()
    if solver == "sklearn":  # the same SVC on the same spheres: equal
        np.testing.assert_allclose(ours[centres], nilearn_map[centres], atol=1e-6)
    elif solver == "libsvm":  # libsvm's path, as SVC: equal
        np.testing.assert_allclose(ours[centres], nilearn_map[centres], atol=1e-6)
    else:  # the exact optimum, libsvm's path at near ties: SVC within its own tolerance
        same = np.isclose(ours[centres], nilearn_map[centres], atol=1e-6)
        assert same.mean() >= 0.9
        assert np.abs(ours[centres] - nilearn_map[centres]).mean() <= 0.001 + 1e-9
    sizes = nib.load(tmp_path / "searchlight" / "haxby2001_slice_sphere_size.nii.gz")
    assert sizes.get_fdata()[centres].min() >= 1
    # 5.6 mm on 3.1 x 3.75 mm voxels of one slice: the 3 x 3 in-plane block (the
    # diagonal is 4.87 mm away, two voxels along x 6.2 mm), fewer at the edges.
    assert sizes.get_fdata()[centres].max() == 9


def test_one_task_reads_a_voxel_block_once_for_every_pair(haxby_store, client, tmp_path,
                                                          process_mask):
    three = ["face", "cat", "house"]
    searchlight(haxby_store["global"], tmp_path / "all", client, radius=5.6, categories=three,
                process_mask=process_mask, progress=False, spheres_per_task=60)
    counts = json.loads((tmp_path / "all" / "run.json").read_text())["counts"]
    # 59 centres, 3 pairs, 60 sphere-pairs a task: 20 centres a task, 3 tasks of 3 pairs.
    assert (counts["batches"], counts["tasks"], counts["spheres"]) == (9, 3, 3 * 59)
    for pair in (["face", "cat"], ["house", "face"]):
        alone = tmp_path / "_".join(pair)
        searchlight(haxby_store["global"], alone, client, radius=5.6, categories=pair,
                    process_mask=process_mask, progress=False)
        name = f"searchlight/haxby2001_slice_{'_vs_'.join(sorted(pair))}.nii.gz"
        np.testing.assert_array_equal(nib.load(tmp_path / "all" / name).get_fdata(),
                                      nib.load(alone / name).get_fdata())


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory):
    directory = tmp_path_factory.mktemp("synthetic")
    subjects = make_dataset(directory / "data", n_subjects=2)
    ingest(subjects, directory / "store.zarr", "mask")  # the whole synthetic brain
    return directory


@pytest.mark.slow
def test_peak_lands_on_the_planted_region(synthetic_store, client, tmp_path):
    table = searchlight(synthetic_store / "store.zarr", tmp_path, client, radius=6.0,
                        categories=["face", "house"], progress=False, spheres_per_task=500)
    signal = nib.load(synthetic_store / "data" / "subj1" / "signal_mask.nii.gz")
    assert signal.affine[0, 0] < 0 and abs(signal.affine[0, 0]) != signal.affine[1, 1]
    inside = signal.get_fdata() > 0
    for subject in ("subj1", "subj2"):
        image = nib.load(tmp_path / "searchlight" / f"{subject}_face_vs_house.nii.gz")
        np.testing.assert_array_equal(image.affine, signal.affine)
        accuracy = image.get_fdata()
        peak = np.unravel_index(np.argmax(accuracy), accuracy.shape)
        # The peak's sphere reaches into the planted region (in mm, through the
        # anisotropic, flipped affine), and most of the top spheres sit inside it.
        planted_mm = nib.affines.apply_affine(image.affine, np.argwhere(inside))
        peak_mm = nib.affines.apply_affine(image.affine, peak)
        assert np.linalg.norm(planted_mm - peak_mm, axis=1).min() <= 6.0, subject
        top = np.argsort(accuracy, axis=None)[-10:]
        assert inside.flat[top].mean() >= 0.6, subject
        brain = accuracy > 0
        assert accuracy[inside].mean() > accuracy[brain & ~inside].mean() + 0.15
        row = table[table["subject"] == subject].iloc[0]
        world = nib.affines.apply_affine(image.affine, peak)
        np.testing.assert_allclose(row[["peak_x_mm", "peak_y_mm", "peak_z_mm"]].astype(float),
                                   world)
    mean = nib.load(tmp_path / "searchlight" / "mean_face_vs_house.nii.gz").get_fdata()
    assert inside.flat[np.argsort(mean, axis=None)[-10:]].mean() >= 0.6
    # Second level: with 2 subjects only 4 sign flips exist, so p >= 0.25, and t
    # is noisy; still, it is higher in the planted region than elsewhere.
    t_map = nib.load(tmp_path / "searchlight" / "group_face_vs_house_t.nii.gz").get_fdata()
    p_fwe = nib.load(tmp_path / "searchlight" / "group_face_vs_house_p_fwe.nii.gz").get_fdata()
    brain = mean > 0
    assert np.median(t_map[inside]) > np.median(t_map[brain & ~inside]) + 1
    # The corrected p counts the 4 sign patterns whose maximum t reaches a voxel's
    # t: a multiple of 1/4, and never larger at a larger t.
    tested = brain & (p_fwe > 0)
    np.testing.assert_allclose(p_fwe[tested] * 4, np.round(p_fwe[tested] * 4), atol=1e-6)
    by_t = p_fwe[tested][np.argsort(t_map[tested])]
    assert (np.diff(by_t) <= 1e-6).all()
    # Started again: nothing to compute, the same map.
    searchlight(synthetic_store / "store.zarr", tmp_path, client, radius=6.0,
                categories=["face", "house"], progress=False, spheres_per_task=500)
    manifest = json.loads((tmp_path / "run.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["spheres_computed"] == 0
    page = write_report(tmp_path).read_text()
    assert "Searchlight maps" in page and "searchlight of 2 subject(s), radius 6 mm" in page


def test_bad_searchlight_arguments(haxby_store, tmp_path, haxby_slice_dir):
    from nidecode.analyses.searchlight import prepare_searchlight

    with pytest.raises(InputError, match="'radius' parameter of searchlight must be a positive"):
        prepare_searchlight(haxby_store["run"], tmp_path / "a", radius=-1)
    with pytest.raises(InputError, match="'solver' parameter of searchlight must be one of"):
        prepare_searchlight(haxby_store["run"], tmp_path / "b", radius=5, solver="fast")
    wrong = tmp_path / "wrong.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), wrong)
    with pytest.raises(InputError, match="wrong.nii.gz: mask shape .* differs from the shape"):
        prepare_searchlight(haxby_store["run"], tmp_path / "c", radius=5, process_mask=wrong)
