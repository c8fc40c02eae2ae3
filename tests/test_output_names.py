"""Output file names built from labels, subject ids and runs: safe, unique, reversible."""

import itertools
import json
import os
import string
import warnings
from pathlib import Path, PurePosixPath

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nidecode import outdir
from nidecode.errors import InputError
from nidecode.outdir import (
    MAX_PART,
    confusion_name,
    decode_part,
    encode_part,
    group_map_name,
    null_name,
    searchlight_name,
    sphere_size_name,
    weights_name,
)
from tests.conftest import tiny_subject

# Any Python string: unicode, control characters, lone surrogates (a Linux file
# name that is not valid UTF-8 reaches Python as surrogate escapes), very long.
ANY = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)
HOSTILE = st.one_of(ANY, st.sampled_from(
    ["", ".", "..", "/", "x/../../../OUTSIDE", "a_vs_b", "vs", "mean", "group", "CON", "nul",
     "Face", "face", "FACE", "%41", "+A", "~", " ", "NA", "01", "\\", "a" * 400, "é", "É"]))


def _component(name: str) -> str:
    """The file name of an output name: exactly one component below its directory."""
    path = PurePosixPath(name)
    assert not path.is_absolute() and ".." not in path.parts
    return path.name


def _safe_component(component: str) -> None:
    assert component not in ("", ".", "..")
    assert not component.startswith(".")  # never hidden, never a temporary file's name
    assert len(component.encode()) <= 255
    assert set(component) <= set(string.ascii_letters + string.digits + "-_.+%~")
    assert component.split(".")[0].upper() not in outdir.WINDOWS_RESERVED


@settings(max_examples=300, deadline=None)
@given(ANY, st.booleans())
def test_a_part_round_trips_and_is_safe(text, subject):
    encoded = encode_part(text, subject=subject)
    assert set(encoded) <= set(string.ascii_letters + string.digits + "-+%~"
                               + ("_" if subject else ""))
    assert 0 < len(encoded) <= MAX_PART
    if "~" not in encoded:  # not shortened: the name alone gives the string back
        assert decode_part(encoded) == text
    else:
        assert len(text.encode("utf-8", "surrogatepass")) > 20


@settings(max_examples=300, deadline=None)
@given(HOSTILE, HOSTILE)
def test_distinct_strings_give_distinct_parts_even_ignoring_case(first, second):
    for subject in (False, True):
        a, b = encode_part(first, subject=subject), encode_part(second, subject=subject)
        assert (a.lower() == b.lower()) == (first == second)


def _names(keys):
    """Every name one directory of outputs can hold, for these (subject, a, b) keys."""
    names = []
    for subject, class_a, class_b in keys:
        names.append(weights_name(subject, class_a, class_b))
        names.append(null_name(subject, class_a, class_b))
        names.append(null_name(subject, class_a, class_b, searchlight=True))
        names.append(confusion_name(subject))
        names.append(sphere_size_name(subject))
        for statistic in ("", "p", "p_fwe"):
            names.append(searchlight_name(subject, class_a, class_b, statistic))
        for statistic in ("mean", "t", "p_fwe"):
            names.append(group_map_name(class_a, class_b, statistic))
    return names


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(HOSTILE, HOSTILE, HOSTILE), min_size=1, max_size=4, unique=True))
def test_names_stay_inside_and_never_collide(keys):
    names = _names(keys)
    for name in names:
        _safe_component(_component(name))
    # Each distinct name comes from one key only (the same name from the same
    # subject or pair is the same file), even on a case-insensitive file system.
    origin: dict[str, set] = {}
    for (subject, class_a, class_b) in keys:
        for kind, name in [("w", weights_name(subject, class_a, class_b)),
                           ("s", searchlight_name(subject, class_a, class_b)),
                           ("sp", searchlight_name(subject, class_a, class_b, "p")),
                           ("spf", searchlight_name(subject, class_a, class_b, "p_fwe")),
                           ("n", null_name(subject, class_a, class_b)),
                           ("ns", null_name(subject, class_a, class_b, searchlight=True)),
                           ("c", confusion_name(subject)), ("z", sphere_size_name(subject)),
                           ("gm", group_map_name(class_a, class_b, "mean")),
                           ("gt", group_map_name(class_a, class_b, "t")),
                           ("gp", group_map_name(class_a, class_b, "p_fwe"))]:
            owner = (kind, subject) if kind in ("c", "z") else \
                (kind, class_a, class_b) if kind.startswith("g") else \
                (kind, subject, class_a, class_b)
            origin.setdefault(name.lower(), set()).add(owner)
    clashes = {name: owners for name, owners in origin.items() if len(owners) > 1}
    assert not clashes


