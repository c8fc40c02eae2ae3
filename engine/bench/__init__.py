"""``nidecode bench``: how a decoding study scales, measured, plotted and comparable.

The same workload (decode, searchlight or ingest) is timed at several worker
counts, on a fixed problem (strong scaling) and on a problem growing with
the workers (weak scaling), against a serial baseline timed in the same
run. Figures go to ``bench.json``, plots to PNG; ``compare`` puts runs of
several machines side by side.

Modules: :mod:`~nidecode.bench.settings` (options and defaults),
:mod:`~nidecode.bench.data` (subjects and stores), :mod:`~nidecode.bench.workloads`
and :mod:`~nidecode.bench.baselines` (what is timed), :mod:`~nidecode.bench.probes`
(timers inside the workers), :mod:`~nidecode.bench.measure` (timing on Dask),
:mod:`~nidecode.bench.summary` (figures), :mod:`~nidecode.bench.plots`,
:mod:`~nidecode.bench.runner`, :mod:`~nidecode.bench.comparison`, :mod:`~nidecode.bench.cli`.
"""

import importlib

_PUBLIC = {"BenchSettings": "settings", "make_settings": "settings", "parse_workers": "settings",
           "run_bench": "runner", "compare": "comparison", "load_bench": "comparison"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    # Imported on first use: the command line's parser imports nidecode.bench.cli
    # without the cluster, plotting and workload modules.
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"nidecode.bench.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'nidecode.bench' has no attribute {name!r}")
