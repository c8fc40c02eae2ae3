"""Group inference on searchlight maps: clusters, Stelzer draws, TFCE, prevalence.

Pure numpy / scipy / nilearn on arrays; :mod:`nidecode.analyses.group` cuts
the draws into Dask tasks and saves what these functions return.

Maps are given as ``(n, n_voxels)`` arrays over the voxels tested (a set of
mask voxels in C order) and put back on the 3D grid through ``volume_index``
(their flat indices in the grid) only to find clusters, so a cluster never
crosses the mask. p-values follow :mod:`nidecode.stats`: the observed
statistic counts as one draw, ``(1 + #(null >= observed)) / (1 + N)``, and
values within a rounding error of the observed one count as ties.

References
----------
Stelzer, Chen & Turner (2013). Statistical inference and multiple testing
correction in classification-based multi-voxel pattern analysis (MVPA):
random permutations and cluster size control. NeuroImage 65:69-82.

Allefeld, Goergen & Haynes (2016). Valid population inference for
information-based imaging: from the second-level t-test to prevalence
inference. NeuroImage 141:378-392 (equation numbers below are theirs).

Smith & Nichols (2009). Threshold-free cluster enhancement. NeuroImage
44:83-98 (through nilearn's ``permuted_ols``).
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Sequence

import nibabel as nib
import numpy as np
import pandas as pd
from numba import njit
from scipy import ndimage

from nidecode.stats import _ATOL, _RTOL, _tie_floor

__all__ = ["CONNECTIVITY", "cluster_p_values", "cluster_table", "combinations",
           "draw_combinations", "label_clusters", "max_cluster_sizes", "n_top",
           "prevalence_counts", "prevalence_results", "stelzer_null_means", "stelzer_test",
           "supra_threshold", "tfce_flips", "tfce_p_values", "tfce_prepare", "tfce_test",
           "top_values", "voxel_thresholds"]

#: Neighbours of a voxel -> rank of :func:`scipy.ndimage.generate_binary_structure`:
#: faces (6), faces and edges (18), faces, edges and corners (26).
CONNECTIVITY = {6: 1, 18: 2, 26: 3}


# --- clusters ------------------------------------------------------------------------------


def label_clusters(supra: np.ndarray, volume_index: np.ndarray, shape: Sequence[int],
                   connectivity: int = 6) -> tuple[np.ndarray, int]:
    """Number the clusters of supra-threshold voxels.

    Parameters
    ----------
    supra : numpy.ndarray of bool, shape (n_voxels,)
        Which tested voxels are above threshold.
    volume_index : numpy.ndarray of int, shape (n_voxels,)
        Flat (C order) index of each tested voxel in the grid.
    shape : sequence of 3 int
        The grid.
    connectivity : {6, 18, 26}
        Which neighbours join a cluster.

    Returns
    -------
    labels : numpy.ndarray of int, shape (n_voxels,)
        0 below threshold, 1 .. n_clusters otherwise.
    n_clusters : int
    """
    volume = np.zeros(int(np.prod(shape)), dtype=bool)
    volume[volume_index[supra]] = True
    structure = ndimage.generate_binary_structure(3, CONNECTIVITY[connectivity])
    labels, n_clusters = ndimage.label(volume.reshape(tuple(shape)), structure=structure)
    return labels.ravel()[volume_index], int(n_clusters)


def max_cluster_sizes(supra: np.ndarray, volume_index: np.ndarray, shape: Sequence[int],
                      connectivity: int = 6) -> np.ndarray:
    """The size (voxels) of the largest cluster of each map; 0 for a map without any.

    ``supra`` has shape ``(n_maps, n_voxels)``; see :func:`label_clusters`.
    """
    sizes = np.zeros(len(supra), dtype=np.int64)
    for row, voxels in enumerate(supra):
        if voxels.any():
            labels, _ = label_clusters(voxels, volume_index, shape, connectivity)
            sizes[row] = np.bincount(labels)[1:].max()
    return sizes


def cluster_table(labels: np.ndarray, statistic: np.ndarray, p_fwe: np.ndarray,
                  volume_index: np.ndarray, shape: Sequence[int],
                  affine: np.ndarray) -> pd.DataFrame:
    """One row per cluster, largest first: size, peak and family-wise p.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (n_voxels,)
        From :func:`label_clusters`.
    statistic : numpy.ndarray, shape (n_voxels,)
        The map whose maximum in each cluster is its peak.
    p_fwe : numpy.ndarray, shape (n_clusters,)
        The p-value of each cluster (label 1 first).
    volume_index, shape : as in :func:`label_clusters`
    affine : numpy.ndarray, shape (4, 4)
        Voxel to world (mm).

    Returns
    -------
    pandas.DataFrame
        ``cluster`` (1 = largest), ``size_voxels``, ``size_mm3``, ``peak_x_mm``,
        ``peak_y_mm``, ``peak_z_mm``, ``peak_statistic``, ``p_fwe``.
    """
    voxel_mm3 = abs(float(np.linalg.det(np.asarray(affine)[:3, :3])))
    rows = []
    for label in range(1, int(labels.max(initial=0)) + 1):
        members = np.flatnonzero(labels == label)
        peak = members[np.argmax(statistic[members])]
        ijk = np.unravel_index(volume_index[peak], tuple(shape))
        x, y, z = nib.affines.apply_affine(affine, ijk)
        rows.append({"size_voxels": len(members), "size_mm3": len(members) * voxel_mm3,
                     "peak_x_mm": x, "peak_y_mm": y, "peak_z_mm": z,
                     "peak_statistic": float(statistic[peak]), "p_fwe": float(p_fwe[label - 1])})
    columns = ["cluster", "size_voxels", "size_mm3", "peak_x_mm", "peak_y_mm", "peak_z_mm",
               "peak_statistic", "p_fwe"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows).sort_values(["size_voxels", "peak_statistic"],
                                           ascending=False, kind="stable")
    table.insert(0, "cluster", np.arange(1, len(table) + 1))
    return table[columns].reset_index(drop=True)


# --- draws of one map per subject -----------------------------------------------------------


def combinations(n_maps: Sequence[int]) -> int:
    """How many ways to take one of ``n_maps[s]`` maps of every subject ``s``."""
    return math.prod(int(n) for n in n_maps)


def draw_combinations(n_maps: Sequence[int], n_draws: int, seed: int, *,
                      skip_first: bool = False) -> np.ndarray:
    """Distinct combinations of one map per subject, drawn from the seed alone.

    Parameters
    ----------
    n_maps : sequence of int
        Maps of each subject.
    n_draws : int
        Combinations wanted.
    seed : int
    skip_first : bool
        Never draw combination 0 (map 0 of every subject: with prevalence
        inference, the observed maps).

    Returns
    -------
    numpy.ndarray of int, shape (n, n_subjects)
        Row ``d``: the map of each subject in draw ``d``. Every combination
        once (in order) when there are at most ``n_draws``; otherwise
        ``n_draws`` combinations sampled without replacement, whatever their
        number (exact for any size, even 100 maps of 12 subjects: 10^24).
        Cutting the rows into tasks does not change them.
    """
    first = int(skip_first)
    total = combinations(n_maps)
    if total - first <= n_draws:
        codes = range(first, total)
    else:
        codes = _sample(range(first, total), n_draws, random.Random(seed))
    draws = np.empty((len(codes), len(n_maps)), dtype=np.int64)
    for row, code in enumerate(codes):
        for subject, n in enumerate(n_maps):  # mixed radix: subject 0 varies fastest
            code, draws[row, subject] = divmod(code, int(n))
    return draws


def _sample(codes: range, k: int, rng: random.Random) -> list[int]:
    """``k`` distinct codes, uniformly: ``random.sample`` where it can index the range,
    otherwise draws with a distinctness check (repeats are then vanishingly rare)."""
    if codes.stop < sys.maxsize:
        return rng.sample(codes, k)
    chosen: dict[int, None] = {}
    while len(chosen) < k:
        chosen.setdefault(rng.randrange(codes.start, codes.stop))
    return list(chosen)


# --- compiled kernels of the Stelzer draws (numba, cached next to this module) ---------------


def stack_maps(blocks: Sequence[np.ndarray], draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every subject's maps in one array, and each draw's rows in it.

    ``blocks[s]``: subject ``s``'s maps ``(n_s, n_voxels)``; ``draws[d, s]`` a
    row of ``blocks[s]``. Returns ``(stacked, rows)`` with ``stacked[rows[d, s]]
    == blocks[s][draws[d, s]]``.
    """
    offsets = np.cumsum([0] + [len(block) for block in blocks[:-1]])
    stacked = np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)
    return stacked, np.ascontiguousarray(draws + offsets[None, :], dtype=np.int64)