@pytest.mark.parametrize(("key", "expected"), [
    (("subj1", "face", "cat"), "weights/subj1_face_vs_cat.nii.gz"),
    (("haxby2001_slice", "cat", "face"), "weights/haxby2001_slice_cat_vs_face.nii.gz"),
    (("01", "scrambled-pix", "house"), "weights/01_scrambled-pix_vs_house.nii.gz"),
    (("s", "x/../../../OUTSIDE", "cat"), "weights/s_x%2F%2E%2E%2F%2E%2E%2F%2E%2E%2F+O+U+T+S+I+D+E"
                                         "_vs_cat.nii.gz"),
    (("s", "a_vs_b", "c"), "weights/s_a%5Fvs%5Fb_vs_c.nii.gz"),
])
def test_ordinary_names_are_unchanged_and_hostile_ones_are_escaped(key, expected):
    assert weights_name(*key) == expected


def test_the_pairs_of_the_issue_get_their_own_files():
    # labels a_vs_b / a, b_vs_c used to share s_a_vs_b_vs_c.nii.gz
    assert weights_name("s", "a_vs_b", "c") != weights_name("s", "a", "b_vs_c")
    assert weights_name("s", "Face", "cat").lower() != weights_name("s", "face", "cat").lower()
    assert weights_name("s", "a b", "c") != weights_name("s", "a_b", "c")
    assert searchlight_name("mean", "a", "b") != group_map_name("a", "b", "mean")


def test_very_long_and_reserved_names_fit_a_file_system(tmp_path):
    names = [weights_name("s" * 300, "é" * 300, "\udcff" * 300),
             weights_name("CON", "nul", "vs"), confusion_name("..."), confusion_name("")]
    for name in names:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        assert path.resolve().parent == (tmp_path / name).parent.resolve()
    assert len(set(os.listdir(tmp_path / "weights"))) == 2
    assert decode_part(encode_part("..", subject=True)) == ".."
    assert Path(confusion_name("")).name != "confusion_.csv"


# --- through ingest and decode --------------------------------------------------------------

def _one_field(text: str) -> bool:
    # labels.txt is split on whitespace and lines: a label is one field of one line
    return text.split() == [text] and text.splitlines() == [text]


def _directory_name(text: str) -> bool:
    # A subject id is the name of a directory this test can create.
    return text not in ("", ".", "..") and not set(text) & {"/", "\0"} and \
        len(text.encode()) <= 200


def _refused_by_the_store(subject: str) -> bool:
    # The store's own entries (zarr.json, hidden .versions) and ids that are not
    # one printable file name on every system (a backslash, control characters).
    return (subject.startswith(".") or subject.lower() == "zarr.json" or "\\" in subject
            or not subject.isprintable())


TEXT = st.characters(exclude_categories=("Cs",))
LABEL = st.one_of(st.sampled_from(["x/../../../OUTSIDE", "a_vs_b", "b_vs_c", "a", "NA", "01",
                                   "$HOME", "%2F", "..", "Face", "face", "CON", "é" * 100]),
                  st.text(TEXT, min_size=1, max_size=120)).filter(_one_field)
SUBJECT = st.one_of(st.sampled_from(["sub 01", "NA", "01", "...", "$x", "%", "mean", "ü-Ω",
                                     " ", "s" * 180, "zarr.json", ".versions", "a\\b",
                                     "tab\there"]),
                    st.text(TEXT, min_size=1, max_size=60)).filter(_directory_name)


