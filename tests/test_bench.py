"""nidecode bench: a tiny real run writes bench.json and the plots; compare; bad input."""

import argparse
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from nidecode.bench import summary
from nidecode.bench.cli import add_parser, run
from nidecode.bench.comparison import compare, load_bench
from nidecode.bench.settings import default_workers, make_settings, parse_workers
from nidecode.errors import InputError

FITS_PER_SUBJECT = 28 * 12  # all pairs of the 8 categories, leave-one-of-12-runs-out


def parse(argv):
    """The nidecode parser with only the bench command, as engine/cli.py wires it."""
    parser = argparse.ArgumentParser(prog="nidecode")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    """A real decode benchmark: 1 then 2 workers, 1 subject per worker, 1 repeat."""
    out = tmp_path_factory.mktemp("bench") / "laptop"
    status = run(parse(["bench", "--quick", "--workers", "1,2", "--workload", "decode",
                        "--subjects", "1", "--repeats", "1", "--quiet", "--out", str(out)]))
    assert status == 0
    return out


def test_bench_writes_json_with_the_documented_figures(tiny_bench):
    bench = json.loads((tiny_bench / "bench.json").read_text())
    assert bench["format"] == "nidecode-bench" and bench["label"] == "laptop"
    assert {"cpu", "cores", "memory_gib", "python", "platform", "versions"} <= set(
        bench["machine"])
    assert bench["versions"]["scikit-learn"] != "not installed"
    assert bench["parameters"]["workers"] == [1, 2]
    assert bench["parameters"]["workload"] == "decode"
    assert bench["workload"] == {"name": "decode", "unit": "fit", "data_kind": "synthetic",
                                 "data": bench["workload"]["data"]}
    assert [session["workers"] for session in bench["cluster"]["sessions"]] == [1, 2]
    assert all(session["startup_s"] > 0 and session["scheduler_tasks_per_s"]["median"] > 0
               for session in bench["cluster"]["sessions"])

    # the baseline did the seed's loop on the fixed problem: 2 subjects x 28 pairs x 12 folds
    assert bench["baseline"]["units"] == 2 * FITS_PER_SUBJECT
    assert bench["baseline"]["rate"]["median"] > 0

    problem = bench["problem"]["strong"]
    assert problem["subjects"] == 2 and problem["fits"] == 2 * FITS_PER_SUBJECT
    assert [(entry["workers"], entry["subjects"]) for entry in bench["strong"]] == [(1, 2), (2, 2)]
    assert [(entry["workers"], entry["subjects"]) for entry in bench["weak"]] == [(1, 1), (2, 2)]
    for entry in bench["strong"] + bench["weak"]:
        assert entry["units"] == entry["subjects"] * FITS_PER_SUBJECT
        assert entry["tasks"] == entry["subjects"]  # one task per subject by default
        for figure in ("wall_s", "rate", "overhead_share", "read_share", "worker_peak_mib"):
            assert set(entry[figure]) == {"median", "min", "max", "repeats"}
        assert entry["efficiency"] > 0 and entry["speedup"] > 0 and entry["vs_baseline"] > 0
        assert 0 < entry["busy_share"]["median"] <= 1.01
        assert 0 <= entry["read_share"]["median"] < 1
        assert entry["worker_peak_mib"]["median"] > 50
        # each task read its subject's whole time series once: scans x voxels x float32
        assert entry["read_bytes_per_task"] == problem["scans"] * problem["voxels"] * 4
        assert sum(entry["phases_s"].values()) == pytest.approx(entry["wall_s"]["median"],
                                                                rel=0.02)
        assert entry["rate"]["median"] == pytest.approx(entry["units"]
                                                        / entry["wall_s"]["median"])
    assert bench["strong"][0]["speedup"] == bench["strong"][0]["efficiency"] == 1.0
    # at the largest worker count the weak problem is the strong one: measured once
    assert bench["weak"][-1]["repeats"] == bench["strong"][-1]["repeats"]


