"""Group inference on searchlight maps on a Dask cluster: Stelzer, TFCE, prevalence.

Reads the output of ``nidecode permute --searchlight`` (or, for TFCE, of
``nidecode searchlight``) and tests, per category pair, where the group
decodes above chance, corrected for the whole map (:mod:`nidecode.inference`):

- ``stelzer``: draws of one permutation map per subject give the null of the
  group mean map; a voxel-wise threshold at ``cluster_p`` from each voxel's
  null; the null of the largest cluster; cluster-level family-wise p-values.
- ``tfce``: sign flips of accuracy minus chance with threshold-free cluster
  enhancement (nilearn's ``permuted_ols``), family-wise p from the max-TFCE null.
- ``prevalence``: Allefeld et al. (2016), the minimum statistic over subjects.

The draws are fixed by the seed before any task runs; each task does a block
of them and is saved as it arrives (``OUT/group/parts/``), so the result is
the same however the draws are split, and a killed run resumes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dask.config
import nibabel as nib
import numpy as np
import pandas as pd
from distributed import Client

from nidecode import fs, inference
from nidecode._validation import check_choice, check_float, check_int, check_seed
from nidecode.cluster import describe
from nidecode.errors import InputError, OutputDirError
from nidecode.outdir import (
    GROUP_CLUSTERS,
    GROUP_DIRECTORY,
    MANIFEST,
    OutputDir,
    cross_searchlight_name,
    inference_map_name,
    null_name,
    searchlight_name,
    sphere_size_name,
)
from nidecode.run import run_tasks, versions

METHODS = ("stelzer", "tfce", "prevalence")
N_DRAWS = 10_000
DRAWS_PER_TASK = 1000
ALPHA = 0.05
CLUSTER_P = 0.001


@dataclass(frozen=True)
class PairMaps:
    """One pair's maps of every subject, on one grid, at the voxels all subjects test."""

    class_a: str
    class_b: str
    subjects: tuple[str, ...]
    observed: np.ndarray  # (n_subjects, n_voxels) accuracy
    chance: np.ndarray  # (n_subjects,)
    null_paths: tuple[str, ...] | None  # permutations/null/*_searchlight.npy per subject
    columns: tuple[np.ndarray, ...]  # each subject's columns of its null for the voxels
    volume_index: np.ndarray  # (n_voxels,) flat C-order index in the grid


