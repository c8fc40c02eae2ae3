"""What a benchmark run measures: the checked settings and their defaults.

Everything the user can get wrong is raised here, as
:class:`~nidecode.errors.InputError`, before data are generated or a cluster
starts.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from nidecode.datasets import load_haxby_slice
from nidecode.errors import InputError

WORKLOADS = ("decode", "searchlight", "ingest")
DATA = ("synthetic", "real")
HAXBY_SLICE = load_haxby_slice()

#: Subjects per worker (weak scaling) by workload, for a full and a ``--quick`` run.
SUBJECTS_PER_WORKER = {"decode": (4, 2), "searchlight": (1, 1), "ingest": (4, 2)}
#: Sphere centres per subject for searchlight (None: every mask voxel), full and quick.
CENTRES = (None, 300)
#: Centres of nilearn's SearchLight baseline, full and quick.
BASELINE_CENTRES = (100, 50)
#: No-op tasks timed to measure the scheduler's per-task cost, full and quick.
NOOP_TASKS = (1000, 300)


@dataclass(frozen=True)
class BenchSettings:
    """A checked benchmark configuration.

    Attributes
    ----------
    workload : {"decode", "searchlight", "ingest"}
    out : Path
        Directory of ``bench.json`` and the PNG plots.
    workers : tuple of int, optional
        LocalCluster sizes, increasing; ``None`` with ``scheduler``.
    scheduler : str, optional
        Address of a running Dask scheduler: strong scaling at its size only.
    data : {"synthetic", "real"}
    subjects_per_worker : int
        Weak scaling: subjects per worker; the strong-scaling problem is this
        times the largest worker count.
    repeats : int
        Timed repetitions of every measurement.
    quick : bool
    fits_per_task : int, optional
        Decode: SVM fits per Dask task (``None``: one task per subject).
    radius : float
        Searchlight sphere radius (mm).
    pair : tuple of str
        Searchlight: the category pair decoded.
    centres : int, optional
        Searchlight: sphere centres per subject (``None``: the whole mask).
    baseline_centres : int
        Searchlight: centres given to nilearn's ``SearchLight``.
    noop_tasks : int
        Empty tasks timed to measure the scheduler's cost per task.
    label : str, optional
        Name of the run in ``nidecode bench compare`` (default: the directory name).
    """

    workload: str
    out: Path
    workers: tuple[int, ...] | None
    scheduler: str | None
    data: str
    subjects_per_worker: int
    repeats: int
    quick: bool
    fits_per_task: int | None
    radius: float
    pair: tuple[str, str]
    centres: int | None
    baseline_centres: int
    noop_tasks: int
    label: str | None

    def as_json(self) -> dict:
        """The settings as JSON-ready values."""
        values = asdict(self)
        values["out"] = str(self.out)
        values["workers"] = list(self.workers) if self.workers else None
        values["pair"] = list(self.pair)
        return values


def parse_workers(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` to ``(1, 2, 4)``: positive whole numbers, sorted, without repeats."""
    counts = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise InputError(f"--workers {text}: give worker counts as positive whole numbers "
                             f"separated by commas, e.g. 1,2,4")
        counts.append(int(item))
    return tuple(sorted(set(counts)))


def default_workers(cores: int | None = None) -> tuple[int, ...]:
    """Powers of two up to the number of cores, and the number of cores: 1,2,4,6 on 6 cores."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
    counts = {2 ** power for power in range(int(math.log2(cores)) + 1)} | {cores}
    return tuple(sorted(counts))


def make_settings(*, out: str | Path | None, workload: str = "decode",
                  workers: str | None = None, scheduler: str | None = None,
                  data: str = "synthetic", subjects: int | None = None, repeats: int = 3,
                  quick: bool = False, fits_per_task: int | None = None, radius: float = 5.6,
                  label: str | None = None) -> BenchSettings:
    """Check the options of ``nidecode bench`` and fill in the defaults.

    Parameters are those of the command line (``workers`` as text, e.g.
    ``"1,2,4"``); see :class:`BenchSettings`.

    Returns
    -------
    BenchSettings
    """
    if out is None:
        raise InputError("--out: give the directory for bench.json and the plots")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory; give a directory")
    if workload not in WORKLOADS:
        raise InputError(f"--workload {workload}: choose one of {', '.join(WORKLOADS)}")
    if data not in DATA:
        raise InputError(f"--data {data}: choose one of {', '.join(DATA)}")
    if data == "real" and not (HAXBY_SLICE / "bold.nii.gz").is_file():
        raise InputError(f"--data real: the Haxby slice is not at {HAXBY_SLICE}; use --data "
                         f"synthetic")
    if workers is not None and scheduler is not None:
        raise InputError("--workers and --scheduler: give one of them, not both")
    counts = None if scheduler else (parse_workers(workers) if workers else default_workers())
    for name, value in (("--subjects", subjects), ("--repeats", repeats),
                        ("--fits-per-task", fits_per_task)):
        if value is not None and value < 1:
            raise InputError(f"{name} {value}: give a positive whole number")
    if not math.isfinite(radius) or radius <= 0:
        raise InputError(f"--radius {radius:g}: give a positive radius in millimetres")
    which = 1 if quick else 0
    return BenchSettings(
        workload=workload, out=out, workers=counts, scheduler=scheduler, data=data,
        subjects_per_worker=subjects or SUBJECTS_PER_WORKER[workload][which],
        repeats=repeats, quick=quick, fits_per_task=fits_per_task, radius=radius,
        pair=("face", "house"), centres=CENTRES[which], baseline_centres=BASELINE_CENTRES[which],
        noop_tasks=NOOP_TASKS[which], label=label)
