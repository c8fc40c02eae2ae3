"""Group inference (``nidecode group --method stelzer``) on 1 and 2 workers against serial NumPy.

12 synthetic whole-brain subjects (``nidecode.synth.make_masks((40, 64, 64))``:
about 47 000 brain voxels), each with an accuracy map (a planted region in
the synthetic signal mask) and 100 permutation maps. The maps are generated at
the array level, not by running ``permute --searchlight`` (12 x 100 whole-brain
searchlights would take hours): fold-mean accuracies of 96 test scans,
binomial around 0.5 (0.7 in the region), smoothed over 3 x 3 x 3 voxels as
overlapping spheres smooth real maps, written in the layout
``permute --searchlight`` writes. Stelzer's test with 10 000 draws then runs:

- serially in this process, NumPy and SciPy alone (blocks of 500 draws: group
  means by fancy indexing, ``np.partition``, ``scipy.ndimage.label``): the
  baseline; and the engine's compiled kernels in the same serial loop
  (:func:`nidecode.inference.stelzer_test`);
- with ``nidecode.analyses.group`` on a LocalCluster of 1 and of 2 workers
  (fresh workers each; distributed's ``MemorySampler`` samples the workers'
  process memory every 0.1 s: its peak divided by the workers).

The four give identical cluster p-values (checked). Run::

    python benchmarks/bench_group.py [--subjects 12] [--draws 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from distributed.diagnostics import MemorySampler
from scipy import ndimage

from nidecode import inference
from nidecode.analyses.group import execute_group, prepare_group
from nidecode.cluster import get_client
from nidecode.outdir import inference_map_name, null_name, searchlight_name
from nidecode.synth import make_affine, make_masks

from _common import machine, save

SHAPE = (40, 64, 64)
N_TEST = 96


def rss_mib() -> float:
    """This process's resident memory now."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mib() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _maps(rng, p, n, brain):
    """``n`` smoothed accuracy maps over the brain voxels."""
    out = np.empty((n, int(brain.sum())), np.float32)
    for row in range(n):
        volume = np.zeros(SHAPE, np.float32)
        volume[brain] = rng.binomial(N_TEST, p) / N_TEST
        volume = ndimage.uniform_filter(volume, 3) / np.maximum(
            ndimage.uniform_filter(brain.astype(np.float32), 3), 1e-6)
        out[row] = volume[brain]
    return out


def write_inputs(directory: Path, n_subjects: int, n_permutations: int) -> int:
    """The layout of 'permute --searchlight' for one pair; returns the voxels per map."""
    brain, _, signal = make_masks(SHAPE)
    affine = make_affine(SHAPE)
    rng = np.random.default_rng(0)
    subjects = [f"sub{index:02d}" for index in range(n_subjects)]
    for subject in subjects:
        observed = _maps(rng, np.where(signal[brain], 0.7, 0.5), 1, brain)[0]
        null = _maps(rng, 0.5, n_permutations, brain)
        for name, values in (("", observed), ("p", (1 + (null >= observed).sum(axis=0))
                                                   / (1 + n_permutations))):
            volume = np.zeros(SHAPE, np.float32)
            volume[brain] = values
            target = directory / searchlight_name(subject, "cat", "face", name)
            target.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(volume, affine), target)
        target = directory / null_name(subject, "cat", "face", searchlight=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, null)
    pd.DataFrame({"subject": subjects, "class_a": "cat", "class_b": "face"}).to_csv(
        directory / "permutations" / "searchlight.csv", index=False)
    (directory / "run.json").write_text(json.dumps({"status": "complete", "identity": {
        "command": "permute", "radius": 5.0, "subjects": dict.fromkeys(subjects, "-")}}))
    return int(brain.sum())


def serial(directory: Path, n_draws: int, cluster_p: float, engine: bool) -> tuple:
    """Wall seconds, peak-memory growth, the p map and its voxels of a serial run.

    ``engine``: the engine's compiled kernels (:func:`nidecode.inference.stelzer_test`);
    else NumPy and SciPy alone, blocks of 500 draws: the group means by fancy
    indexing, ``np.partition`` for each voxel's threshold, ``scipy.ndimage.label``
    for every draw's largest cluster.
    """
    before = peak_rss_mib()
    started = time.perf_counter()
    run = prepare_group(directory, method="stelzer", out=directory / f"serial{engine}",
                        n_draws=n_draws, cluster_p=cluster_p)
    maps = run.pairs[0]
    nulls = [np.load(path)[:, columns] for path, columns in zip(maps.null_paths, maps.columns,
                                                                strict=True)]
    draws = run.draws[("cat", "face")]
    if engine:
        result = inference.stelzer_test(maps.observed, nulls, draws, cluster_p,
                                        maps.volume_index, run.shape)
    else:
        result = numpy_stelzer(maps.observed, nulls, draws, cluster_p, maps.volume_index,
                               run.shape)
    seconds = time.perf_counter() - started
    labels = result["labels"]
    p_map = np.where(labels > 0, np.r_[1.0, result["p_cluster"]][labels], 1.0)
    return seconds, peak_rss_mib() - before, p_map, maps.volume_index


