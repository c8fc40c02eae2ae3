"""Start-up as the user feels it: ``nidecode --help`` and ``import nidecode``
against ``import nilearn.decoding``, each in a fresh interpreter.

Every command runs in its own process (the imports are what is timed), the
three alternate within each repeat so that a busy machine slows them alike,
and the best of the repeats is reported with the ratio to nilearn. Run::

    python benchmarks/bench_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _common import machine, save, spread

COMMANDS = {
    "nidecode --help": [sys.executable, "-m", "nidecode.cli", "--help"],
    "import nidecode": [sys.executable, "-c", "import nidecode"],
    "import nilearn.decoding": [sys.executable, "-c", "import nilearn.decoding"],
    "python (empty)": [sys.executable, "-c", "pass"],
}


def wall_time(command: list[str]) -> float:
    """Seconds from start to exit of one process."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the file cache and .pyc files
        wall_time(command)
    times = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, command in COMMANDS.items():
            times[name].append(wall_time(command))
    best = {name: min(values) for name, values in times.items()}
    nilearn = best["import nilearn.decoding"]
    figures = {
        "what": "wall time of a fresh interpreter running each command (best of repeats)",
        "repeats": args.repeats,
        "seconds": {name: spread(values) for name, values in times.items()},
        "best_s": best,
        "faster_than_nilearn_import": {name: nilearn / best[name]
                                       for name in ("nidecode --help", "import nidecode")},
        "machine": machine(),
    }
    path = save("startup", figures)
    for name, seconds in best.items():
        print(f"{name:26s} {seconds:6.3f} s")
    print(f"nidecode --help is {figures['faster_than_nilearn_import']['nidecode --help']:.1f}x "
          f"faster than import nilearn.decoding; written {path}")


if __name__ == "__main__":
    main()
