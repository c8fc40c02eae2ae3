"""The output directory: identity, saved parts, atomic files, leftovers."""

import json

import numpy as np
import pandas as pd
import pytest

from nidecode.errors import InputError
from nidecode.outdir import OutputDir
from nidecode.results import SphereScores


def test_foreign_non_empty_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty and holds no run.json"):
        OutputDir(tmp_path).start({"command": "decode"})


def test_parts_round_trip_and_leftovers_are_removed(tmp_path):
    output = OutputDir(tmp_path / "out")
    output.start({"command": "x"})
    part = SphereScores(("s/1", "a b", "c", "000001"), np.arange(6.0).reshape(3, 2),
                        np.array([4, 7]))
    output.save_part(part)
    (tmp_path / "out" / "parts" / ".tmp123.npz").write_bytes(b"half a file")
    loaded = output.load_parts(SphereScores)
    assert list(loaded) == [part.key]
    np.testing.assert_array_equal(loaded[part.key].accuracy, part.accuracy)
    output.start({"command": "x"})  # resuming removes a killed write's temporary file
    assert not list((tmp_path / "out").rglob(".*"))
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "running"
    assert list(output.load_parts(SphereScores)) == [part.key]


def test_other_identity_needs_overwrite(tmp_path):
    output = OutputDir(tmp_path)
    output.start({"command": "decode", "C": 1.0})
    output.write_table("scores.csv", pd.DataFrame({"a": [1]}))
    with pytest.raises(InputError, match=r"other parameters \(C\)"):
        output.start({"command": "decode", "C": 2.0})
    output.start({"command": "decode", "C": 2.0}, overwrite=True)
    assert not (tmp_path / "scores.csv").exists()
