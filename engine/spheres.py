"""Searchlight neighbourhoods: which mask voxels lie in the sphere around each centre.

The definition reproduces nilearn's ``SearchLight`` exactly
(``nilearn.maskers.nifti_spheres_masker.apply_mask_and_get_affinity``):

* distances are Euclidean in world millimetres, through the affine, so anisotropic,
  rotated and flipped voxels are handled;
* a mask voxel belongs to the sphere of a centre when its distance is ``<= radius``
  (``sklearn.neighbors.NearestNeighbors.radius_neighbors_graph``, which we call too so
  that ties at exactly ``radius`` fall the same way);
* the centre voxel is always included, even when ``radius`` is smaller than the voxel;
* nilearn also adds, for each centre, the first mask voxel (in C order) whose world
  coordinates truncated to integers equal the centre's truncated world coordinates.
  That voxel is less than ``2 * sqrt(3)`` mm from the centre, so this quirk can only
  add a voxel outside the sphere when ``radius < 2 * sqrt(3)`` (about 3.46 mm); we
  reproduce it so that maps agree voxel for voxel.

Voxels are indexed in C order of the mask (``np.flatnonzero(mask)``), the column order
of masked data ``X[:, v]``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

from nidecode.errors import InputError

__all__ = [
    "batch_centres",
    "batch_voxel_block",
    "sphere_neighbourhoods",
    "world_coordinates",
]


def world_coordinates(ijk: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World (mm) coordinates of voxel indices, computed as nilearn does.

    Parameters
    ----------
    ijk : numpy.ndarray of shape (3, n)
        Integer voxel indices, one column per voxel (as from ``np.nonzero``).
    affine : numpy.ndarray of shape (4, 4)
        Voxel-to-world affine.

    Returns
    -------
    numpy.ndarray of shape (n, 3)
        World coordinates in millimetres.
    """
    ijk = np.asarray(ijk)
    # Same operations as nilearn.image.coord_transform (np.dot of the affine with the
    # homogeneous integer coordinates) so that distances tie exactly as in nilearn.
    coords = np.c_[ijk[0].flat, ijk[1].flat, ijk[2].flat, np.ones_like(ijk[2].flat)].T
    world = np.dot(np.asarray(affine, dtype=np.float64), coords)
    return np.ascontiguousarray(world[:3].T)


def _as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise InputError(f"{name} must be a 3D array, got shape {mask.shape}")
    return mask != 0


def _first_index_by_key(keys_ref: np.ndarray, keys_query: np.ndarray) -> np.ndarray:
    """For each query row, the first row of ``keys_ref`` equal to it, or -1."""
    both = np.concatenate([keys_ref, keys_query])
    # np.unique sorts rows and return_index gives the first occurrence, which is what
    # nilearn's ``list.index`` finds.
    uniq, first, inverse = np.unique(both, axis=0, return_index=True, return_inverse=True)
    n_ref = len(keys_ref)
    first_ref = np.where(first < n_ref, first, -1)
    return first_ref[inverse.ravel()[n_ref:]]


