"""``nidecode bench``: data, baseline, one cluster per worker count, bench.json and plots.

Order of a run: generate or link the subjects and ingest the stores (not
timed); time the baseline ``repeats`` times in this process; then for each
worker count start a LocalCluster (start-up timed apart), warm every worker
up, time the scheduler on empty tasks, and time the strong-scaling problem
(``subjects_per_worker`` x the largest worker count, the same at every
count) and the weak-scaling problem (``subjects_per_worker`` x the workers)
``repeats`` times each. With ``--scheduler``, the one cluster given is
measured at its size: strong scaling only.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from nidecode.bench import measure, plots, summary
from nidecode.bench.data import make_subjects
from nidecode.bench.machine import cpu_seconds, external_load, machine, spread
from nidecode.bench.settings import BenchSettings
from nidecode.bench.workloads import make_workload
from nidecode.run import versions

FIGURES = ("scaling.png", "phases.png")


def _stderr(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run_bench(settings: BenchSettings, say: Callable[[str], None] = _stderr) -> dict:
    """Run the benchmark the settings describe; write ``bench.json`` and the PNG plots.

    Parameters
    ----------
    settings : BenchSettings
        From :func:`nidecode.bench.settings.make_settings`.
    say : callable
        Receives one progress line at a time.

    Returns
    -------
    dict
        The content of ``bench.json``.
    """
    settings.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _work_directory(settings.out) as work:
        if settings.scheduler:
            with measure.cluster(scheduler=settings.scheduler) as (client, startup_s):
                size = measure.threads(client)
                plan = _Plan(settings, work, [size], say)
                sessions = [plan.session(client, size, startup_s)]
        else:
            plan = _Plan(settings, work, list(settings.workers), say)
            sessions = []
            for count in settings.workers:
                with measure.cluster(workers=count) as (client, startup_s):
                    sessions.append(plan.session(client, count, startup_s))
        bench = plan.figures(sessions)
    bench["timings"] = {"total_s": time.perf_counter() - started, "data_s": plan.data_s}
    write_bench(bench, settings.out)
    for line in summary.headline(bench):
        say(line)
    say(f"wrote {settings.out / 'bench.json'} and "
        f"{', '.join(str(settings.out / name) for name in FIGURES)}")
    return bench


@contextmanager
def _work_directory(out: Path) -> Iterator[Path]:
    # Inside --out, so that the workers of a --scheduler cluster reach it
    # when --out is on a shared file system.
    work = Path(tempfile.mkdtemp(prefix=".bench-work-", dir=out))
    (work / ".gitignore").write_text("*\n")  # never committed when --out is in a repository
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _Plan:
    """The data, the baseline and the problem sizes of one benchmark run."""

    def __init__(self, settings: BenchSettings, work: Path, sizes: list[int],
                 say: Callable[[str], None]):
        self.settings, self.work, self.say = settings, work, say
        per_worker = settings.subjects_per_worker
        self.strong_subjects = per_worker * max(sizes)
        self.counts = sorted({per_worker * size for size in sizes})
        started = time.perf_counter()
        self.dataset = make_subjects(settings.data, self.strong_subjects, work / "data")
        self.workload = make_workload(settings, self.dataset, work)
        self.problems = self.workload.prepare(self.counts)
        self.data_s = time.perf_counter() - started
        say(f"{self.strong_subjects} {settings.data} subject(s) and stores ready in "
            f"{self.data_s:.1f} s; timing the baseline ({settings.repeats} repeats)")
        self.baseline = self._time_baseline()

    def _time_baseline(self) -> dict:
        baseline_times, loads, units = [], [], 0
        for _ in range(self.settings.repeats):
            gc.collect()
            before = cpu_seconds()
            started = time.perf_counter()
            units = self.workload.baseline(self.strong_subjects)
            baseline_times.append(time.perf_counter() - started)
            loads.append(external_load(before, cpu_seconds(), baseline_times[-1]))
        return {"name": self.workload.baseline_name,
                "short_name": self.workload.baseline_label, "units": units,
                "wall_s": spread(baseline_times),
                "rate": spread([units / seconds for seconds in baseline_times]),
                "external_load": spread(loads), "repeats": baseline_times}

    def session(self, client, size: int, startup_s: float) -> dict:
        """Warm up, time the scheduler, then the strong and weak problems on one cluster."""
        settings = self.settings
        warmup_s = measure.warm_up(client, self.workload.warm_task)
        noop = [measure.scheduler_cost(client, settings.noop_tasks)
                for _ in range(settings.repeats)]
        self.say(f"{size} worker(s): start-up {startup_s:.1f} s, warm-up {warmup_s:.1f} s, "
                 f"{noop[0]['ms_per_task']:.2f} ms per empty task")
        local = settings.scheduler is None
        weak_subjects = settings.subjects_per_worker * size

        def repeats(subjects: int, kind: str) -> list[dict]:
            runs = []
            for repeat in range(settings.repeats):
                out = self.work / "runs" / f"{kind}-{size}-{repeat}"
                runs.append(measure.timed_run(
                    client, lambda client, out, n=subjects: self.workload.run(client, n, out),
                    out, local=local))
                self.say(f"{size} worker(s), {kind}, {subjects} subject(s), repeat "
                         f"{repeat + 1}: {runs[-1]['wall_s']:.2f} s")
            return runs

        strong = repeats(self.strong_subjects, "strong")
        weak = strong if weak_subjects == self.strong_subjects or not local \
            else repeats(weak_subjects, "weak")
        return {"workers": measure.threads(client), "startup_s": startup_s,
                "warmup_s": warmup_s, "scheduler_noop": noop,
                "strong": strong, "weak": weak if local else None,
                "weak_subjects": weak_subjects}

    def figures(self, sessions: list[dict]) -> dict:
        """The content of bench.json."""
        settings, workload = self.settings, self.workload
        baseline_rate = self.baseline["rate"]["median"]
        strong = summary.add_scaling(
            [summary.point(session["strong"], self.strong_subjects) for session in sessions],
            baseline_rate, "strong")
        weak = summary.add_scaling(
            [summary.point(session["weak"], session["weak_subjects"]) for session in sessions
             if session["weak"] is not None], baseline_rate, "weak")
        notes = [
            "cluster start-up and warm-up (imports, numba compilation, one small task per "
            "worker) are timed apart and not in the scaling figures",
            "every repeat forgets the subjects cached by the workers, so each run reads its "
            "data as a fresh run would (the operating system's file cache stays warm)",
        ]
        if settings.scheduler:
            notes.append("--scheduler: the cluster is measured at its own size only (strong "
                         "scaling at one point, no weak scaling); speed-up and efficiency need "
                         "a smaller run: compare with 'nidecode bench compare'")
        if settings.workload == "searchlight":
            notes.append(f"the baseline is timed on {self.baseline['units']} sphere centres "
                         f"spread over the engine's centres of one subject; its rate is "
                         f"compared with the engine's")
        return {
            "format": summary.FORMAT, "format_version": summary.FORMAT_VERSION,
            "label": settings.label or settings.out.resolve().name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(), "versions": versions(), "parameters": settings.as_json(),
            "workload": {"name": workload.name, "unit": workload.unit,
                         "data_kind": settings.data, "data": self.dataset.describe()},
            "problem": {"strong": self.problems[self.strong_subjects],
                        "weak": {str(size): self.problems[size] for size in self.counts}},
            "cluster": {"mode": "scheduler" if settings.scheduler else "local",
                        "address": settings.scheduler,
                        "sessions": [{"workers": session["workers"],
                                      "startup_s": session["startup_s"],
                                      "warmup_s": session["warmup_s"],
                                      "scheduler_ms_per_task": spread(
                                          [noop["ms_per_task"]
                                           for noop in session["scheduler_noop"]]),
                                      "scheduler_tasks_per_s": spread(
                                          [noop["tasks_per_s"]
                                           for noop in session["scheduler_noop"]])}
                                     for session in sessions]},
            "baseline": self.baseline, "strong": strong, "weak": weak,
            "definitions": summary.DEFINITIONS, "notes": notes,
        }


def write_bench(bench: dict, out: Path) -> None:
    """Write bench.json (atomically) and the plots into ``out``."""
    handle, temporary = tempfile.mkstemp(dir=out, prefix=".bench-", suffix=".json")
    with os.fdopen(handle, "w") as stream:
        json.dump(bench, stream, indent=2)
        stream.write("\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, out / "bench.json")
    plots.scaling_figure(bench, out / "scaling.png")
    plots.phases_figure(bench, out / "phases.png")
