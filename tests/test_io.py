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
