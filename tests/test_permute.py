"""Permutation tests: planted signal is significant, null pairs are uniform, nulls reproducible."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nidecode.analyses.permute import permute
from nidecode.ingest import ingest
from nidecode.synth import make_dataset


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory):
    """Six held-out synthetic subjects (seed 7: not the demo's), VT mask."""
    directory = tmp_path_factory.mktemp("permute")
    subjects = make_dataset(directory / "data", n_subjects=6, seed=7)
    ingest(subjects, directory / "store.zarr", "mask4_vt")
    return directory / "store.zarr"


@pytest.mark.slow
def test_planted_pair_is_significant_and_null_pair_is_uniform(synthetic_store, client,
                                                               tmp_path):
    planted = permute(synthetic_store, tmp_path / "planted", client, n_permutations=200,
                      categories=["face", "house"], progress=False)
    assert (planted["p_value"] < 0.01).all(), planted
    assert (planted["n_distinct_permutations"] == 2 ** 12).all()  # 2 blocks per run swap
    null = permute(synthetic_store, tmp_path / "null", client, n_permutations=200,
                   categories=["bottle", "shoe"], progress=False)["p_value"]
    assert stats.kstest(null, "uniform").pvalue > 0.01, null
    assert null.min() > 0.01, null
    # The null distributions are centred on chance.
    assert abs(planted["null_mean"].mean() - 0.5) < 0.02
    for name, below in (("planted", True), ("null", False)):
        group = pd.read_csv(tmp_path / name / "group.csv")
        assert (group["p_value"].item() < 0.001) == below
    null_file = np.load(tmp_path / "planted" / "permutations" / "null" /
                        "subj1_face_vs_house.npy")
    assert null_file.shape == (200,)


def test_null_does_not_depend_on_the_split_and_solvers_agree(haxby_store, client, tmp_path):
    common = {"n_permutations": 24, "categories": ["face", "cat"], "progress": False}
    permute(haxby_store["run"], tmp_path / "a", client, permutations_per_task=5, **common)
    permute(haxby_store["run"], tmp_path / "b", client, permutations_per_task=25, **common)
    permute(haxby_store["run"], tmp_path / "c", client, solver="sklearn", **common)
    nulls = [np.load(tmp_path / name / "permutations" / "null" /
                     "haxby2001_slice_cat_vs_face.npy") for name in "abc"]
    np.testing.assert_array_equal(nulls[0], nulls[1])
    # SVC refitted and the Gram solver agree within SVC's own tolerance.
    assert np.abs(nulls[0] - nulls[2]).max() <= 1 / 18
    assert np.mean(nulls[0] == nulls[2]) >= 0.9
    pvalues = pd.read_csv(tmp_path / "c" / "permutations" / "pvalues.csv")
    assert pvalues["accuracy"].item() == pytest.approx(0.8102, abs=5e-5)  # the README's
    assert pvalues["n_permutations"].item() == 24
    manifest = json.loads((tmp_path / "a" / "run.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["tasks"] == 5


def test_searchlight_permutations_give_corrected_maps(haxby_store, client, tmp_path):
    table = permute(haxby_store["global"], tmp_path, client, n_permutations=4, radius=5.6,
                    categories=["face", "cat"], progress=False)
    assert table["n_spheres"].tolist() == [530]
    base = tmp_path / "searchlight" / "haxby2001_slice_cat_vs_face"
    accuracy = nib.load(f"{base}.nii.gz").get_fdata()
    p = nib.load(f"{base}_p.nii.gz").get_fdata()
    p_fwe = nib.load(f"{base}_p_fwe.nii.gz").get_fdata()
    inside = accuracy > 0
    assert inside.sum() == 530
    null = np.load(tmp_path / "permutations" / "null" /
                   "haxby2001_slice_cat_vs_face_searchlight.npy")
    assert null.shape == (4, 530)
    # Each sphere's p is (1 + nulls at or above its accuracy) / 5; the corrected
    # p counts each permutation's best sphere instead. The null's columns are the
    # spheres in the mask's (C) order, as the map's voxels are read here.
    observed = accuracy[inside]
    np.testing.assert_allclose(p[inside], (1 + (null >= observed - 1e-6).sum(axis=0)) / 5,
                               atol=1e-6)
    np.testing.assert_allclose(
        p_fwe[inside], (1 + (null.max(axis=1)[:, None] >= observed - 1e-6).sum(axis=0)) / 5,
        atol=1e-6)