@dataclass
class GroupRun:
    """A checked, planned group inference whose output directory is claimed."""

    source: Path
    output: OutputDir
    method: str
    parameters: dict
    digest: str  # of the method's parameters: the saved parts' keys start with it
    shape: tuple[int, int, int]
    affine: np.ndarray
    pairs: list[PairMaps]
    draws: dict[tuple[str, str], np.ndarray]  # per pair (stelzer, prevalence)
    started: float
    draws_per_task: int
    background: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GroupPart:
    """A saved block of a group run: named arrays under a key."""

    key: tuple[str, ...]
    arrays: dict[str, np.ndarray]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays, for ``numpy.savez``."""
        return self.arrays

    @classmethod
    def from_arrays(cls, key: tuple[str, ...], arrays) -> GroupPart:
        """Inverse of :meth:`to_arrays`."""
        return cls(key, {name: np.asarray(arrays[name]) for name in arrays if name != "key"})


# --- prepare --------------------------------------------------------------------------------


def prepare_group(directory: str | Path, *, method: str, out: str | Path | None = None,
                  n_draws: int = N_DRAWS, cluster_p: float = CLUSTER_P, seed: int = 0,
                  connectivity: int = 6, alpha: float = ALPHA,
                  draws_per_task: int | None = None, overwrite: bool = False) -> GroupRun:
    """Check the inputs, draw the combinations and claim ``OUT/group`` (no cluster needed).

    Parameters are those of :func:`group`.
    """
    started = time.perf_counter()
    method = check_choice(method, "method", "group", METHODS)
    n_draws = check_int(n_draws, "n_draws", "group", minimum=1, maximum=10**7)
    cluster_p = check_float(cluster_p, "cluster_p", "group")
    if not 0 < cluster_p < 1:
        raise InputError(f"--cluster-p {cluster_p:g}: must be in (0, 1), e.g. 0.001")
    alpha = check_float(alpha, "alpha", "group")
    if not 0 < alpha < 1:
        raise InputError(f"--alpha {alpha:g}: must be in (0, 1), e.g. 0.05")
    seed = check_seed(seed, "group")
    connectivity = check_connectivity(connectivity)
    if method == "tfce" and connectivity != 6:
        raise InputError(f"--connectivity {connectivity}: TFCE uses nilearn's face "
                         f"connectivity (6); drop --connectivity for --method tfce")
    if draws_per_task is None:
        draws_per_task = int(dask.config.get("nidecode.draws-per-task", DRAWS_PER_TASK))
    draws_per_task = check_int(draws_per_task, "draws_per_task", "group", minimum=1)
    for where in (directory, out):
        if where is not None and fs.is_url(where):
            raise InputError(f"{where}: nidecode group reads and writes local directories "
                             f"(or a shared file system), not URLs yet; copy the run's "
                             f"output there first (e.g. 'aws s3 sync')")
    source = Path(directory)
    manifest = read_source(source, method)
    shape, affine, pairs, notes = read_pairs(source, manifest)
    draws = {}
    if method != "tfce":
        draws = {(maps.class_a, maps.class_b): _draws(maps, method, n_draws, seed)
                 for maps in pairs}
        if method == "stelzer":
            _check_resolution(cluster_p, draws)
    parameters = {"method": method, "n_draws": n_draws, "seed": seed, "alpha": alpha,
                  **({"cluster_p": cluster_p, "connectivity": connectivity}
                     if method == "stelzer" else {})}
    digest = hashlib.sha1(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:12]
    output = OutputDir(Path(source if out is None else out) / GROUP_DIRECTORY)
    identity = {"command": "group", "source": str(source.resolve()),
                "source_identity": hashlib.sha1(json.dumps(
                    manifest["identity"], sort_keys=True, default=str).encode()).hexdigest()}
    previous = _previous_methods(output, identity)
    output.start(identity, overwrite=overwrite, versions=versions(), methods=previous)
    background = manifest.get("background")
    return GroupRun(source, output, method, parameters, digest, shape, affine, pairs, draws,
                    started, draws_per_task,
                    str(source / background) if background else None, notes)


def check_connectivity(connectivity) -> int:
    """6, 18 or 26 neighbours (faces; and edges; and corners)."""
    if isinstance(connectivity, bool) or connectivity not in inference.CONNECTIVITY:
        raise InputError(f"--connectivity {connectivity}: must be 6 (faces), 18 (and edges) "
                         f"or 26 (and corners)")
    return int(connectivity)


def read_source(source: Path, method: str) -> dict:
    """The ``run.json`` of a complete searchlight or searchlight permutation run."""
    path = source / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        raise InputError(f"{source}: no readable {MANIFEST}; give the output directory of "
                         f"'nidecode permute --searchlight' (or 'nidecode searchlight' for "
                         f"--method tfce)") from None
    identity = manifest.get("identity", {}) if isinstance(manifest, dict) else {}
    command = identity.get("command")
    searchlight = command == "searchlight" or (command == "permute"
                                               and identity.get("radius") is not None)
    if not searchlight:
        raise InputError(f"{source}: holds no searchlight maps ({command or 'unknown'} run); "
                         f"run 'nidecode permute --searchlight' first")
    if manifest.get("status") != "complete":
        raise InputError(f"{source}: the {command} run is not complete; run the same "
                         f"command again to finish it")
    if method != "tfce" and command != "permute":
        raise InputError(f"{source}: searchlight maps without permutation maps; --method "
                         f"{method} needs them: run 'nidecode permute --searchlight' first")
    return manifest


def read_pairs(source: Path, manifest: dict):
    """Every pair's maps on the common grid; pairs of fewer than 2 subjects are left out.

    Returns
    -------
    shape, affine, pairs, notes
    """
    permuted = manifest["identity"]["command"] == "permute"
    table = _read_table(source / ("permutations/searchlight.csv" if permuted
                                  else "searchlight.csv"))
    by_pair: dict[tuple[str, str], list[str]] = {}
    for subject, class_a, class_b in table[["subject", "class_a", "class_b"]].itertuples(
            index=False):
        by_pair.setdefault((str(class_a), str(class_b)), []).append(str(subject))
    notes = [f"{a!r} vs {b!r}: one subject ({subjects[0]!r}); no group test"
             for (a, b), subjects in by_pair.items() if len(subjects) < 2]
    kept = {pair: subjects for pair, subjects in by_pair.items() if len(subjects) >= 2}
    if not kept:
        raise InputError(f"{source}: fewer than 2 subjects for every pair; group inference "
                         f"needs at least 2 subjects' maps of one pair")
    grid: tuple | None = None
    pairs = []
    for (class_a, class_b), subjects in sorted(kept.items()):
        images = {subject: _load(source / _map_name(table, subject, class_a, class_b))
                  for subject in subjects}
        for subject, image in images.items():
            grid = _check_grid(source, grid, subject, image)
        pairs.append(_pair_maps(source, table, permuted, class_a, class_b, images))
    return grid[1], grid[2], pairs, notes


def _map_name(table: pd.DataFrame, subject: str, class_a: str, class_b: str,
              statistic: str = "") -> str:
    """A subject x pair's map; a cross-decoding pair's (``test_a, test_b`` in the table,
    other than the pair) is named after both pairs."""
    if "test_a" in table:
        row = table[(table["subject"] == subject) & (table["class_a"] == class_a)
                    & (table["class_b"] == class_b)].iloc[0]
        test_pair = (str(row["test_a"]), str(row["test_b"]))
        if test_pair != (class_a, class_b):
            return cross_searchlight_name(subject, class_a, class_b, *test_pair, statistic)
    return searchlight_name(subject, class_a, class_b, statistic)


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"subject": str, "class_a": str, "class_b": str,
                                        "test_a": str, "test_b": str},
                           keep_default_na=False)
    except (OSError, ValueError):
        raise InputError(f"{path}: missing or unreadable; run the searchlight (or "
                         f"'nidecode permute --searchlight') again into this directory") from None


def _load(path: Path) -> nib.Nifti1Image:
    try:
        image = nib.load(path)
        image.get_fdata()
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"{path}: missing or unreadable map ({type(error).__name__}); run the "
                         f"searchlight again into this directory") from None
    return image


def _check_grid(source: Path, grid: tuple | None, subject: str,
                image: nib.Nifti1Image) -> tuple:
    shape, affine = tuple(image.shape[:3]), image.affine
    if grid is None:
        return subject, shape, affine
    if shape != grid[1] or not np.allclose(affine, grid[2], atol=1e-4):
        raise InputError(f"{source}: subjects {grid[0]!r} and {subject!r} are on different "
                         f"grids (shape {grid[1]} vs {shape}, or their affines); group "
                         f"inference needs one grid: ingest the subjects in one space")
    return grid


def _pair_maps(source: Path, table: pd.DataFrame, permuted: bool, class_a: str, class_b: str,
               images: dict[str, nib.Nifti1Image]) -> PairMaps:
    subjects = tuple(images)
    # The voxels each subject tested: where its p map is defined (p >= 1 / (1 + N) > 0)
    # or, for a searchlight alone, where its spheres are (size > 0).
    tested = {subject: np.flatnonzero(np.asarray(_load(
        source / (_map_name(table, subject, class_a, class_b, "p") if permuted
                  else sphere_size_name(subject))).dataobj).ravel() > 0)
        for subject in subjects}
    common = tested[subjects[0]]
    for subject in subjects[1:]:
        common = np.intersect1d(common, tested[subject])
    if not len(common):
        raise InputError(f"{source}: {class_a!r} vs {class_b!r}: no voxel is tested in every "
                         f"subject; group inference needs overlapping maps")
    observed = np.stack([np.asarray(images[subject].dataobj, dtype=np.float32).ravel()[common]
                         for subject in subjects])
    columns = tuple(np.searchsorted(tested[subject], common) for subject in subjects)
    null_paths = None
    if permuted:
        null_paths = tuple(str(source / null_name(subject, class_a, class_b, searchlight=True))
                           for subject in subjects)
        for subject, path, own in zip(subjects, null_paths, tested.values(), strict=True):
            _check_null(source, path, subject, len(own))
    chance = _chance(table, permuted, class_a, class_b, subjects, null_paths, columns)
    return PairMaps(class_a, class_b, subjects, observed, chance, null_paths, columns, common)


def _check_null(source: Path, path: str, subject: str, n_voxels: int) -> None:
    try:
        null = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        raise InputError(f"{path}: missing or unreadable permutation maps of subject "
                         f"{subject!r}; run 'nidecode permute --searchlight' again into "
                         f"{source}") from None
    if null.ndim != 2 or null.shape[1] != n_voxels or null.shape[0] < 1:
        raise InputError(f"{path}: {null.shape} permutation maps, expected (n, {n_voxels}) for "
                         f"subject {subject!r}; run 'nidecode permute --searchlight' again")


def _chance(table: pd.DataFrame, permuted: bool, class_a: str, class_b: str,
            subjects: Sequence[str], null_paths, columns) -> np.ndarray:
    """Each subject's chance: searchlight.csv's (the fold mean of the majority-class
    rate) or, after permutations, the mean of its permutation maps."""
    if not permuted and "chance" in table:
        rows = table[(table["class_a"] == class_a) & (table["class_b"] == class_b)]
        by_subject = dict(zip(rows["subject"], rows["chance"].astype(float), strict=True))
        return np.array([by_subject[subject] for subject in subjects])
    if null_paths is None:
        return np.full(len(subjects), 0.5)
    return np.array([float(np.load(path, mmap_mode="r")[:, own].mean(dtype=np.float64))
                     for path, own in zip(null_paths, columns, strict=True)])


def _draws(maps: PairMaps, method: str, n_draws: int, seed: int) -> np.ndarray:
    n_null = [int(np.load(path, mmap_mode="r").shape[0]) for path in maps.null_paths]
    if method == "stelzer":
        return inference.draw_combinations(n_null, n_draws, seed)
    # Prevalence: map 0 of a subject is its observed map; combination 0 is the observed one.
    return inference.draw_combinations([n + 1 for n in n_null], n_draws, seed, skip_first=True)


def _check_resolution(cluster_p: float, draws: dict) -> None:
    fewest = min(len(block) for block in draws.values())
    if inference.n_top(cluster_p, fewest) == 0:
        raise InputError(f"--cluster-p {cluster_p:g}: {fewest} draws cannot give a voxel "
                         f"p <= {cluster_p:g} (the smallest is 1 / (1 + draws)); raise "
                         f"--n-draws to at least {int(np.ceil(1 / cluster_p))} or --cluster-p")


def _previous_methods(output: OutputDir, identity: dict) -> dict:
    """What earlier runs of other methods from the same inputs recorded (kept in run.json)."""
    try:
        manifest = output.read_manifest() or {}
    except OutputDirError:  # start() words the problem with this directory
        return {}
    methods = manifest.get("methods", {})
    same = manifest.get("identity") == identity
    return methods if same and isinstance(methods, dict) else {}


# --- tasks (run on the workers) ----------------------------------------------------------------


def _subject_rows(null_path: str, columns: np.ndarray, wanted: np.ndarray,
                  observed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The maps a block of draws uses, read once, and the draws re-indexed into them.

    With ``observed``, map 0 is the observed map and map ``i`` row ``i - 1`` of the null.
    """
    rows, local = np.unique(wanted, return_inverse=True)
    null = np.load(null_path, mmap_mode="r")
    if observed is None:
        return np.asarray(null[rows][:, columns]), local
    block = np.empty((len(rows), len(columns)), dtype=null.dtype)
    for position, row in enumerate(rows):
        block[position] = observed if row == 0 else null[row - 1][columns]
    return block, local


