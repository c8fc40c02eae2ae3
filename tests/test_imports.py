"""``import nidecode`` and ``nidecode --help`` load no cluster, store or model code."""

import subprocess
import sys

import pytest

import nidecode

HEAVY = ("distributed", "dask", "zarr", "sklearn", "nilearn", "numba", "matplotlib")

_PROBE = """
import sys
import nidecode
from nidecode.cli import build_parser
build_parser().format_help()
print(" ".join(name for name in {heavy!r} if name in sys.modules))
"""


def test_help_and_import_load_no_heavy_module():
    done = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


def test_help_exits_zero_without_traceback():
    done = subprocess.run([sys.executable, "-m", "nidecode.cli", "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0
    assert "ingest" in done.stdout and "searchlight" in done.stdout
    assert done.stderr == ""


def test_public_names_resolve_on_first_use():
    assert nidecode.__version__ != "0+unknown"
    assert {"decode", "ingest", "get_client"} <= set(dir(nidecode))
    assert callable(nidecode.decode) and nidecode.decode.__name__ == "decode"
    assert nidecode.searchlight.__module__ == "nidecode.analyses.searchlight"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = nidecode.nothing


def test_every_sub_package_is_listed_for_installation():
    # package-dir maps engine/ to nidecode, so sub-packages are listed by hand.
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(("nidecode", *init.parent.relative_to(root / "engine").parts))
             for init in (root / "engine").rglob("__init__.py")}
    assert listed == found
