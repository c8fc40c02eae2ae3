"""The ``nidecode bench`` sub-command: argument parsing only.

``engine/cli.py`` wires it in with :func:`add_parser` (on its sub-parsers)
and :func:`run` (in its table of commands); :class:`~nidecode.errors.InputError`
raised here becomes one line on stderr and exit status 2 there.
"""

from __future__ import annotations

import argparse
import sys

from nidecode.bench.settings import WORKLOADS


def add_parser(commands) -> argparse.ArgumentParser:
    """Add ``bench`` (and its ``compare``) to the sub-parsers of the ``nidecode`` parser.

    Parameters
    ----------
    commands : argparse._SubParsersAction
        What ``parser.add_subparsers(dest="command")`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The ``bench`` parser.
    """
    bench = commands.add_parser(
        "bench", help="how decoding scales: times, speed-up, efficiency, plots",
        description="Time a workload at several worker counts (strong scaling: a fixed "
        "problem; weak scaling: N subjects per worker) against a serial baseline measured "
        "in the same run; write DIR/bench.json, DIR/scaling.png and DIR/phases.png. "
        "'nidecode bench compare A/bench.json B/bench.json' puts runs side by side.")
    where = bench.add_mutually_exclusive_group()
    where.add_argument("--workers", metavar="1,2,4",
                       help="LocalCluster sizes to time (default: powers of two up to the "
                       "number of cores, and the number of cores)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="time a running cluster at its own size (strong scaling at that "
                       "size only); --out must be on a file system its workers see")
    bench.add_argument("--workload", choices=WORKLOADS, default="decode",
                       help="decode (all pairs, ROI; default), searchlight (one pair, whole "
                       "brain) or ingest")
    bench.add_argument("--data", choices=("synthetic", "real"), default="synthetic",
                       help="synthetic subjects (default) or copies of the real Haxby slice")
    bench.add_argument("--subjects", type=int, metavar="N",
                       help="subjects per worker (weak scaling); the fixed problem is N x the "
                       "largest worker count (default: 4 for decode and ingest, 1 for "
                       "searchlight; halved with --quick)")
    bench.add_argument("--repeats", type=int, default=3, metavar="R",
                       help="timed repeats of every measurement (default 3)")
    bench.add_argument("--quick", action="store_true",
                       help="smaller problems (a few minutes on 2 cores)")
    bench.add_argument("--fits-per-task", type=int, metavar="N",
                       help="decode: SVM fits per Dask task (default: one task per subject)")
    bench.add_argument("--radius", type=float, default=5.6, metavar="MM",
                       help="searchlight sphere radius (default 5.6 mm)")
    bench.add_argument("--label", help="name of this run in 'bench compare' (default: the "
                       "--out directory's name)")
    bench.add_argument("--out", metavar="DIR",
                       help="directory for bench.json and the plots (required)")
    bench.add_argument("--quiet", action="store_true", help="no progress messages")
    actions = bench.add_subparsers(dest="bench_command", metavar="{compare}")
    compare = actions.add_parser("compare", help="runs side by side: table, CSV and plot",
                                 description="Print a table of two or more bench.json "
                                 "files of one workload, write DIR/compare.csv and "
                                 "DIR/compare.png.")
    compare.add_argument("bench_files", nargs="+", metavar="BENCH_JSON",
                         help="bench.json files (or the directories holding them)")
    compare.add_argument("--out", dest="compare_out", default=".", metavar="DIR",
                         help="directory for compare.csv and compare.png (default: here)")
    return bench


def run(args: argparse.Namespace) -> int:
    """Run ``nidecode bench`` or ``nidecode bench compare``; returns the exit status."""
    if getattr(args, "bench_command", None) == "compare":
        from nidecode.bench.comparison import compare, format_table

        table, figure = compare(args.bench_files, args.compare_out)
        print(format_table(table))
        print(f"wrote {figure.with_name('compare.csv')} and {figure}", file=sys.stderr)
        return 0

    from nidecode.bench.runner import run_bench
    from nidecode.bench.settings import make_settings

    settings = make_settings(out=args.out, workload=args.workload, workers=args.workers,
                             scheduler=args.scheduler, data=args.data, subjects=args.subjects,
                             repeats=args.repeats, quick=args.quick,
                             fits_per_task=args.fits_per_task, radius=args.radius,
                             label=args.label)
    run_bench(settings, say=(lambda message: None) if args.quiet else _say)
    return 0


def _say(message: str) -> None:
    print(f"nidecode bench: {message}", file=sys.stderr, flush=True)