def numpy_stelzer(observed, nulls, draws, cluster_p, volume_index, shape, block=500):
    """Stelzer's test in NumPy and SciPy, one process: the baseline."""
    k = inference.n_top(cluster_p, len(draws))
    starts = range(0, len(draws), block)
    top = np.concatenate([inference.top_values(inference.stelzer_null_means(
        nulls, draws[start:start + block]), k) for start in starts])
    thresholds = inference.voxel_thresholds(inference.top_values(top, k), cluster_p,
                                            len(draws))
    null_max = np.concatenate([inference.max_cluster_sizes(inference.supra_threshold(
        inference.stelzer_null_means(nulls, draws[start:start + block]), thresholds),
        volume_index, shape) for start in starts])
    mean = np.asarray(observed, dtype=np.float64).sum(axis=0) / len(observed)
    labels, n = inference.label_clusters(inference.supra_threshold(mean[None], thresholds)[0],
                                         volume_index, shape)
    sizes = np.bincount(labels, minlength=n + 1)[1:]
    return {"labels": labels, "p_cluster": inference.cluster_p_values(sizes, null_max)}


def on_cluster(directory: Path, workers: int, n_draws: int, cluster_p: float):
    out = directory / f"workers{workers}"
    sampler = MemorySampler()
    with get_client(workers=workers) as client:
        idle = client.run(rss_mib)
        started = time.perf_counter()
        with sampler.sample("group", client=client, measure="process", interval=0.1):
            run = prepare_group(directory, method="stelzer", out=out, n_draws=n_draws,
                                cluster_p=cluster_p)
            execute_group(run, client, progress=False)
        seconds = time.perf_counter() - started
    # The sampler sums the workers' process memory: the peak of that sum, per worker.
    peak_total = float(sampler.to_pandas()["group"].max()) / 2**20
    p_map = nib.load(out / "group" / inference_map_name("cat", "face", "stelzer", "p_fwe"))
    return seconds, sorted(idle.values()), peak_total / workers, p_map.get_fdata().ravel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--cluster-p", type=float, default=0.001)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nidecode-group-"))
    try:
        started = time.perf_counter()
        n_voxels = write_inputs(work, args.subjects, args.permutations)
        generate_s = time.perf_counter() - started
        serial_s, serial_mib, serial_p, index = serial(work, args.draws, args.cluster_p,
                                                       engine=False)
        engine_s, _, engine_p, _ = serial(work, args.draws, args.cluster_p,
                                                   engine=True)
        np.testing.assert_array_equal(engine_p, serial_p)
        figures = {
            "benchmark": f"nidecode group --method stelzer: {args.subjects} synthetic "
                         f"whole-brain subjects ({n_voxels} voxels), {args.permutations} "
                         f"permutation maps each (generated at the array level), "
                         f"{args.draws} draws, --cluster-p {args.cluster_p:g}",
            "machine": machine(),
            "generate_inputs_s": generate_s,
            "serial_numpy_s": serial_s,
            "serial_numpy_peak_growth_mib": serial_mib,
            "serial_engine_kernels_s": engine_s,
            "workers": {},
        }
        for workers in (1, 2):
            seconds, idle, peaks, p_map = on_cluster(work, workers, args.draws, args.cluster_p)
            np.testing.assert_allclose(p_map[index], serial_p, rtol=1e-6)  # identical results
            figures["workers"][str(workers)] = {
                "wall_s": seconds, "speedup_vs_serial_numpy": serial_s / seconds,
                "speedup_vs_serial_engine_kernels": engine_s / seconds,
                "idle_worker_mib": idle, "peak_mib_per_worker": peaks}
        figures["identical_p_maps"] = True
        clusters = pd.read_csv(work / "workers2" / "group" / "clusters.csv")
        figures["clusters_p_fwe_05"] = int((clusters["p_fwe"] <= 0.05).sum())
        print(json.dumps({key: value for key, value in figures.items() if key != "machine"},
                         indent=2))
        print(f"saved {save('group', figures)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