def test_bench_writes_the_plots(tiny_bench):
    for name in ("scaling.png", "phases.png"):
        image = imread(tiny_bench / name)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 800
        assert image[..., :3].std() > 0.05  # something is drawn
    assert not list(tiny_bench.glob(".bench-work-*"))  # the data are removed


def test_compare_two_runs(tiny_bench, tmp_path, capsys):
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    bench = json.loads((tiny_bench / "bench.json").read_text())
    bench["label"] = "cluster"
    bench["machine"]["cores"] = 64
    for entry in bench["strong"]:
        entry["rate"]["median"] *= 10
    (cluster / "bench.json").write_text(json.dumps(bench))

    status = run(parse(["bench", "compare", str(tiny_bench / "bench.json"), str(cluster),
                        "--out", str(tmp_path / "both")]))
    assert status == 0
    printed = capsys.readouterr().out
    assert "laptop" in printed and "cluster" in printed
    table = pd.read_csv(tmp_path / "both" / "compare.csv")
    assert list(table["run"].unique()) == ["laptop", "cluster"]
    assert len(table) == 2 * (len(bench["strong"]) + len(bench["weak"]))
    laptop = table[(table["run"] == "laptop") & (table["scaling"] == "strong")]
    faster = table[(table["run"] == "cluster") & (table["scaling"] == "strong")]
    assert np.allclose(faster["rate"].to_numpy(), 10 * laptop["rate"].to_numpy())
    assert set(table["cores"]) == {bench["machine"]["cores"],
                                   json.loads((tiny_bench / "bench.json").read_text())
                                   ["machine"]["cores"]}
    assert imread(tmp_path / "both" / "compare.png").shape[1] > 800


def test_compare_refuses_missing_or_foreign_files(tiny_bench, tmp_path):
    missing = tmp_path / "nowhere" / "bench.json"
    with pytest.raises(InputError, match=str(missing)):
        compare([tiny_bench / "bench.json", missing], tmp_path)
    foreign = tmp_path / "other.json"
    foreign.write_text('{"fits": 3}')
    with pytest.raises(InputError, match="not a bench.json"):
        load_bench(foreign)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_bench(broken)
    searchlight = tmp_path / "searchlight"
    searchlight.mkdir()
    shutil.copy(tiny_bench / "bench.json", searchlight / "bench.json")
    bench = json.loads((searchlight / "bench.json").read_text())
    bench["workload"]["name"] = "searchlight"
    (searchlight / "bench.json").write_text(json.dumps(bench))
    with pytest.raises(InputError, match="different workloads"):
        compare([tiny_bench, searchlight], tmp_path)
    with pytest.raises(InputError, match="two or more"):
        compare([tiny_bench], tmp_path)


@pytest.mark.parametrize(("text", "expected"), [
    ("1,2,4", (1, 2, 4)), ("4, 1,1", (1, 4)), ("8", (8,))])
def test_parse_workers(text, expected):
    assert parse_workers(text) == expected


@pytest.mark.parametrize("text", ["0,x", "0", "1,-2", "a", "", "1,,2", "1.5"])
def test_bad_workers_name_the_option(text):
    with pytest.raises(InputError, match=f"--workers {text}:"):
        parse_workers(text)


@pytest.mark.parametrize(("cores", "expected"), [(1, (1,)), (2, (1, 2)), (6, (1, 2, 4, 6)),
                                                 (8, (1, 2, 4, 8))])
def test_default_workers(cores, expected):
    assert default_workers(cores) == expected


@pytest.mark.parametrize(("options", "message"), [
    ({"out": None}, "--out: give the directory"),
    ({"repeats": 0}, "--repeats 0:"),
    ({"subjects": -1}, "--subjects -1:"),
    ({"fits_per_task": 0}, "--fits-per-task 0:"),
    ({"radius": 0.0}, "--radius 0:"),
    ({"workers": "0,x"}, "--workers 0,x:"),
    ({"workers": "1", "scheduler": "tcp://127.0.0.1:1"}, "give one of them"),
])
def test_bad_settings(tmp_path, options, message):
    arguments = {"out": tmp_path / "out", **options}
    with pytest.raises(InputError, match=message):
        make_settings(**arguments)


