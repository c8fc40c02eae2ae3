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
:mod:`~engine.bench.runner`, :mod:`~engine.bench.comparison`, :mod:`~engine.bench.cli`.
"""

import importlib

_PUBLIC = {"BenchSettings": "settings", "make_settings": "settings", "parse_workers": "settings",
           "run_bench": "runner", "compare": "comparison", "load_bench": "comparison"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    # Imported on first use: the command line's parser imports engine.bench.cli
    # without the cluster, plotting and workload modules.
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"engine.bench.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'engine.bench' has no attribute {name!r}")
