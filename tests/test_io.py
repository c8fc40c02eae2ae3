"""The labels parser: valid files parse, malformed ones give an InputError, nothing else."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nidecode.errors import InputError
from nidecode.io.haxby import read_labels


def test_reads_the_haxby_labels(haxby_slice_dir):
    labels = read_labels(haxby_slice_dir / "labels.txt")
    assert len(labels) == 1452
    assert labels["chunks"].dtype == np.int64
    assert sorted(labels["chunks"].unique()) == list(range(12))
    assert (labels["labels"] == "face").sum() == 108


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("labels chunks\n", "no rows after the header"),
    ("label chunk\nface 0\n", "missing column 'labels'"),
    ("labels chunks\nface 0.5\n", "line 2 has run '0.5'"),
    ("labels chunks\n\nface\n", "line 3 has 1 fields, the header 2"),
    ("labels chunks\nface 0 extra\n", "line 2 has 3 fields"),
])
def test_malformed_labels(tmp_path, text, message):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_labels(path)


def test_binary_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError, match="labels.txt"):
        read_labels(path)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from(list("labelschunk \t\n0123456789.-,face#\"'é\x00")),
               max_size=200))
def test_fuzz_labels_parser(tmp_path, text):
    path = tmp_path / "labels.txt"
    path.write_text(text, encoding="utf-8")
    try:
        table = read_labels(path)
    except InputError as error:
        assert str(path) in str(error) and "\n" not in str(error)
        return
    assert list(table.columns) == ["labels", "chunks"]
    assert len(table) > 0
    assert table["chunks"].dtype == np.int64
    assert isinstance(table, pd.DataFrame)


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes("labels chunks\nface 0\ncat 0\n".encode("utf-8-sig"))
    table = read_labels(path)
    assert table["labels"].tolist() == ["face", "cat"]
    assert table["chunks"].tolist() == [0, 0]


@pytest.mark.parametrize(("runs", "message"), [
    ([0, 0, 1, 1, 0, 0], r"run 0 at lines 6-7 already came at lines 2-3"),
    ([3, 3, 3, 5], r"run 5 has one scan \(line 5\)"),
    ([3, 3, 9, 3, 3], r"run 9 has one scan \(line 4\)"),
])
def test_runs_must_be_blocks_of_two_scans_or_more(tmp_path, runs, message):
    path = tmp_path / "labels.txt"
    path.write_text("labels chunks\n" + "".join(f"face {run}\n" for run in runs))
    with pytest.raises(InputError, match=message):
        read_labels(path)


def test_runs_in_any_order_and_large_ids_are_read(tmp_path):
    path = tmp_path / "labels.txt"
    runs = [10, 10, 2, 2, 2**40, 2**40, -3, -3]
    path.write_text("labels chunks\n" + "".join(f"face {run}\n" for run in runs))
    assert read_labels(path)["chunks"].tolist() == runs