def sphere_neighbourhoods(
    mask: np.ndarray,
    affine: np.ndarray,
    radius: float,
    process_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, sp.csr_matrix]:
    """Searchlight spheres in millimetres, identical to nilearn's ``SearchLight``.

    Parameters
    ----------
    mask : numpy.ndarray of shape (nx, ny, nz)
        Brain mask (nonzero = in the mask). Its voxels, in C order, are the columns
        of the masked data and of the returned matrix.
    affine : numpy.ndarray of shape (4, 4)
        Voxel-to-world affine of ``mask`` (and of ``process_mask``).
    radius : float
        Sphere radius in millimetres; voxels at distance ``<= radius`` are included.
    process_mask : numpy.ndarray of shape (nx, ny, nz), optional
        Voxels at which spheres are centred; must lie inside ``mask``. Defaults to
        all mask voxels.

    Returns
    -------
    centres : numpy.ndarray of shape (n_centres,), int64
        Index of each centre among the mask voxels (``np.flatnonzero(mask)`` order),
        in C order of the process mask.
    spheres : scipy.sparse.csr_matrix of shape (n_centres, n_mask_voxels), bool
        Row ``i`` lists (sorted) the mask voxels in the sphere of centre ``i``.

    Raises
    ------
    nidecode.errors.InputError
        If the masks are not 3D, have different shapes, the mask is empty, the
        radius is negative or not finite, or the process mask leaves the mask.
    """
    mask = _as_mask(mask, "mask")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise InputError(f"affine must be 4x4, got shape {affine.shape}")
    radius = float(radius)
    if not np.isfinite(radius) or radius < 0:
        raise InputError(f"radius must be a finite number >= 0 mm, got {radius}")
    if not mask.any():
        raise InputError("mask is empty: no voxel to build spheres from")
    if process_mask is None:
        process_mask = mask
    else:
        process_mask = _as_mask(process_mask, "process_mask")
        if process_mask.shape != mask.shape:
            raise InputError(
                f"process_mask shape {process_mask.shape} differs from mask shape "
                f"{mask.shape}; resample it to the mask first"
            )
        outside = int(np.count_nonzero(process_mask & ~mask))
        if outside:
            raise InputError(
                f"process_mask has {outside} voxels outside the mask; "
                "intersect it with the mask (centres must be mask voxels)"
            )

    mask_ijk = np.asarray(np.nonzero(mask))
    seed_ijk = np.asarray(np.nonzero(process_mask))
    mask_world = world_coordinates(mask_ijk, affine)
    seed_world = world_coordinates(seed_ijk, affine)
    n_vox = mask_world.shape[0]

    # Index of every grid voxel among the mask voxels (-1 outside the mask).
    vox_index = np.full(mask.shape, -1, dtype=np.int64)
    vox_index[mask] = np.arange(n_vox)
    centres = vox_index[process_mask]

    graph = (
        NearestNeighbors(radius=radius).fit(mask_world).radius_neighbors_graph(seed_world)
    ).tocsr()
    # Entries (sphere row, voxel column) gathered from the three sources, then merged.
    sphere_rows = [np.repeat(np.arange(graph.shape[0]), np.diff(graph.indptr))]
    voxel_cols = [graph.indices]

    # nilearn adds the voxel nearest to each seed (through the inverse affine); for a
    # seed at a voxel centre that is the centre voxel itself.
    homogeneous = np.c_[seed_world, np.ones(len(seed_world))].T
    nearest = np.round(np.dot(np.linalg.inv(affine), homogeneous))
    nearest = nearest[:3].astype(np.int64)
    inside = np.all((nearest >= 0) & (nearest < np.array(mask.shape)[:, None]), axis=0)
    near_idx = np.full(len(seed_world), -1, dtype=np.int64)
    near_idx[inside] = vox_index[tuple(nearest[:, inside])]
    ok = near_idx >= 0
    sphere_rows.append(np.flatnonzero(ok))
    voxel_cols.append(near_idx[ok])

    # nilearn's second addition: the first mask voxel whose truncated world coordinates
    # equal the seed's truncated world coordinates (``astype(int)`` truncates toward 0).
    trunc_idx = _first_index_by_key(mask_world.astype(np.int64), seed_world.astype(np.int64))
    ok = trunc_idx >= 0
    sphere_rows.append(np.flatnonzero(ok))
    voxel_cols.append(trunc_idx[ok])

    row_ind = np.concatenate(sphere_rows)
    col_ind = np.concatenate(voxel_cols)
    spheres = sp.csr_matrix(
        (np.ones(len(row_ind), dtype=bool), (row_ind, col_ind)),
        shape=(len(seed_world), n_vox),
    )
    # Duplicates were summed (logical or for bool); make the structure canonical.
    spheres.sum_duplicates()
    spheres.sort_indices()
    return centres, spheres


def batch_centres(n_centres: int, batch_size: int) -> list[slice]:
    """Split centres ``0 .. n_centres - 1`` into consecutive batches.

    Parameters
    ----------
    n_centres : int
        Number of sphere centres.
    batch_size : int
        Maximum number of centres per batch (>= 1).

    Returns
    -------
    list of slice
        Consecutive slices covering ``range(n_centres)``; all but the last have
        ``batch_size`` centres.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if n_centres < 0:
        raise InputError(f"n_centres must be >= 0, got {n_centres}")
    return [slice(s, min(s + batch_size, n_centres)) for s in range(0, n_centres, batch_size)]


def batch_voxel_block(
    spheres: sp.csr_matrix, batch: slice | np.ndarray
) -> tuple[np.ndarray, sp.csr_matrix]:
    """Voxels a batch of spheres needs, and the spheres re-indexed into that block.

    A task can then read only ``X[:, voxels]`` and run the solver with
    ``local_spheres``.

    Parameters
    ----------
    spheres : scipy.sparse.csr_matrix of shape (n_centres, n_mask_voxels)
        Sphere membership, as returned by :func:`sphere_neighbourhoods`.
    batch : slice or numpy.ndarray of int
        Rows (centres) of the batch.

    Returns
    -------
    voxels : numpy.ndarray of int64
        Sorted union of the batch's sphere voxels (indices among the mask voxels).
    local_spheres : scipy.sparse.csr_matrix of shape (n_batch, len(voxels)), bool
        The batch's spheres with columns indexing ``voxels``.
    """
    sub = sp.csr_matrix(spheres[batch])
    voxels = np.unique(sub.indices).astype(np.int64)
    # Columns are sorted, so searchsorted maps each global voxel to its local column.
    local_cols = np.searchsorted(voxels, sub.indices)
    local = sp.csr_matrix(
        (np.ones(len(local_cols), dtype=bool), local_cols, sub.indptr.copy()),
        shape=(sub.shape[0], len(voxels)),
    )
    local.sort_indices()
    return voxels, local
