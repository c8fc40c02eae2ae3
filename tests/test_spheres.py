"""Searchlight neighbourhoods: identical to nilearn's, and geometric properties."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nilearn.image import coord_transform
from nilearn.maskers.nifti_spheres_masker import apply_mask_and_get_affinity

from nidecode.errors import InputError
from nidecode.spheres import (
    batch_centres,
    batch_voxel_block,
    sphere_neighbourhoods,
    world_coordinates,
)

# nilearn adds the voxel whose truncated world coordinates equal the centre's; it is
# closer than this to the centre, so beyond this radius spheres are pure balls.
QUIRK_REACH = 2 * math.sqrt(3)


def nilearn_spheres(mask, affine, radius, process_mask=None) -> sp.csr_matrix:
    """The adjacency nilearn's SearchLight.fit builds (same call, same inputs)."""
    process_mask = mask if process_mask is None else process_mask
    mask_img = nib.Nifti1Image(mask.astype(np.int8), affine)
    imgs = nib.Nifti1Image(np.zeros(mask.shape + (2,), dtype=np.float32), affine)
    ijk = np.where(process_mask)
    seeds = np.asarray(coord_transform(ijk[0], ijk[1], ijk[2], affine)).T
    _, A = apply_mask_and_get_affinity(seeds, imgs, radius, True, mask_img=mask_img)
    return A.tocsr().astype(bool)


def assert_same_spheres(a: sp.csr_matrix, b: sp.csr_matrix) -> None:
    assert a.shape == b.shape
    diff = (a.astype(bool) != b.astype(bool)).nnz
    assert diff == 0, f"{diff} sphere memberships differ"


