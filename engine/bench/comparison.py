"""``nidecode bench compare``: several bench.json side by side (a laptop against a cluster).

One table row per run, scaling kind and worker count, printed, written as
``compare.csv``, and drawn in ``compare.png``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nidecode.bench import plots
from nidecode.bench.summary import FORMAT
from nidecode.errors import InputError

COLUMNS = ("run", "machine", "cores", "workload", "data", "scaling", "workers", "subjects",
           "units", "wall_s", "rate", "speedup", "efficiency", "cluster_efficiency",
           "vs_baseline", "baseline_rate", "overhead_share", "read_share", "worker_peak_mib",
           "external_load")


def load_bench(path: str | Path) -> dict:
    """Read a bench.json (or the directory holding one) and check it is one."""
    path = Path(path)
    if path.is_dir():
        path = path / "bench.json"
    if not path.is_file():
        raise InputError(f"{path}: no such bench.json; run 'nidecode bench --out DIR' first "
                         f"and give DIR/bench.json")
    try:
        bench = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid JSON ({error}); run the benchmark again") from None
    if not isinstance(bench, dict) or bench.get("format") != FORMAT or "strong" not in bench:
        raise InputError(f"{path}: not a bench.json written by 'nidecode bench' (no "
                         f"'format': '{FORMAT}'); give the file of a benchmark run")
    bench["_path"] = str(path)
    return bench


def compare_table(benches: Sequence[dict], labels: Sequence[str]) -> pd.DataFrame:
    """One row per run x scaling kind x worker count (medians of the repeats)."""
    rows = []
    for bench, label in zip(benches, labels, strict=True):
        baseline = bench["baseline"]["rate"]["median"] if bench["baseline"] else None
        for kind in ("strong", "weak"):
            for entry in bench[kind]:
                load = entry["external_load"]
                rows.append({
                    "run": label, "machine": bench["machine"]["cpu"],
                    "cores": bench["machine"]["cores"], "workload": bench["workload"]["name"],
                    "data": bench["workload"]["data_kind"], "scaling": kind,
                    "workers": entry["workers"], "subjects": entry["subjects"],
                    "units": entry["units"], "wall_s": entry["wall_s"]["median"],
                    "rate": entry["rate"]["median"], "speedup": entry["speedup"],
                    "efficiency": entry["efficiency"],
                    "cluster_efficiency": entry["cluster_efficiency"],
                    "vs_baseline": entry["vs_baseline"],
                    "baseline_rate": baseline,
                    "overhead_share": entry["overhead_share"]["median"],
                    "read_share": entry["read_share"]["median"],
                    "worker_peak_mib": entry["worker_peak_mib"]["median"],
                    "external_load": load["median"] if load else None})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def run_labels(benches: Sequence[dict]) -> list[str]:
    """Each run's label, made unique (``laptop``, ``laptop (2)``)."""
    labels, seen = [], {}
    for bench in benches:
        label = bench.get("label") or Path(bench["_path"]).parent.name
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return labels


def compare(paths: Sequence[str | Path], out: str | Path = ".") -> tuple[pd.DataFrame, Path]:
    """Compare benchmark runs: write ``compare.csv`` and ``compare.png`` into ``out``.

    Parameters
    ----------
    paths : sequence of str or Path
        Two or more bench.json files (or the directories holding them), of
        the same workload.
    out : str or Path
        Directory of the table and the figure (created if needed).

    Returns
    -------
    table : pandas.DataFrame
        The rows of ``compare.csv``.
    figure : Path
        ``compare.png``.
    """
    if len(paths) < 2:
        raise InputError("bench compare: give two or more bench.json files, e.g. "
                         "laptop/bench.json cluster/bench.json")
    benches = [load_bench(path) for path in paths]
    workloads = {bench["workload"]["name"] for bench in benches}
    if len(workloads) > 1:
        described = ", ".join(f"{bench['_path']} ({bench['workload']['name']})"
                              for bench in benches)
        raise InputError(f"bench compare: the runs time different workloads: {described}; "
                         f"compare runs of one workload")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory; give a directory")
    out.mkdir(parents=True, exist_ok=True)
    labels = run_labels(benches)
    table = compare_table(benches, labels)
    table.to_csv(out / "compare.csv", index=False)
    figure = plots.compare_figure(benches, labels, out / "compare.png")
    return table, figure


def format_table(table: pd.DataFrame) -> str:
    """The table's main columns as text for the terminal."""
    shown = table[["run", "cores", "scaling", "workers", "subjects", "wall_s", "rate",
                   "speedup", "efficiency", "vs_baseline", "overhead_share", "read_share",
                   "worker_peak_mib"]]
    return shown.to_string(index=False, float_format=lambda value: f"{value:.3g}",
                           na_rep="-")