def null_top(stacked: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest group means of each voxel over the draws ``rows``, largest first.

    The mean of a draw is summed in float64 in subject order and divided by
    the subjects, as :func:`stelzer_null_means` (the same values, bit for
    bit); ``-inf`` fills the rows beyond the number of draws.
    """
    top = np.full((max(k, 1), stacked.shape[1]), -np.inf)
    if k > 0:
        _top_kernel(stacked, rows, top)
    return top[:k]


def null_max_sizes(stacked: np.ndarray, rows: np.ndarray, thresholds: np.ndarray,
                   volume_index: np.ndarray, shape: Sequence[int],
                   connectivity: int = 6) -> np.ndarray:
    """The largest supra-threshold cluster of the group mean of each draw ``rows``.

    Equal to :func:`max_cluster_sizes` of :func:`supra_threshold` of
    :func:`stelzer_null_means` (tested), without holding the means or
    labelling whole volumes: a union-find over the supra-threshold voxels.
    """
    supra = np.empty((len(rows), stacked.shape[1]), dtype=np.bool_)
    _supra_kernel(stacked, rows, np.asarray(thresholds, dtype=np.float64), _RTOL, _ATOL,
                    supra)
    position = np.full(int(np.prod(shape)), -1, dtype=np.int64)
    position[volume_index] = np.arange(len(volume_index))
    structure = ndimage.generate_binary_structure(3, CONNECTIVITY[connectivity])
    offsets = np.argwhere(structure) - 1
    offsets = offsets[np.any(offsets != 0, axis=1)].astype(np.int64)
    coordinates = np.stack(np.unravel_index(volume_index, tuple(shape)), axis=1).astype(np.int64)
    sizes = np.zeros(len(rows), dtype=np.int64)
    _max_cluster_kernel(supra, coordinates, position, np.asarray(shape, dtype=np.int64),
                          offsets, sizes)
    return sizes


@njit(cache=True, nogil=True)
def _draw_mean(stacked, rows, draw, mean):
    """``mean`` = the group mean map of one draw: the mean of its subjects' rows."""
    n_subjects = rows.shape[1]
    mean[:] = 0.0
    for subject in range(n_subjects):
        row = rows[draw, subject]
        for voxel in range(mean.shape[0]):
            mean[voxel] += stacked[row, voxel]
    for voxel in range(mean.shape[0]):
        mean[voxel] /= n_subjects


@njit(cache=True, nogil=True)
def _top_kernel(stacked, rows, top):
    k, n_voxels = top.shape
    mean = np.empty(n_voxels)
    for draw in range(rows.shape[0]):
        _draw_mean(stacked, rows, draw, mean)
        for voxel in range(n_voxels):
            value = mean[voxel]
            if value > top[k - 1, voxel]:  # insertion into the sorted top k
                place = k - 1
                while place > 0 and top[place - 1, voxel] < value:
                    top[place, voxel] = top[place - 1, voxel]
                    place -= 1
                top[place, voxel] = value


@njit(cache=True, nogil=True)
def _supra_kernel(stacked, rows, thresholds, rtol, atol, supra):
    n_voxels = stacked.shape[1]
    mean = np.empty(n_voxels)
    for draw in range(rows.shape[0]):
        _draw_mean(stacked, rows, draw, mean)
        for voxel in range(n_voxels):
            value = mean[voxel]
            # As supra_threshold: the value less its tie tolerance exceeds the threshold.
            supra[draw, voxel] = value - (rtol * abs(value) + atol) > thresholds[voxel]


@njit(cache=True, nogil=True)
def _find(parent, node):
    while parent[node] != node:
        parent[node] = parent[parent[node]]  # path halving
        node = parent[node]
    return node


@njit(cache=True, nogil=True)
def _max_cluster_kernel(supra, coordinates, position, shape, offsets, sizes):
    n_draws, n_voxels = supra.shape
    parent = np.arange(n_voxels)
    count = np.zeros(n_voxels, dtype=np.int64)
    members = np.empty(n_voxels, dtype=np.int64)
    for draw in range(n_draws):
        n = 0
        for voxel in range(n_voxels):
            if supra[draw, voxel]:
                parent[voxel] = voxel
                members[n] = voxel
                n += 1
        for index in range(n):
            voxel = members[index]
            for offset in range(offsets.shape[0]):
                i = coordinates[voxel, 0] + offsets[offset, 0]
                j = coordinates[voxel, 1] + offsets[offset, 1]
                m = coordinates[voxel, 2] + offsets[offset, 2]
                if not (0 <= i < shape[0] and 0 <= j < shape[1] and 0 <= m < shape[2]):
                    continue
                other = position[(i * shape[1] + j) * shape[2] + m]
                if other < 0 or not supra[draw, other]:
                    continue  # outside the voxels tested, or below threshold
                a, b = _find(parent, voxel), _find(parent, other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
        largest = 0
        for index in range(n):
            root = _find(parent, members[index])
            count[root] += 1
            largest = max(largest, count[root])
        for index in range(n):
            count[members[index]] = 0
        sizes[draw] = largest


# --- Stelzer et al. (2013): null of the mean map, voxel thresholds, cluster sizes ----------------


def stelzer_null_means(nulls: Sequence[np.ndarray], draws: np.ndarray) -> np.ndarray:
    """The group mean map of each draw: the mean over subjects of the drawn maps.

    ``nulls[s]`` has shape ``(n_permutations_s, n_voxels)``; returns
    ``(n_draws, n_voxels)`` float64, summed in subject order (the observed
    mean is computed in the same order, so ties are exact).
    """
    total = np.zeros((len(draws), nulls[0].shape[1]))
    for subject, null in enumerate(nulls):
        total += null[draws[:, subject]]
    return total / len(nulls)


def top_values(maps: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest values of each column, largest first (all if fewer).

    Top values of several blocks of draws merge exactly: the top ``k`` of
    their stacked tops.
    """
    k = min(k, len(maps))
    if k == 0:
        return maps[:0]
    top = -np.partition(-maps, k - 1, axis=0)[:k] if k < len(maps) else maps.copy()
    return -np.sort(-top, axis=0)


def n_top(cluster_p: float, n_draws: int) -> int:
    """Rank of the voxel threshold among the null values: ``floor(p (1 + N))``.

    A value above the ``n``-th largest of ``N`` null values has at most
    ``n - 1`` null values at or above it: ``p <= n / (1 + N) <= cluster_p``.
    0 when ``N`` draws cannot resolve ``cluster_p``.
    """
    return int(math.floor(cluster_p * (1 + n_draws) + 1e-9))


def voxel_thresholds(top: np.ndarray, cluster_p: float, n_draws: int) -> np.ndarray:
    """Per voxel, the value a map must exceed to have ``p <= cluster_p``.

    ``top``: the largest null values of each voxel, largest first (from
    :func:`top_values` with ``k >= n_top(cluster_p, n_draws)``); ``+inf``
    where the draws cannot resolve ``cluster_p``.
    """
    rank = n_top(cluster_p, n_draws)
    if rank == 0:
        return np.full(top.shape[1], np.inf)
    return top[rank - 1]


def supra_threshold(maps: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Which voxels of ``maps`` exceed their threshold (ties with it do not)."""
    return _tie_floor(maps) > thresholds


def cluster_p_values(sizes: np.ndarray, null_max_sizes: np.ndarray) -> np.ndarray:
    """Family-wise p of each cluster size: ``(1 + #(null max >= size)) / (1 + N)``."""
    null = np.sort(np.asarray(null_max_sizes))
    extreme = len(null) - np.searchsorted(null, np.asarray(sizes), side="left")
    return (1.0 + extreme) / (1.0 + len(null))


# --- TFCE (Smith & Nichols 2009) through nilearn ----------------------------------------------


def tfce_test(maps: np.ndarray, chance: np.ndarray, mask_img: nib.Nifti1Image, *,
              n_permutations: int, seed: int) -> dict[str, np.ndarray]:
    """Sign-flip test of ``maps - chance`` across subjects with TFCE, by nilearn.

    Parameters
    ----------
    maps : numpy.ndarray, shape (n_subjects, n_voxels)
        Each subject's accuracy at the voxels of ``mask_img`` (C order).
    chance : numpy.ndarray, shape (n_subjects,)
        Each subject's chance level.
    mask_img : nibabel.Nifti1Image
        The voxels tested; TFCE needs their 3D neighbourhood (nilearn's
        face connectivity).
    n_permutations : int
        Sign flips.
    seed : int
        ``random_state`` of ``permuted_ols``.

    Returns
    -------
    dict
        ``tfce`` (n_voxels,), ``p_fwe`` (n_voxels,): ``(1 + #(max TFCE of a
        flip >= tfce)) / (1 + n_permutations)``, ``h0`` (n_permutations,): the
        maximum TFCE of each flip, one-sided (above chance).
    """
    from nilearn.maskers import NiftiMasker
    from nilearn.mass_univariate import permuted_ols

    masker = NiftiMasker(mask_img=mask_img).fit()
    targets = np.asarray(maps, dtype=float) - np.asarray(chance, dtype=float)[:, None]
    outputs = permuted_ols(np.ones((len(targets), 1)), targets, model_intercept=False,
                           n_perm=n_permutations, two_sided_test=False, random_state=seed,
                           n_jobs=1, verbose=0, masker=masker, tfce=True, output_type="dict")
    return {"tfce": outputs["tfce"][0], "p_fwe": 10.0 ** -outputs["logp_max_tfce"][0],
            "h0": outputs["h0_max_tfce"][0], "t": outputs["t"][0]}


def tfce_prepare(maps: np.ndarray, chance: np.ndarray, mask_img: nib.Nifti1Image, *,
                 seed: int) -> dict:
    """What every block of sign flips of :func:`tfce_flips` needs, as ``permuted_ols`` has it.

    The steps of nilearn's ``permuted_ols(np.ones((n, 1)), maps - chance,
    model_intercept=False, two_sided_test=False, n_jobs=1, random_state=seed,
    masker=..., tfce=True)`` before its permutations: normalised variates,
    the observed t and TFCE, and the seed of its one chunk of flips.
    """
    from nilearn.maskers import NiftiMasker
    from nilearn.mass_univariate import permuted_least_squares as ols
    from sklearn.utils import check_random_state

    masker = NiftiMasker(mask_img=mask_img).fit()
    targets = np.asfortranarray(np.asarray(maps, dtype=float)
                                - np.asarray(chance, dtype=float)[:, None])
    tested = np.ones((len(targets), 1))
    target_resid = ols._make_array_contiguous(ols.normalize_matrix_on_axis(targets).T)
    tested_resid = ols._make_array_contiguous(ols.normalize_matrix_on_axis(tested).copy())
    t_observed = ols.t_score_with_covars_and_normalized_design(tested_resid, target_resid.T,
                                                               None)
    structure = ndimage.generate_binary_structure(3, 1)
    tfce_4d = ols.calculate_tfce(masker.inverse_transform(t_observed.T).get_fdata(),
                                 bin_struct=structure, two_sided_test=False)
    tfce = ols.apply_mask(nib.Nifti1Image(tfce_4d, masker.mask_img_.affine,
                                          masker.mask_img_.header), masker.mask_img_).T
    chunk_seed = check_random_state(seed).randint(1, np.iinfo(np.int32).max - 1)
    return {"masker": masker, "tested": tested_resid, "targets": target_resid.T,
            "t": t_observed, "tfce": tfce, "chunk_seed": int(chunk_seed)}


def tfce_flips(prepared: dict, start: int, stop: int, n_permutations: int) -> dict:
    """Sign flips ``start .. stop - 1`` of nilearn's chunk, exactly as it draws them.

    nilearn multiplies the variates by fresh random signs at every flip (the
    signs compound); the signs of the flips before ``start`` are drawn from
    the chunk's seed and applied first (a product of +-1: exact), then
    nilearn's own ``_permuted_ols_on_chunk`` does ``stop - start`` flips.

    Returns
    -------
    dict
        ``ranks`` (n_voxels,): flips whose max TFCE is below each voxel's;
        ``h0`` (stop - start,): the max TFCE of each flip.
    """
    from nilearn.mass_univariate import permuted_least_squares as ols

    rng = np.random.RandomState(prepared["chunk_seed"])
    targets = prepared["targets"]
    for _ in range(start):
        targets = targets * (rng.randint(2, size=(targets.shape[0], 1)) * 2 - 1)
    parts = ols._permuted_ols_on_chunk(
        prepared["t"], prepared["tested"], targets, thread_id=1,
        masker=prepared["masker"], n_perm=n_permutations, n_perm_chunk=stop - start,
        intercept_test=True, two_sided_test=False, tfce=True,
        tfce_original_data=prepared["tfce"], random_state=rng, verbose=0)
    return {"ranks": parts[4][0], "h0": parts[5][0]}


def tfce_p_values(ranks: np.ndarray, n_permutations: int) -> np.ndarray:
    """FWE p of each voxel from the summed ranks of :func:`tfce_flips`, as nilearn's."""
    return (n_permutations + 1 - ranks) / float(1 + n_permutations)


# --- prevalence inference (Allefeld et al. 2016), minimum statistic ------------------------------


def prevalence_counts(maps: Sequence[np.ndarray], draws: np.ndarray,
                      observed_min: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Second-level permutations of the minimum statistic, for one block of draws.

    Parameters
    ----------
    maps : sequence of numpy.ndarray, shape (n_maps_s, n_voxels)
        Each subject's first-level maps, row 0 the observed labelling.
    draws : numpy.ndarray of int, shape (n_draws, n_subjects)
        Second-level permutations (rows of :func:`draw_combinations`).
    observed_min : numpy.ndarray, shape (n_voxels,)
        ``m_1``: the minimum over subjects of the observed maps.

    Returns
    -------
    counts : numpy.ndarray of int, shape (n_voxels,)
        ``#(m_j >= m_1)`` over the draws, voxel by voxel (part of Eq. 24).
    maxima : numpy.ndarray, shape (n_draws,)
        ``max_v m_j(v)`` of each draw (Eq. 25).
    """
    # The minimum of float32 accuracies is one of them: float32 holds it exactly.
    minimum = np.full((len(draws), len(observed_min)), np.inf,
                      dtype=np.result_type(*(subject_maps.dtype for subject_maps in maps)))
    for subject, subject_maps in enumerate(maps):
        np.minimum(minimum, subject_maps[draws[:, subject]], out=minimum)
    counts = (minimum >= _tie_floor(observed_min)).sum(axis=0)
    return counts, minimum.max(axis=1)


def prevalence_results(observed_min: np.ndarray, counts: np.ndarray, maxima: np.ndarray,
                       n_subjects: int, alpha: float = 0.05) -> dict[str, np.ndarray | float]:
    """p-values of the global null and the prevalence bound of every voxel.

    The draws are the second-level permutations ``j = 2 .. P2`` (the
    observed combination, ``j = 1``, is counted here), so ``P2 = 1 + len(maxima)``.

    Parameters
    ----------
    observed_min : numpy.ndarray, shape (n_voxels,)
        ``m_1``.
    counts, maxima : numpy.ndarray
        Summed and stacked :func:`prevalence_counts` of every draw.
    n_subjects : int
        ``N``.
    alpha : float
        Significance level.

    Returns
    -------
    dict
        ``p``: uncorrected p of the global null (Eq. 24); ``p_fwe``: corrected
        (Eq. 26); ``gamma``: the largest prevalence bound gamma_0 rejected at
        ``alpha``, corrected for the voxels (Eq. 22-23), NaN where even the
        global null is not rejected; ``p_majority`` and ``p_majority_fwe``:
        p-values of the majority null gamma <= 0.5 (Eq. 19, 21);
        ``gamma_max``: the largest bound the draws can give (Eq. 27).
    """
    n = int(n_subjects)
    p2 = 1 + len(maxima)
    floor = _tie_floor(np.asarray(observed_min, dtype=float))
    p_uncorrected = (1.0 + counts) / p2                                   # Eq. 24
    sorted_maxima = np.sort(maxima)
    exceed = len(sorted_maxima) - np.searchsorted(sorted_maxima, floor, side="left")
    p_fwe = (1.0 + exceed) / p2                                            # Eq. 25-26
    p_majority = ((1 - 0.5) * p_uncorrected ** (1 / n) + 0.5) ** n         # Eq. 19
    p_majority_fwe = p_fwe + (1 - p_fwe) * p_majority                      # Eq. 21
    with np.errstate(invalid="ignore", divide="ignore"):  # p_fwe = 1: alpha_c = -inf
        alpha_c = (alpha - p_fwe) / (1 - p_fwe)                            # Eq. 22
        gamma = ((np.maximum(alpha_c, 0) ** (1 / n) - p_uncorrected ** (1 / n))
                 / (1 - p_uncorrected ** (1 / n)))                         # Eq. 23
    gamma = np.where(alpha_c < p_uncorrected, np.nan, gamma)               # undefined there
    alpha_c_max = (alpha - 1 / p2) / (1 - 1 / p2)                          # Eq. 27
    gamma_max = ((alpha_c_max ** (1 / n) - (1 / p2) ** (1 / n))
                 / (1 - (1 / p2) ** (1 / n))) if alpha_c_max > 0 else float("nan")
    return {"p": p_uncorrected, "p_fwe": p_fwe, "gamma": gamma, "p_majority": p_majority,
            "p_majority_fwe": p_majority_fwe, "gamma_max": gamma_max}


def stelzer_test(observed: np.ndarray, nulls: Sequence[np.ndarray], draws: np.ndarray,
                 cluster_p: float, volume_index: np.ndarray, shape: Sequence[int],
                 connectivity: int = 6, block: int = 500) -> dict[str, np.ndarray]:
    """The whole Stelzer test in one process (the reference the Dask run must equal).

    Parameters
    ----------
    observed : numpy.ndarray, shape (n_subjects, n_voxels)
        Each subject's accuracy map.
    nulls : sequence of numpy.ndarray, shape (n_permutations_s, n_voxels)
        Each subject's permutation maps.
    draws : numpy.ndarray of int, shape (n_draws, n_subjects)
        From :func:`draw_combinations`.
    cluster_p : float
        Voxel-wise threshold.
    volume_index, shape, connectivity : see :func:`label_clusters`
    block : int
        Draws whose supra-threshold voxels are held at once (``block x
        n_voxels`` booleans; the result does not depend on it).

    Returns
    -------
    dict
        ``mean`` (n_voxels,), ``thresholds`` (n_voxels,), ``labels``
        (n_voxels,), ``p_cluster`` (n_clusters,), ``null_max`` (n_draws,).
    """
    k = n_top(cluster_p, len(draws))
    stacked, rows = stack_maps(nulls, draws)
    starts = range(0, len(draws), block)
    top = null_top(stacked, rows[:block], k)
    for start in starts[1:]:
        top = top_values(np.concatenate([top, null_top(stacked, rows[start:start + block], k)]),
                         k)
    thresholds = voxel_thresholds(top, cluster_p, len(draws))
    null_max = np.concatenate([null_max_sizes(stacked, rows[start:start + block], thresholds,
                                              volume_index, shape, connectivity)
                               for start in starts])
    mean = np.asarray(observed, dtype=np.float64).sum(axis=0) / len(observed)
    labels, n_clusters = label_clusters(supra_threshold(mean[None], thresholds)[0],
                                        volume_index, shape, connectivity)
    sizes = np.bincount(labels, minlength=n_clusters + 1)[1:]
    return {"mean": mean, "thresholds": thresholds, "labels": labels,
            "p_cluster": cluster_p_values(sizes, null_max), "null_max": null_max}