def random_affine(rng: np.random.Generator, min_size: float, max_size: float) -> np.ndarray:
    """Random rotation x axis scaling (with random flips) + translation."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    rot = q * np.sign(np.diag(r))  # uniform orthogonal matrix (may include a reflection)
    scale = rng.uniform(min_size, max_size, 3) * rng.choice([-1.0, 1.0], 3)
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(scale)
    affine[:3, 3] = rng.uniform(-80, 80, 3)
    return affine


# --------------------------------------------------------------------------------------
# equality with nilearn
# --------------------------------------------------------------------------------------


def test_real_slice_matches_nilearn(haxby_slice_dir):
    mask_img = nib.load(haxby_slice_dir / "mask.nii.gz")
    mask = np.asarray(mask_img.dataobj) != 0
    centres, spheres = sphere_neighbourhoods(mask, mask_img.affine, 5.6)
    assert mask.sum() == 530
    np.testing.assert_array_equal(centres, np.arange(530))
    assert_same_spheres(spheres, nilearn_spheres(mask, mask_img.affine, 5.6))
    sizes = np.diff(spheres.indptr)
    # 3.1 x 3.75 mm in-plane voxels, one slice: at most the 3 x 3 in-plane block.
    assert sizes.max() == 9
    assert sizes.min() >= 1


@pytest.mark.parametrize("radius", [0.5, 2.0, 3.1, 4.0, 6.0, 8.0])
def test_anisotropic_flipped_grid_matches_nilearn(radius):
    rng = np.random.default_rng(0)
    mask = rng.random((9, 8, 6)) < 0.7
    # Anisotropic voxels, x flipped, exact ties possible (4 mm = 2 voxels along y).
    affine = np.array([[-3.0, 0, 0, 40.0], [0, 2.0, 0, -20.0], [0, 0, 2.5, -10.0], [0, 0, 0, 1]])
    process_mask = mask & (rng.random(mask.shape) < 0.5)
    for pm in (None, process_mask):
        centres, spheres = sphere_neighbourhoods(mask, affine, radius, pm)
        assert_same_spheres(spheres, nilearn_spheres(mask, affine, radius, pm))
        expected = np.flatnonzero(mask if pm is None else pm)
        np.testing.assert_array_equal(np.flatnonzero(mask)[centres], expected)


def test_small_voxels_reproduce_nilearn_truncation_quirk():
    # 0.4 mm voxels and a 0.3 mm radius: nilearn adds the first voxel sharing the
    # centre's integer-truncated world coordinates, outside the sphere.
    mask = np.ones((6, 6, 3), dtype=bool)
    affine = np.diag([0.4, 0.4, 0.4, 1.0])
    _, spheres = sphere_neighbourhoods(mask, affine, 0.3)
    assert_same_spheres(spheres, nilearn_spheres(mask, affine, 0.3))
    assert np.diff(spheres.indptr).max() > 1  # the quirk did add voxels


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), radius=st.floats(0.2, 9.0))
def test_random_affines_match_nilearn(seed, radius):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(2, 8, 3))
    mask = rng.random(shape) < 0.6
    if not mask.any():
        mask.flat[0] = True
    affine = random_affine(rng, 0.3, 4.0)
    _, spheres = sphere_neighbourhoods(mask, affine, radius)
    assert_same_spheres(spheres, nilearn_spheres(mask, affine, radius))


# --------------------------------------------------------------------------------------
# geometric properties
# --------------------------------------------------------------------------------------


def _case(seed: int, min_size: float = 0.8, max_size: float = 4.0):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(3, 9, 3))
    mask = rng.random(shape) < 0.5
    mask.flat[rng.integers(mask.size)] = True
    return mask, random_affine(rng, min_size, max_size)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), radius=st.floats(0.1, 12.0))
def test_centre_included_and_radius_respected(seed, radius):
    mask, affine = _case(seed)
    centres, spheres = sphere_neighbourhoods(mask, affine, radius)
    world = world_coordinates(np.asarray(np.nonzero(mask)), affine)
    trunc = world.astype(np.int64)
    for row, c in enumerate(centres):
        members = spheres.indices[spheres.indptr[row] : spheres.indptr[row + 1]]
        assert c in members
        dist = np.linalg.norm(world - world[c], axis=1)
        # Every voxel inside the ball is a member (ties at the boundary aside) ...
        inside = np.flatnonzero(dist < radius * (1 - 1e-12))
        assert np.isin(inside, members).all()
        # ... and members outside it are only the centre or nilearn's quirk voxel.
        outside = members[dist[members] > radius * (1 + 1e-12)]
        for v in outside:
            assert v == c or np.array_equal(trunc[v], trunc[c])
            assert dist[v] < QUIRK_REACH
        if radius >= QUIRK_REACH:
            assert np.all((dist[members] <= radius * (1 + 1e-12)) | (members == c))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), radius=st.floats(QUIRK_REACH, 12.0))
def test_symmetric(seed, radius):
    mask, affine = _case(seed)
    centres, spheres = sphere_neighbourhoods(mask, affine, radius)
    # All mask voxels are centres here, so the matrix must be symmetric.
    assert spheres.shape[0] == spheres.shape[1]
    assert (spheres != spheres.T).nnz == 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), radius=st.floats(0.5, 10.0))
def test_process_mask_rows_are_the_full_rows(seed, radius):
    mask, affine = _case(seed)
    rng = np.random.default_rng(seed)
    process_mask = mask & (rng.random(mask.shape) < 0.4)
    process_mask.flat[np.flatnonzero(mask)[0]] = True
    c_all, s_all = sphere_neighbourhoods(mask, affine, radius)
    c_pm, s_pm = sphere_neighbourhoods(mask, affine, radius, process_mask)
    np.testing.assert_array_equal(np.flatnonzero(mask)[c_pm], np.flatnonzero(process_mask))
    assert_same_spheres(s_pm, s_all[c_pm])


def test_world_coordinates_match_nilearn():
    rng = np.random.default_rng(3)
    affine = random_affine(rng, 0.5, 3.0)
    ijk = rng.integers(0, 50, (3, 20))
    expected = np.asarray(coord_transform(ijk[0], ijk[1], ijk[2], affine)).T
    np.testing.assert_array_equal(world_coordinates(ijk, affine), expected)


def test_whole_brain_grid_is_handled():
    # A brain-sized grid (~30 000 voxels); radius queries, not a dense distance matrix.
    ii, jj, kk = np.indices((40, 64, 64))
    mask = ((ii - 20) / 19) ** 2 + ((jj - 32) / 31) ** 2 + ((kk - 32) / 24) ** 2 <= 1
    affine = np.diag([-3.0, 3.0, 3.0, 1.0])
    centres, spheres = sphere_neighbourhoods(mask, affine, 6.0)
    assert spheres.shape == (mask.sum(), mask.sum())
    assert len(centres) == mask.sum() > 25_000
    # Interior spheres: the 3 mm grid points within 6 mm (2 steps): 33 voxels.
    assert np.diff(spheres.indptr).max() == 33


# --------------------------------------------------------------------------------------
# batching
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "size"), [(0, 3), (1, 3), (10, 3), (12, 4), (5, 100)])
def test_batch_centres_cover_everything_once(n, size):
    batches = batch_centres(n, size)
    covered = np.concatenate([np.arange(n)[b] for b in batches]) if batches else []
    np.testing.assert_array_equal(covered, np.arange(n))
    assert all(b.stop - b.start <= size for b in batches)


def test_batch_voxel_block_reindexes_spheres(haxby_slice_dir):
    mask_img = nib.load(haxby_slice_dir / "mask.nii.gz")
    mask = np.asarray(mask_img.dataobj) != 0
    _, spheres = sphere_neighbourhoods(mask, mask_img.affine, 5.6)
    X = np.random.default_rng(0).standard_normal((5, spheres.shape[1]))
    for batch in batch_centres(spheres.shape[0], 64):
        voxels, local = batch_voxel_block(spheres, batch)
        assert np.all(np.diff(voxels) > 0)
        assert local.shape == (batch.stop - batch.start, len(voxels))
        block = X[:, voxels]
        for r in range(local.shape[0]):
            glob = spheres.indices[
                spheres.indptr[batch.start + r] : spheres.indptr[batch.start + r + 1]
            ]
            loc = local.indices[local.indptr[r] : local.indptr[r + 1]]
            np.testing.assert_array_equal(voxels[loc], glob)
            np.testing.assert_array_equal(block[:, loc], X[:, glob])


# --------------------------------------------------------------------------------------
# input errors
# --------------------------------------------------------------------------------------


def test_bad_inputs_raise_input_error():
    mask = np.ones((3, 3, 3), dtype=bool)
    with pytest.raises(InputError, match="3D"):
        sphere_neighbourhoods(np.ones((3, 3)), np.eye(4), 2.0)
    with pytest.raises(InputError, match="4x4"):
        sphere_neighbourhoods(mask, np.eye(3), 2.0)
    with pytest.raises(InputError, match="radius"):
        sphere_neighbourhoods(mask, np.eye(4), -1.0)
    with pytest.raises(InputError, match="empty"):
        sphere_neighbourhoods(np.zeros((3, 3, 3)), np.eye(4), 2.0)
    outside = np.zeros((3, 3, 3), dtype=bool)
    outside[0, 0, 0] = True
    small = mask.copy()
    small[0, 0, 0] = False
    with pytest.raises(InputError, match="outside the mask"):
        sphere_neighbourhoods(small, np.eye(4), 2.0, outside)
    with pytest.raises(InputError, match="shape"):
        sphere_neighbourhoods(mask, np.eye(4), 2.0, np.ones((2, 2, 2)))
    with pytest.raises(InputError, match="batch_size"):
        batch_centres(10, 0)