# A worker keeps the permutation maps of the last pair it read, stacked, when they fit
# in CACHE_BYTES: its next blocks of draws of that pair read nothing.
CACHE_BYTES = 2**30
_CACHE: dict = {}


def _stacked(null_paths: Sequence[str], columns: Sequence[np.ndarray],
             draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The maps a block of draws uses, of every subject in one array, and its rows."""
    key = (tuple(null_paths), tuple(hashlib.sha1(own.tobytes()).hexdigest() for own in columns))
    if key in _CACHE:
        stacked, offsets = _CACHE[key]
        return stacked, np.ascontiguousarray(draws + offsets[None, :], dtype=np.int64)
    nulls = [np.load(path, mmap_mode="r") for path in null_paths]
    if sum(len(null) * len(own) * 4 for null, own in zip(nulls, columns, strict=True)) \
            <= CACHE_BYTES:
        stacked, _ = inference.stack_maps([_columns(null, own) for null, own in
                                           zip(nulls, columns, strict=True)], draws[:0])
        offsets = np.cumsum([0] + [len(null) for null in nulls[:-1]])
        _CACHE.clear()
        _CACHE[key] = stacked, offsets
        return _stacked(null_paths, columns, draws)
    blocks, local = zip(*(_subject_rows(path, own, draws[:, subject])
                          for subject, (path, own) in enumerate(zip(null_paths, columns,
                                                                    strict=True))), strict=True)
    return inference.stack_maps(blocks, np.stack(local, axis=1))


def _columns(null: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The null's columns ``columns`` (all of them: no copy of a copy)."""
    if len(columns) == null.shape[1] and (columns == np.arange(len(columns))).all():
        return np.asarray(null)
    return np.asarray(null[:, columns])


def stelzer_top_task(key: tuple[str, ...], null_paths: Sequence[str],
                     columns: Sequence[np.ndarray], draws: np.ndarray, k: int) -> GroupPart:
    """The ``k`` largest null group means of each voxel over a block of draws."""
    return GroupPart(key, {"top": inference.null_top(*_stacked(null_paths, columns, draws), k)})


def stelzer_max_task(key: tuple[str, ...], null_paths: Sequence[str],
                     columns: Sequence[np.ndarray], draws: np.ndarray,
                     thresholds: np.ndarray, volume_index: np.ndarray,
                     shape: tuple[int, int, int], connectivity: int) -> GroupPart:
    """The largest supra-threshold cluster of each null group mean of a block of draws."""
    sizes = inference.null_max_sizes(*_stacked(null_paths, columns, draws), thresholds,
                                     volume_index, shape, connectivity)
    return GroupPart(key, {"max_size": sizes})


def prevalence_task(key: tuple[str, ...], null_paths: Sequence[str],
                    columns: Sequence[np.ndarray], draws: np.ndarray,
                    observed: np.ndarray) -> GroupPart:
    """Counts and maxima of the minimum statistic over a block of second-level draws."""
    blocks, local = zip(*(_subject_rows(path, own, draws[:, subject], observed[subject])
                          for subject, (path, own) in enumerate(zip(null_paths, columns,
                                                                    strict=True))), strict=True)
    counts, maxima = inference.prevalence_counts(blocks, np.stack(local, axis=1),
                                                 observed.min(axis=0))
    return GroupPart(key, {"counts": counts, "maxima": maxima})


def tfce_task(key: tuple[str, ...], prepared: dict, start: int, stop: int,
              n_permutations: int) -> GroupPart:
    """Sign flips ``start .. stop - 1`` of a pair's TFCE test, as nilearn draws them."""
    return GroupPart(key, inference.tfce_flips(prepared, start, stop, n_permutations))


# --- execute --------------------------------------------------------------------------------


def execute_group(run: GroupRun, client: Client, *, progress: bool = True) -> pd.DataFrame:
    """Compute the blocks the output lacks, then write maps, clusters and ``run.json``.

    Returns
    -------
    pandas.DataFrame
        One row per cluster (``stelzer``, ``tfce``) or per pair (``prevalence``).
    """
    submitted = time.perf_counter()
    execute = {"stelzer": _stelzer, "tfce": _tfce, "prevalence": _prevalence}[run.method]
    rows = _drive(run, client, [execute(run, client, maps) for maps in run.pairs], progress)
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    if run.method != "prevalence":
        _write_clusters(run, table)
    methods = {**run.output.manifest.get("methods", {}), run.method: {
        **run.parameters, "draws_per_task": run.draws_per_task,
        "pairs": [[maps.class_a, maps.class_b] for maps in run.pairs],
        "subjects": {f"{maps.class_a}_vs_{maps.class_b}": list(maps.subjects)
                     for maps in run.pairs},
        "n_draws_done": {f"{a}_vs_{b}": len(draws) for (a, b), draws in run.draws.items()},
        "compute_s": time.perf_counter() - submitted}}
    run.output.write_manifest({
        "status": "complete", "identity": run.output.manifest["identity"],
        "versions": versions(), "methods": methods, "cluster": describe(client),
        "background": run.background, "notes": run.notes})
    return table


def _blocks(run: GroupRun, maps: PairMaps, phase: str) -> list[tuple[tuple[str, ...], slice]]:
    draws = run.draws[(maps.class_a, maps.class_b)]
    return [((run.method, run.digest, maps.class_a, maps.class_b, phase,
              f"{start:09d}-{min(start + run.draws_per_task, len(draws)):09d}"),
             slice(start, start + run.draws_per_task))
            for start in range(0, len(draws), run.draws_per_task)]


def _drive(run: GroupRun, client: Client, pairs: list, progress: bool) -> list:
    """Run every pair's phases, the tasks of all pairs of a phase at once.

    Each pair is a generator that yields the blocks of its next phase
    (``(key, submit)`` pairs), receives their parts in that order, and returns
    its table. What an interrupted run saved is read once; new parts are kept
    as they arrive and dropped once used.
    """
    saved = {key: part for key, part in run.output.load_parts(GroupPart).items()
             if key[:2] == (run.method, run.digest)}

    def keep(part: GroupPart) -> None:
        run.output.save_part(part)
        saved[part.key] = part

    tables: list = [None] * len(pairs)
    requests = {index: next(pair) for index, pair in enumerate(pairs)}
    while requests:
        blocks = [block for phase in requests.values() for block in phase]
        futures = [submit() for key, submit in blocks if key not in saved]
        run_tasks(client, futures, on_result=keep, count=lambda part: 1, total=len(blocks),
                  initial=len(blocks) - len(futures), progress=progress, unit="block")
        following = {}
        for index, phase in requests.items():
            try:
                following[index] = pairs[index].send([saved.pop(key) for key, _ in phase])
            except StopIteration as done:
                tables[index] = done.value
        requests = following
    return tables


def _phase(client: Client, run: GroupRun, maps: PairMaps, phase: str, task, *extra) -> list:
    """The blocks of draws of one phase of a pair: ``(key, submit)``."""
    draws = run.draws[(maps.class_a, maps.class_b)]
    return [(key, functools.partial(client.submit, task, key, maps.null_paths, maps.columns,
                                    draws[where], *extra, key=_dask_key(key)))
            for key, where in _blocks(run, maps, phase)]


def _stelzer(run: GroupRun, client: Client, maps: PairMaps):
    """A pair's Stelzer test: each voxel's top null means, then each draw's largest cluster."""
    draws = run.draws[(maps.class_a, maps.class_b)]
    k = inference.n_top(run.parameters["cluster_p"], len(draws))
    tops = yield _phase(client, run, maps, "top", stelzer_top_task, k)
    top = tops[0].arrays["top"]
    for part in tops[1:]:  # merged one block at a time: client memory of two blocks' tops
        top = inference.top_values(np.concatenate([top, part.arrays["top"]]), k)
    thresholds = inference.voxel_thresholds(top, run.parameters["cluster_p"], len(draws))
    maxima = yield _phase(client, run, maps, "max", stelzer_max_task, thresholds,
                          maps.volume_index, run.shape, run.parameters["connectivity"])
    null_max = np.concatenate([part.arrays["max_size"] for part in maxima])
    mean = maps.observed.astype(np.float64).sum(axis=0) / len(maps.observed)
    return stelzer_clusters(run, maps, mean, thresholds, null_max)


def stelzer_clusters(run: GroupRun, maps: PairMaps, mean: np.ndarray, thresholds: np.ndarray,
                     null_max: np.ndarray) -> pd.DataFrame:
    """Label the observed mean map's clusters, write its maps; the cluster rows."""
    supra = inference.supra_threshold(mean[None], thresholds)[0]
    labels, n_clusters = inference.label_clusters(supra, maps.volume_index, run.shape,
                                                  run.parameters["connectivity"])
    sizes = np.bincount(labels, minlength=n_clusters + 1)[1:]
    p_cluster = inference.cluster_p_values(sizes, null_max)
    p_voxel = np.where(labels > 0, np.r_[1.0, p_cluster][labels], 1.0)
    _write_maps(run, maps, {"mean": mean, "p_fwe": p_voxel})
    return _with_pair(run, maps, inference.cluster_table(
        labels, mean, p_cluster, maps.volume_index, run.shape, run.affine))


def _tfce(run: GroupRun, client: Client, maps: PairMaps):
    """A pair's TFCE test: the observed TFCE here, blocks of nilearn's sign flips as tasks."""
    mask = np.zeros(run.shape, dtype=np.uint8)
    mask.flat[maps.volume_index] = 1
    prepared = inference.tfce_prepare(maps.observed, maps.chance,
                                      nib.Nifti1Image(mask, run.affine),
                                      seed=run.parameters["seed"])
    n_flips, step = run.parameters["n_draws"], run.draws_per_task
    blocks = []
    for start in range(0, n_flips, step):
        stop = min(start + step, n_flips)
        key = (run.method, run.digest, maps.class_a, maps.class_b, "flips",
               f"{start:09d}-{stop:09d}")
        blocks.append((key, functools.partial(client.submit, tfce_task, key, prepared, start,
                                              stop, n_flips, key=_dask_key(key))))
    parts = yield blocks
    result = {"tfce": prepared["tfce"][:, 0],
              "p_fwe": inference.tfce_p_values(np.sum([part.arrays["ranks"]
                                                       for part in parts], axis=0), n_flips)}
    _write_maps(run, maps, {"tfce": result["tfce"], "p_fwe": result["p_fwe"]})
    significant = result["p_fwe"] <= run.parameters["alpha"]
    labels, n_clusters = inference.label_clusters(significant, maps.volume_index, run.shape, 6)
    p_cluster = np.array([result["p_fwe"][labels == label].min()
                          for label in range(1, n_clusters + 1)])
    return _with_pair(run, maps, inference.cluster_table(
        labels, result["tfce"], p_cluster, maps.volume_index, run.shape, run.affine))


def _prevalence(run: GroupRun, client: Client, maps: PairMaps):
    """A pair's prevalence inference: one phase of second-level permutations."""
    parts = yield _phase(client, run, maps, "min", prevalence_task, maps.observed)
    counts = np.sum([part.arrays["counts"] for part in parts], axis=0)
    maxima = np.concatenate([part.arrays["maxima"] for part in parts])
    observed_min = maps.observed.min(axis=0)
    results = inference.prevalence_results(observed_min, counts, maxima, len(maps.subjects),
                                           run.parameters["alpha"])
    gamma = np.nan_to_num(results["gamma"], nan=0.0)
    _write_maps(run, maps, {"gamma": gamma, "p": results["p"], "p_fwe": results["p_fwe"]})
    return pd.DataFrame([{
        "method": run.method, "class_a": maps.class_a, "class_b": maps.class_b,
        "n_subjects": len(maps.subjects), "n_voxels": len(observed_min),
        "n_p_fwe_05": int((results["p_fwe"] <= run.parameters["alpha"]).sum()),
        "max_gamma": float(np.nanmax(results["gamma"], initial=0.0)),
        "gamma_max_possible": results["gamma_max"]}])


def _write_maps(run: GroupRun, maps: PairMaps, values: dict[str, np.ndarray]) -> None:
    """Each map on the grid; p-values are 1 outside the voxels tested (never significant)."""
    for statistic, data in values.items():
        volume = np.full(int(np.prod(run.shape)), 1.0 if statistic.startswith("p")
                         else 0.0, dtype=np.float32)
        volume[maps.volume_index] = data
        run.output.write_image(
            inference_map_name(maps.class_a, maps.class_b, run.method, statistic),
            nib.Nifti1Image(volume.reshape(run.shape), run.affine))


def _with_pair(run: GroupRun, maps: PairMaps, table: pd.DataFrame) -> pd.DataFrame:
    table.insert(0, "class_b", maps.class_b)
    table.insert(0, "class_a", maps.class_a)
    table.insert(0, "method", run.method)
    return table


def _write_clusters(run: GroupRun, table: pd.DataFrame) -> None:
    """``clusters.csv``: this method's rows replace its earlier ones; other methods' stay."""
    path = run.output.path / GROUP_CLUSTERS
    if path.exists():
        earlier = pd.read_csv(path, dtype={"method": str, "class_a": str, "class_b": str},
                              keep_default_na=False)
        table = pd.concat([earlier[earlier["method"] != run.method], table], ignore_index=True)
    run.output.write_table(GROUP_CLUSTERS, table)


def _dask_key(key: tuple[str, ...]) -> str:
    return "group-" + hashlib.sha1("\0".join(key).encode()).hexdigest()[:20]


def group(directory: str | Path, client: Client, *, method: str,
          out: str | Path | None = None, n_draws: int = N_DRAWS,
          cluster_p: float = CLUSTER_P, seed: int = 0, connectivity: int = 6,
          alpha: float = ALPHA, draws_per_task: int | None = None,
          overwrite: bool = False, progress: bool = True) -> pd.DataFrame:
    """Group inference on the searchlight maps of a directory, corrected for the whole map.

    Parameters
    ----------
    directory : str or Path
        Output of ``nidecode permute --searchlight`` (``stelzer``,
        ``prevalence``, ``tfce``) or of ``nidecode searchlight`` (``tfce``).
        Every pair with at least 2 subjects on one grid is tested, at the
        voxels every subject tested.
    client : distributed.Client
    method : {"stelzer", "tfce", "prevalence"}
        ``stelzer``: Stelzer et al. (2013): ``n_draws`` draws of one
        permutation map per subject (distinct combinations; all of them if
        there are fewer) give the null of the mean accuracy map; a voxel is
        above threshold when its p in that null is at most ``cluster_p``; a
        cluster's family-wise p compares its size with the null of the
        largest cluster. ``tfce``: nilearn's ``permuted_ols(tfce=True)``,
        ``n_draws`` sign flips of accuracy minus each subject's chance
        (``searchlight.csv``'s, or the mean of its permutation maps),
        one-sided; p from the max-TFCE null; the flips are nilearn's, in its
        order, cut into tasks (:func:`nidecode.inference.tfce_flips`).
        ``prevalence``: Allefeld et al. (2016), the minimum accuracy over
        subjects, ``n_draws`` second-level permutations: the global null's p
        (uncorrected and family-wise) and the largest prevalence bound
        gamma_0 rejected at ``alpha``.
    out : str or Path, optional
        Results go to ``out/group/`` (default ``directory/group/``):
        ``{a}_vs_{b}_{method}_p_fwe.nii.gz``, the statistic map
        (``_mean``: mean accuracy; ``_tfce``; ``_gamma``: the prevalence
        bound, 0 where the global null is not rejected, and ``_p``),
        ``clusters.csv`` (stelzer, tfce: ``method, class_a, class_b, cluster,
        size_voxels, size_mm3, peak_x_mm, peak_y_mm, peak_z_mm,
        peak_statistic, p_fwe``; a TFCE cluster: voxels with p_fwe <= alpha,
        its p the smallest) and ``run.json``. p maps are 1 outside the voxels
        tested. Each method's files are kept when another method runs.
    n_draws : int
        Draws (stelzer, prevalence) or sign flips (tfce); default 10 000.
    cluster_p : float
        Voxel-wise threshold of ``stelzer``, in (0, 1).
    seed : int
        Seed of the draws (and of nilearn's flips).
    connectivity : {6, 18, 26}
        Neighbours that join a cluster (tfce: 6 only, as nilearn's).
    alpha : float
        Level of the TFCE clusters and of the prevalence bound.
    draws_per_task : int, optional
        Draws (or TFCE sign flips) per Dask task (default
        ``nidecode.draws-per-task``, 1000); the results do not depend on it.
        A worker keeps the permutation maps of the pair it works on in memory
        when they take at most :data:`CACHE_BYTES` (1 GiB), else reads the
        rows each block needs.
    overwrite : bool
        Replace a group run made from other inputs in ``out/group``.
    progress : bool
        Progress bar of the blocks.

    Returns
    -------
    pandas.DataFrame
        The clusters (stelzer, tfce) or one row per pair (prevalence).
    """
    run = prepare_group(directory, method=method, out=out, n_draws=n_draws,
                        cluster_p=cluster_p, seed=seed, connectivity=connectivity,
                        alpha=alpha, draws_per_task=draws_per_task, overwrite=overwrite)
    return execute_group(run, client, progress=progress)