def test_real_data_needs_the_slice(tmp_path, monkeypatch):
    monkeypatch.setattr("nidecode.bench.settings.HAXBY_SLICE", tmp_path / "absent")
    with pytest.raises(InputError, match="--data real: the Haxby slice is not at"):
        make_settings(out=tmp_path / "out", data="real")


def test_cli_reports_bad_workers_before_any_work(tmp_path):
    with pytest.raises(InputError, match="--workers 0,x"):
        run(parse(["bench", "--workers", "0,x", "--out", str(tmp_path / "b")]))
    assert not (tmp_path / "b").exists()


def test_quick_defaults(tmp_path):
    quick = make_settings(out=tmp_path, quick=True)
    full = make_settings(out=tmp_path, workers="1,2")
    assert (quick.subjects_per_worker, full.subjects_per_worker) == (2, 4)
    assert full.workers == (1, 2) and full.scheduler is None
    assert make_settings(out=tmp_path, workload="searchlight", quick=True).centres == 300
    assert make_settings(out=tmp_path, scheduler="tcp://h:8786").workers is None


def _repeat(wall, workers, busy, read=0.0, client=0.0, units=100):
    return {"wall_s": wall, "workers": workers, "busy_s": busy, "read_s": read, "write_s": 0.0,
            "client_s": client, "units": units, "tasks": 4, "read_bytes": 400,
            "worker_cpu_s": busy, "worker_peak_mib": 100.0, "external_load": None}


def test_scaling_figures_from_known_times():
    strong = [summary.point([_repeat(10.0, 1, 9.0), _repeat(12.0, 1, 9.0),
                             _repeat(11.0, 1, 9.0)], 4),
              summary.point([_repeat(5.5, 2, 10.0, read=1.0, client=0.5)], 4)]
    summary.add_scaling(strong, baseline_rate=5.0, kind="strong")
    assert strong[0]["wall_s"] == {"median": 11.0, "min": 10.0, "max": 12.0, "repeats": 3}
    assert strong[1]["speedup"] == pytest.approx(2.0)  # 11 s / 5.5 s
    assert strong[1]["efficiency"] == pytest.approx(1.0)
    assert strong[1]["cluster_efficiency"] == pytest.approx(11.0 / (2 * 5.0))  # minus 0.5 s
    assert strong[1]["vs_baseline"] == pytest.approx((100 / 5.5) / 5.0)
    assert strong[1]["overhead_share"]["median"] == pytest.approx(1 - 10.0 / 11.0)
    assert strong[1]["read_share"]["median"] == pytest.approx(1.0 / 11.0)
    assert strong[1]["phases_s"] == pytest.approx({"client": 0.5, "scheduling": 0.0,
                                                   "reading": 0.5, "computing": 4.5,
                                                   "writing": 0.0})
    assert strong[0]["phases_s"]["computing"] == 9.0  # the median repeat, 11 s
    assert strong[0]["phases_s"]["scheduling"] == pytest.approx(2.0)

    weak = [summary.point([_repeat(5.0, 1, 4.5)], 1), summary.point([_repeat(6.25, 2, 11.0)], 2)]
    summary.add_scaling(weak, baseline_rate=None, kind="weak")
    assert weak[1]["efficiency"] == pytest.approx(0.8)
    assert weak[1]["vs_baseline"] is None

    cluster_only = summary.add_scaling([summary.point([_repeat(2.0, 64, 100.0)], 64)], 5.0,
                                       "strong")
    assert cluster_only[0]["speedup"] is None and cluster_only[0]["vs_baseline"] == 10.0
