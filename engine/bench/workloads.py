"""The three workloads a benchmark times: decode, searchlight and ingest, each with its baseline.

A workload prepares its inputs once (stores of n subjects, outside every
timing), runs the engine's own entry points on a client for n subjects
(what a user runs), names a small warm-up task, and runs its baseline
(:mod:`nidecode.bench.baselines`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from distributed import Client

from nidecode import store
from nidecode.analyses._prepare import subject_geometry
from nidecode.analyses.decode import execute_decode, prepare_decode
from nidecode.analyses.plan import batch_jobs, plan_decode
from nidecode.analyses.searchlight import execute_searchlight, prepare_searchlight
from nidecode.analyses.tasks import decode_pairs, searchlight_spheres
from nidecode.bench import baselines
from nidecode.bench.data import (
    Dataset,
    centre_indices,
    evenly_spaced,
    make_store,
    store_size,
    write_centres_mask,
)
from nidecode.bench.settings import BenchSettings
from nidecode.ingest import find_subjects, ingest_subject
from nidecode.run import ingest_sources_on_cluster
from nidecode.spheres import batch_voxel_block


@dataclass(frozen=True)
class EngineRun:
    """What one engine run did: units of work, Dask tasks, and the client's own time.

    ``client_s`` is the time the client works while the workers wait:
    planning, and writing the outputs once every task is done.
    """

    units: int
    tasks: int
    client_s: float


class Decode:
    """Every category pair of every subject, leave-one-run-out, ``SVC(kernel="linear")``."""

    name = "decode"
    unit = "fit"
    baseline_label = "serial scikit-learn loop"
    baseline_name = "serial scikit-learn loop: cross_val_score(SVC(kernel='linear'), " \
        "cv=LeaveOneGroupOut()) per subject and pair"

    def __init__(self, settings: BenchSettings, dataset: Dataset, work: Path):
        self.settings, self.dataset, self.work = settings, dataset, work
        self.fits_per_task = settings.fits_per_task
        self.counts: list[int] = []

    def store(self, n_subjects: int) -> Path:
        return self.work / f"decode-{n_subjects}.zarr"

    def prepare(self, counts: Sequence[int]) -> dict:
        self.counts = sorted(counts)
        for count in counts:
            make_store(self.dataset, count, self.dataset.roi_mask, self.store(count))
        first = self.store(self.counts[0])
        jobs = plan_decode([store.read_design(first, store.list_subjects(first)[0])], "logo")
        fits_per_subject = sum(job.n_folds for job in jobs)
        if self.fits_per_task is None:  # one task per subject: each subject read once
            self.fits_per_task = fits_per_subject
        return {count: {**store_size(self.store(count)), "fits": count * fits_per_subject,
                        "tasks": count * len(batch_jobs(jobs, self.fits_per_task)),
                        "fits_per_task": self.fits_per_task} for count in counts}

    def warm_task(self, index: int) -> tuple[Callable, tuple]:
        path = self.store(self.counts[0])
        design = store.read_design(path, store.list_subjects(path)[0])
        job = plan_decode([design], "logo", self.settings.pair)[0]
        return decode_pairs, (str(path.resolve()), (job,), design.checksum, "logo", 1.0)

    def run(self, client: Client, n_subjects: int, out: Path) -> EngineRun:
        run = prepare_decode(self.store(n_subjects), out, overwrite=True)
        execute_decode(run, client, progress=False, fits_per_task=self.fits_per_task)
        manifest = json.loads((out / "run.json").read_text())
        timings, counts = manifest["timings"], manifest["counts"]
        return EngineRun(counts["fits"], counts["tasks"],
                         timings["prepare_s"] + timings["write_s"])

    def baseline(self, n_subjects: int) -> int:
        return baselines.serial_decode(self.store(n_subjects))


class Searchlight:
    """One category pair, spheres around every (or ``centres``) brain voxel, batched solver."""

    name = "searchlight"
    unit = "sphere"
    baseline_label = "nilearn SearchLight"
    baseline_name = "nilearn SearchLight(estimator=SVC(kernel='linear'), n_jobs=1) on a " \
        "reduced process mask"

    def __init__(self, settings: BenchSettings, dataset: Dataset, work: Path):
        self.settings, self.dataset, self.work = settings, dataset, work
        self.process_mask: Path | None = None
        self.counts: list[int] = []

    def store(self, n_subjects: int) -> Path:
        return self.work / f"searchlight-{n_subjects}.zarr"

    def prepare(self, counts: Sequence[int]) -> dict:
        self.counts = sorted(counts)
        for count in counts:
            make_store(self.dataset, count, self.dataset.brain_mask, self.store(count))
        first = self.store(self.counts[0])
        subject = store.list_subjects(first)[0]
        mask, affine = store.read_geometry(first, subject)
        if self.settings.centres is not None and self.settings.centres < mask.sum():
            self.process_mask = write_centres_mask(
                mask, affine, centre_indices(mask, self.settings.centres),
                self.work / "centres.nii.gz")
        geometry = self._geometry()
        n_spheres = len(geometry.centres)
        n_folds = plan_decode([store.read_design(first, subject)], "logo",
                              self.settings.pair)[0].n_folds
        voxels = geometry.spheres.getnnz(axis=1)
        return {count: {**store_size(self.store(count)), "spheres": count * n_spheres,
                        "fits": count * n_spheres * n_folds, "tasks": count,
                        "voxels_per_sphere": float(voxels.mean()),
                        "pair": list(self.settings.pair), "radius_mm": self.settings.radius}
                for count in counts}

    def _geometry(self):
        first = self.store(self.counts[0])
        return subject_geometry(str(first.resolve()), store.list_subjects(first)[0],
                                self.settings.radius, self.process_mask)

    def warm_task(self, index: int) -> tuple[Callable, tuple]:
        path = self.store(self.counts[0])
        subject = store.list_subjects(path)[0]
        voxels, spheres = batch_voxel_block(self._geometry().spheres, slice(0, 20))
        key = (subject, *sorted(self.settings.pair), f"warm{index}")
        return searchlight_spheres, (str(path.resolve()), [key],
                                     store.read_design(path, subject).checksum, voxels,
                                     spheres, "logo", 1.0, "batched")

    def run(self, client: Client, n_subjects: int, out: Path) -> EngineRun:
        run = prepare_searchlight(self.store(n_subjects), out, radius=self.settings.radius,
                                  categories=list(self.settings.pair),
                                  process_mask=self.process_mask, overwrite=True)
        execute_searchlight(run, client, progress=False)
        manifest = json.loads((out / "run.json").read_text())
        timings, counts = manifest["timings"], manifest["counts"]
        return EngineRun(counts["spheres"], counts["batches"],
                         timings["prepare_s"] + timings["write_s"])

    def baseline(self, n_subjects: int) -> int:
        path = self.store(self.counts[0])
        centres = evenly_spaced(self._geometry().centres, self.settings.baseline_centres)
        return baselines.nilearn_searchlight(path, store.list_subjects(path)[0],
                                             self.settings.pair, self.settings.radius, centres)


class Ingest:
    """Read, mask, z-score (over all scans) and store each subject, one task per subject."""

    name = "ingest"
    unit = "subject"
    baseline_label = "nilearn NiftiMasker"
    baseline_name = "nilearn NiftiMasker(standardize='zscore_sample').fit_transform per " \
        "subject (no store written)"

    def __init__(self, settings: BenchSettings, dataset: Dataset, work: Path):
        self.settings, self.dataset, self.work = settings, dataset, work

    def prepare(self, counts: Sequence[int]) -> dict:
        sizes = {}
        for count in counts:
            files = [directory / "bold.nii.gz" for directory in self.dataset.subject_dirs[:count]]
            sizes[count] = {"subjects": count, "tasks": count,
                            "nifti_bytes_on_disk": sum(path.stat().st_size for path in files)}
        return sizes

    def warm_task(self, index: int) -> tuple[Callable, tuple]:
        path = self.work / f"warm-{index}.zarr"
        store.create_store(path)
        source = find_subjects(self.dataset.subject_dirs[:1], self.dataset.brain_mask)[0]
        return ingest_subject, (source, str(path.resolve()))

    def run(self, client: Client, n_subjects: int, out: Path) -> EngineRun:
        started = time.perf_counter()
        sources = find_subjects(self.dataset.subject_dirs[:n_subjects], self.dataset.brain_mask)
        client_s = time.perf_counter() - started
        ingest_sources_on_cluster(sources, (out / "store.zarr").resolve(), client,
                                  progress=False, standardize="global")
        return EngineRun(n_subjects, n_subjects, client_s)

    def baseline(self, n_subjects: int) -> int:
        return baselines.nilearn_masker(self.dataset.subject_dirs[:n_subjects],
                                        self.dataset.brain_mask)


WORKLOADS = {"decode": Decode, "searchlight": Searchlight, "ingest": Ingest}


def make_workload(settings: BenchSettings, dataset: Dataset, work: Path):
    """The workload object the settings name."""
    return WORKLOADS[settings.workload](settings, dataset, work)
