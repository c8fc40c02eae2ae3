"""The output directory: identity, saved parts, atomic files, leftovers."""

import json
import os
import stat

import nibabel as nib
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
    # A part written atomically and killed mid-write (matched by both leftover
    # patterns: a SIGKILL during a part's write once made the resume fail).
    (tmp_path / "out" / "parts" / ".nidecode-x1y2.npz").write_bytes(b"half a part")
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


def _written_run(path):
    output = OutputDir(path)
    output.start({"command": "decode", "C": 1.0})
    output.write_table("scores.csv", pd.DataFrame({"a": [1]}))
    output.write_array("permutations/null/s_a_vs_b.npy", np.zeros(3))
    output.write_manifest({"status": "complete", "identity": {"command": "decode", "C": 1.0}})
    return output


def test_overwrite_removes_only_what_the_run_wrote(tmp_path):
    out = tmp_path / "out"
    _written_run(out)
    (out / "my_notes.txt").write_text("mine")
    (out / "mine").mkdir()
    (out / "mine" / "data.csv").write_text("x")
    (out / "permutations" / "keep.txt").write_text("also mine")
    assert json.loads((out / "run.json").read_text())["files"] == [
        "permutations/null/s_a_vs_b.npy", "scores.csv"]
    OutputDir(out).start({"command": "decode", "C": 2.0}, overwrite=True)
    left = sorted(str(path.relative_to(out)) for path in out.rglob("*"))
    assert left == ["mine", "mine/data.csv", "my_notes.txt", "parts", "permutations",
                    "permutations/keep.txt", "run.json"]


def test_overwrite_after_a_kill_removes_the_listed_files_only(tmp_path):
    out = tmp_path / "out"
    output = OutputDir(out)
    output.start({"command": "decode", "C": 1.0})
    output.write_image("weights/s_a_vs_b.nii.gz",
                       nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)))
    # killed here: run.json says running and lists the file written so far
    manifest = json.loads((out / "run.json").read_text())
    assert (manifest["status"], manifest["files"]) == ("running", ["weights/s_a_vs_b.nii.gz"])
    (tmp_path / "outside.txt").write_text("mine")
    (out / "notes.txt").write_text("mine")
    manifest["files"] += ["../outside.txt", str(tmp_path / "outside.txt"), "parts/../notes.txt"]
    (out / "run.json").write_text(json.dumps(manifest))  # edited by hand
    OutputDir(out).start({"command": "decode", "C": 2.0}, overwrite=True)
    assert not (out / "weights").exists()
    assert (tmp_path / "outside.txt").read_text() == (out / "notes.txt").read_text() == "mine"


def test_overwrite_of_a_run_of_an_older_version_removes_its_result_files(tmp_path):
    out = _written_run(tmp_path / "out").path
    manifest = json.loads((out / "run.json").read_text())
    del manifest["files"]
    (out / "run.json").write_text(json.dumps(manifest))
    (out / "my_notes.txt").write_text("mine")
    OutputDir(out).start({"command": "decode", "C": 2.0}, overwrite=True)
    assert sorted(path.name for path in out.iterdir()) == ["my_notes.txt", "parts", "run.json"]


@pytest.mark.parametrize("where", ["cwd", "parent", "home"])
def test_overwrite_refuses_the_current_directory_its_parents_and_home(tmp_path, monkeypatch,
                                                                      where):
    work = tmp_path / "work"
    work.mkdir()
    (work / "precious.txt").write_text("keep")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    path = {"cwd": ".", "parent": "..", "home": str(tmp_path / "home")}[where]
    with pytest.raises(InputError, match="--overwrite refused for the current directory"):
        OutputDir(path).start({"command": "decode"}, overwrite=True)
    with pytest.raises(InputError, match="empty path"):
        OutputDir("").start({"command": "decode"}, overwrite=True)
    assert (work / "precious.txt").read_text() == "keep"


def test_an_existing_file_as_out_is_an_input_error(tmp_path):
    (tmp_path / "results").write_text("a file")
    with pytest.raises(InputError, match="results: is a file, not a directory"):
        OutputDir(tmp_path / "results").start({"command": "decode"})
    with pytest.raises(InputError, match="cannot create the directory"):
        OutputDir(tmp_path / "results" / "sub").start({"command": "decode"})


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077], ids=["022", "002", "077"])
def test_files_get_the_mode_of_the_umask(tmp_path, umask):
    from nidecode.report.build import _write_atomic

    previous = os.umask(umask)
    try:
        output = _written_run(tmp_path / "out")
        output.save_part(SphereScores(("s", "a", "b", "000000"), np.zeros((1, 1)),
                                      np.zeros(1)))
        _write_atomic(tmp_path / "out" / "report.html", "<html></html>")
    finally:
        os.umask(previous)
    files = [path for path in (tmp_path / "out").rglob("*") if path.is_file()]
    assert len(files) == 5  # run.json, scores.csv, a .npy, a part, report.html
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04truncated"])
def test_a_corrupt_part_is_recomputed_with_a_warning(tmp_path, content):
    output = OutputDir(tmp_path / "out")
    output.start({"command": "x"})
    good = SphereScores(("s", "a", "b", "000000"), np.ones((2, 1)), np.zeros(1))
    output.save_part(good)
    output.save_part(SphereScores(("s", "a", "b", "000001"), np.ones((2, 1)), np.zeros(1)))
    broken = sorted((tmp_path / "out" / "parts").glob("*.npz"))[1]
    if content.startswith(b"PK"):
        content = broken.read_bytes()[:40]
    broken.write_bytes(content)
    with pytest.warns(UserWarning, match=f"{broken.name}: unreadable saved result"):
        loaded = output.load_parts(SphereScores)
    assert len(loaded) == 1 and not broken.exists()


def test_reserved_files_are_listed_at_once_and_written_from_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    output = OutputDir(tmp_path / "out")
    output.start({"command": "decode", "C": 1.0})
    names = [f"weights/s_{index}_vs_b.nii.gz" for index in range(8)]
    output.reserve(names)
    manifest = json.loads((tmp_path / "out" / "run.json").read_text())
    assert (manifest["status"], manifest["files"]) == ("running", sorted(names))
    def write(name: str) -> None:  # an image object each: nibabel's are not thread-safe
        output.write_image(name, nib.Nifti1Image(np.ones((2, 2, 2), np.float32), np.eye(4)))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, names))
    assert json.loads((tmp_path / "out" / "run.json").read_text()) == manifest  # not rewritten
    assert all(nib.load(tmp_path / "out" / name).get_fdata().sum() == 8 for name in names)
    assert not list((tmp_path / "out").rglob(".*"))