def _hostile_subject(directory: Path, labels: list[str]) -> Path:
    tiny_subject(directory)
    order = {"rest": labels[0], "face": labels[1], "cat": labels[2]}
    rows = (directory / "labels.txt").read_text().splitlines()[1:]
    lines = [f"{order[row.split()[0]]} {row.split()[1]}" for row in rows]
    (directory / "labels.txt").write_text("labels chunks\n" + "\n".join(lines) + "\n",
                                          encoding="utf-8")
    return directory


def _listing(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(subject=SUBJECT, labels=st.lists(LABEL, min_size=3, max_size=3, unique=True))
def test_hostile_labels_and_subject_ids_through_ingest_and_decode(client, tmp_path_factory,
                                                                  subject, labels):
    from nidecode.analyses.decode import execute_decode, prepare_decode
    from nidecode.ingest import ingest

    root = tmp_path_factory.mktemp("hostile")
    directory = _hostile_subject(root / "data" / subject, labels)
    if _refused_by_the_store(subject):
        with pytest.raises(InputError, match="rename the subject"):
            ingest([directory], root / "s.zarr", "mask4_vt")
        assert not (root / "s.zarr").exists()  # refused before anything is written
        return
    ingest([directory], root / "s.zarr", "mask4_vt")
    (root / "box").mkdir()
    before = _listing(root)
    out = root / "box" / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant-voxel notes and the like
        run = prepare_decode(root / "s.zarr", out)
        execute_decode(run, client, progress=False)
    # nothing written outside --out
    assert {name for name in _listing(root) - before if not name.startswith("box/out")} == set()
    scores = pd.read_csv(out / "scores.csv", dtype=str, keep_default_na=False)
    assert set(scores["subject"]) == {subject}
    pairs = {frozenset(pair) for pair in zip(scores["class_a"], scores["class_b"], strict=True)}
    assert pairs == {frozenset(pair) for pair in itertools.combinations(labels, 2)}
    expected = {weights_name(subject, a, b) for a, b in
                set(zip(scores["class_a"], scores["class_b"], strict=True))}
    assert len({name.lower() for name in expected}) == 3  # no two pairs share a file
    written = {str(path.relative_to(out)) for path in (out / "weights").iterdir()}
    assert written == expected
    assert (out / confusion_name(subject)).is_file()
    manifest = json.loads((out / "run.json").read_text())
    assert set(manifest["files"]) >= expected | {confusion_name(subject), "scores.csv"}


def test_a_corrupt_part_on_resume_is_recomputed_and_named(client, tmp_path, recwarn):
    from nidecode.analyses.decode import execute_decode, prepare_decode
    from nidecode.ingest import ingest

    ingest([tiny_subject(tmp_path / "sub01")], tmp_path / "s.zarr", "mask4_vt")
    execute_decode(prepare_decode(tmp_path / "s.zarr", tmp_path / "out"), client,
                   progress=False)
    expected = (tmp_path / "out" / "scores.csv").read_bytes()
    part = sorted((tmp_path / "out" / "parts").glob("*.npz"))[0]
    part.write_bytes(part.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match=f"{part}: unreadable saved result"):
        run = prepare_decode(tmp_path / "s.zarr", tmp_path / "out")
        execute_decode(run, client, progress=False)
    assert (tmp_path / "out" / "scores.csv").read_bytes() == expected
    assert json.loads((tmp_path / "out" / "run.json").read_text())["counts"][
        "fits_computed"] == 3


def test_the_report_reads_labels_as_text_and_finds_their_maps(tmp_path):
    import nibabel as nib
    import numpy as np

    from nidecode.report.inputs import read_results

    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"status": "complete", "identity": {}}))
    summary = pd.DataFrame({"subject": ["NA", "NA"], "class_a": ["01", "01"],
                            "class_b": ["1", "nan"], "mean_accuracy": [0.75, 0.5],
                            "std_accuracy": [0.1, None], "n_folds": [4, 1]})
    summary.to_csv(out / "summary.csv", index=False)
    for class_b in ("1", "nan"):
        (out / weights_name("NA", "01", class_b)).parent.mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.float32), np.eye(4)),
                 out / weights_name("NA", "01", class_b))
    results = read_results(out)
    assert list(results.weight_maps) == [("NA", "01", "1"), ("NA", "01", "nan")]
    assert results.summary["std_accuracy"].isna().tolist() == [False, True]
