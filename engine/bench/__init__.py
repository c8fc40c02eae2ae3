"""``nidecode bench``: how a decoding study scales, measured, plotted and comparable.

The same workload (decode, searchlight or ingest) is timed at several worker
counts, on a fixed problem (strong scaling) and on a problem growing with
the workers (weak scaling), against a serial baseline timed in the same
run. Figures go to ``bench.json``, plots to PNG; ``compare`` puts runs of
several machines side by side.

Modules: :mod:`~engine.bench.settings` (options and defaults),
:mod:`~engine.bench.data` (subjects and stores), :mod:`~engine.bench.workloads`
and :mod:`~engine.bench.baselines` (what is timed), :mod:`~engine.bench.probes`
(timers inside the workers), :mod:`~engine.bench.measure` (timing on Dask),
:mod:`~engine.bench.summary` (figures), :mod:`~engine.bench.plots`,
:mod:`~engine.bench.runner`, :mod:`~engine.bench.compare`, :mod:`~engine.bench.cli`.
"""

from engine.bench.compare import compare, load_bench
from engine.bench.runner import run_bench
from engine.bench.settings import BenchSettings, make_settings, parse_workers

__all__ = ["BenchSettings", "compare", "load_bench", "make_settings", "parse_workers",
           "run_bench"]
