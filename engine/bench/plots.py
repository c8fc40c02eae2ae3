"""The benchmark's figures: scaling, time by phase, and several runs side by side.

Drawn on Agg figures (:func:`nidecode.report.figures.new_figure`), never
through pyplot, and saved as PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nidecode.bench.summary import PHASES
from nidecode.report.figures import new_figure

COLOURS = {"client": "#b8b8b8", "scheduling": "#e07b39", "reading": "#4c9be8",
           "computing": "#3a7d44", "writing": "#9b59b6", "baseline": "#7f7f7f"}
PHASE_LABELS = {"client": "client: planning, writing outputs", "scheduling": "scheduling, idle",
                "reading": "reading data", "computing": "computing", "writing": "writing the store",
                "baseline": "baseline (serial, 1 core)"}
RUN_COLOURS = ("#1f5fa8", "#c0392b", "#27ae60", "#8e44ad", "#d68910")


def title(bench: dict) -> str:
    """Workload, data and machine in one line."""
    machine = bench["machine"]
    where = (f"cluster at {bench['parameters']['scheduler']}"
             if bench["parameters"].get("scheduler") else f"{machine['cores']}-core machine")
    line = (f"nidecode bench: {bench['workload']['name']}, {bench['workload']['data_kind']} "
            f"data — {where} ({machine['cpu']}), repeats: {bench['parameters']['repeats']}")
    loads = [entry["external_load"]["median"] for entry in bench["strong"] + bench["weak"]
             if entry["external_load"]]
    if loads:
        used = f"{min(loads):.0%}" if f"{min(loads):.0%}" == f"{max(loads):.0%}" \
            else f"{min(loads):.0%}–{max(loads):.0%}"
        line += f"\nother programs used {used} of the machine's cores during the timed runs"
    return line


def _workers_axis(axes, workers: Sequence[int]) -> None:
    if max(workers) / min(workers) >= 8:
        axes.set_xscale("log", base=2)
    axes.set_xticks(list(workers))
    axes.set_xticklabels([str(count) for count in workers])
    axes.set_xlabel("workers (single-threaded processes)")
    axes.margins(x=0.12)
    axes.grid(alpha=0.3)


def scaling_figure(bench: dict, path: Path) -> Path:
    """Speed-up, efficiency and throughput against workers, with the ideal lines."""
    strong, weak = bench["strong"], bench["weak"]
    unit = bench["workload"]["unit"]
    workers = [entry["workers"] for entry in strong]
    figure = new_figure(15.0, 5.0)
    speedup_axes, efficiency_axes, rate_axes = figure.subplots(1, 3)

    if all(entry["speedup"] is not None for entry in strong):
        reference = strong[0]["workers"] * strong[0]["wall_s"]["median"]
        speedup = np.array([entry["speedup"] for entry in strong])
        low = [reference / entry["wall_s"]["max"] for entry in strong]
        high = [reference / entry["wall_s"]["min"] for entry in strong]
        speedup_axes.errorbar(workers, speedup, yerr=[speedup - low, high - speedup], marker="o",
                              capsize=4, color=RUN_COLOURS[0], label="strong scaling (median, "
                              "range over repeats)")
        speedup_axes.plot(workers, workers, "--", color="grey", label="ideal")
        for count, value in zip(workers, speedup, strict=True):
            speedup_axes.annotate(f"{value:.2f}", (count, value), textcoords="offset points",
                                  xytext=(6, -12))
        speedup_axes.legend(loc="upper left", fontsize=8)
    else:
        speedup_axes.text(0.5, 0.5, "one cluster size (--scheduler):\nno speed-up without a "
                          "smaller run;\ncompare with a local run", ha="center", va="center",
                          transform=speedup_axes.transAxes)
    speedup_axes.set_ylabel(f"speed-up (fixed problem: {strong[0]['subjects']} subjects)")
    speedup_axes.set_title("strong scaling")
    _workers_axis(speedup_axes, workers)

    for kind, entries, style in (("strong", strong, "-o"), ("weak", weak, "--s")):
        points = [(entry["workers"], entry["efficiency"]) for entry in entries
                  if entry["efficiency"] is not None]
        if points:
            counts, values = zip(*points, strict=True)
            efficiency_axes.plot(counts, values, style, label=f"{kind} scaling"
                                 + (" (subjects grow with workers)" if kind == "weak" else ""))
    cluster = [(entry["workers"], entry["cluster_efficiency"]) for entry in strong
               if entry["cluster_efficiency"] is not None]
    if cluster:
        efficiency_axes.plot(*zip(*cluster, strict=True), ":^", color=RUN_COLOURS[0], alpha=0.7,
                             label="strong, without the client's planning and output writing")
    efficiency_axes.axhline(1.0, linestyle="--", color="grey", label="ideal")
    efficiency_axes.set_ylim(0, 1.15)
    efficiency_axes.set_ylabel("parallel efficiency")
    efficiency_axes.set_title("efficiency")
    efficiency_axes.legend(loc="lower left", fontsize=8)
    _workers_axis(efficiency_axes, sorted({*workers, *(entry["workers"] for entry in weak)}))

    rates = [entry["rate"]["median"] for entry in strong]
    rate_axes.errorbar(workers, rates, yerr=[[rate - entry["rate"]["min"] for rate, entry
                                              in zip(rates, strong, strict=True)],
                                             [entry["rate"]["max"] - rate for rate, entry
                                              in zip(rates, strong, strict=True)]],
                       marker="o", capsize=4, color=RUN_COLOURS[0], label="nidecode")
    rate_axes.plot(workers, [rates[0] * count / workers[0] for count in workers], "--",
                   color="grey", label="ideal")
    baseline = bench["baseline"]
    if baseline:
        rate_axes.axhline(baseline["rate"]["median"], color=COLOURS["baseline"], linestyle=":",
                          label=f"baseline, 1 core: {baseline['short_name']}")
        for count, entry in zip(workers, strong, strict=True):
            rate_axes.annotate(f"×{entry['vs_baseline']:.1f}", (count, entry["rate"]["median"]),
                               textcoords="offset points", xytext=(6, -12))
    rate_axes.set_ylim(bottom=0)
    rate_axes.set_ylabel(f"{unit}s per second")
    rate_axes.set_title("throughput against the baseline")
    rate_axes.legend(loc="upper left", fontsize=8)
    _workers_axis(rate_axes, workers)

    figure.suptitle(title(bench), fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    return path


def phases_figure(bench: dict, path: Path) -> Path:
    """Wall time split by phase for every worker count, beside the baseline."""
    panels = [("strong scaling: fixed problem", bench["strong"], True)]
    if bench["weak"]:
        panels.append(("weak scaling: subjects grow with workers", bench["weak"], False))
    figure = new_figure(6.0 * len(panels) + 2.6, 5.0)
    axes_list = np.atleast_1d(figure.subplots(1, len(panels)))
    for axes, (name, entries, with_baseline) in zip(axes_list, panels, strict=True):
        labels, stacks = [], []
        baseline = bench["baseline"]
        if with_baseline and baseline:
            labels.append("baseline\n1 core")
            seconds = entries[0]["units"] / baseline["rate"]["median"]
            stacks.append({"baseline": seconds})
        for entry in entries:
            labels.append(f"{entry['workers']} worker{'s' if entry['workers'] > 1 else ''}\n"
                          f"{entry['subjects']} subj.")
            stacks.append(entry["phases_s"])
        positions = np.arange(len(labels))
        bottom = np.zeros(len(labels))
        for phase in ("baseline", *PHASES):
            heights = np.array([stack.get(phase, 0.0) for stack in stacks])
            if heights.any():
                axes.bar(positions, heights, bottom=bottom, color=COLOURS[phase],
                         label=PHASE_LABELS[phase])
            bottom += heights
        for position, total in zip(positions, bottom, strict=True):
            axes.annotate(f"{total:.1f} s", (position, total), ha="center",
                          textcoords="offset points", xytext=(0, 3), fontsize=8)
        axes.set_xticks(positions)
        axes.set_xticklabels(labels, fontsize=8)
        axes.set_ylabel("wall time (s)")
        axes.set_title(name, fontsize=10)
        axes.set_ylim(0, bottom.max() * 1.15)
        axes.grid(axis="y", alpha=0.3)
    handles, names = axes_list[0].get_legend_handles_labels()
    figure.legend(handles[::-1], names[::-1], fontsize=8, loc="center right")
    if bench["baseline"] and bench["baseline"]["units"] != bench["strong"][0]["units"]:
        figure.text(0.01, 0.01, f"baseline bar: the fixed problem at the rate measured on "
                    f"{bench['baseline']['units']} {bench['workload']['unit']}s", fontsize=8)
    figure.suptitle(title(bench), fontsize=10)
    figure.tight_layout(rect=(0, 0.03, 1 - 2.5 / (6.0 * len(panels) + 2.6), 1))
    figure.savefig(path)
    return path


def compare_figure(benches: Sequence[dict], labels: Sequence[str], path: Path) -> Path:
    """Throughput and efficiency against workers of several runs, side by side."""
    figure = new_figure(13.0, 4.8)
    rate_axes, efficiency_axes = figure.subplots(1, 2)
    all_workers: set[int] = set()
    unit = benches[0]["workload"]["unit"]
    for index, (bench, label) in enumerate(zip(benches, labels, strict=True)):
        colour = RUN_COLOURS[index % len(RUN_COLOURS)]
        machine = f"{label} ({bench['machine']['cores']} cores)"
        for kind, style in (("strong", "-o"), ("weak", "--s")):
            entries = bench[kind]
            if not entries:
                continue
            counts = [entry["workers"] for entry in entries]
            all_workers.update(counts)
            rate_axes.plot(counts, [entry["rate"]["median"] for entry in entries], style,
                           color=colour, label=f"{machine}, {kind}")
            efficiency = [(entry["workers"], entry["efficiency"]) for entry in entries
                          if entry["efficiency"] is not None]
            if efficiency:
                efficiency_axes.plot(*zip(*efficiency, strict=True), style, color=colour,
                                     label=f"{machine}, {kind}")
        if bench["baseline"]:
            rate_axes.axhline(bench["baseline"]["rate"]["median"], color=colour, linestyle=":",
                              label=f"{label}: baseline, 1 core")
    rate_axes.set_ylabel(f"{unit}s per second")
    rate_axes.set_ylim(bottom=0)
    rate_axes.set_title("throughput")
    efficiency_axes.axhline(1.0, linestyle="--", color="grey", label="ideal")
    efficiency_axes.set_ylim(0, 1.15)
    efficiency_axes.set_ylabel("parallel efficiency")
    efficiency_axes.set_title("efficiency")
    for axes in (rate_axes, efficiency_axes):
        _workers_axis(axes, sorted(all_workers))
        axes.legend(fontsize=7)
    figure.suptitle(f"nidecode bench compare: {benches[0]['workload']['name']} — "
                    + " vs ".join(labels), fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    return path
