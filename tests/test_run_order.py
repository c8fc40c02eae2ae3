"""Runs in any order, numbered anyhow: the same store and decoding as in canonical order."""

import shutil
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nidecode import store
from nidecode.analyses.plan import PairJob
from nidecode.analyses.tasks import decode_pairs
from nidecode.errors import InputError
from nidecode.ingest import ingest

N_RUNS, SCANS, SHAPE = 4, 8, (3, 3, 2)
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
BLOCK_LABELS = ["rest", "face", "face", "cat", "cat", "face", "cat", "rest"]
IDS = st.integers(-2**62, 2**62)


@pytest.fixture(scope="module")
def canonical(tmp_path_factory):
    """Runs 0..3 in order: a small subject with a face/cat signal, its data and store."""
    rng = np.random.default_rng(11)
    data = rng.normal(100, 5, size=(*SHAPE, N_RUNS * SCANS)).astype(np.float32)
    labels = np.tile(BLOCK_LABELS, N_RUNS)
    data[0, :, :, labels == "face"] += 4.0  # decodable, not perfectly
    data += np.repeat(rng.normal(0, 20, N_RUNS), SCANS).astype(np.float32)  # run offsets
    root = tmp_path_factory.mktemp("order")
    directory = _write(root / "sub01", data, labels, np.repeat(np.arange(N_RUNS), SCANS))
    ingest([directory], root / "s.zarr", "mask", detrend=True)
    return data, labels, root / "s.zarr"


def _write(directory, data, labels, runs):
    directory.mkdir(parents=True)
    nib.save(nib.Nifti1Image(data, AFFINE), directory / "bold.nii.gz")
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.uint8), AFFINE), directory / "mask.nii.gz")
    pd.DataFrame({"labels": labels, "chunks": runs}).to_csv(directory / "labels.txt", sep=" ",
                                                            index=False)
    return directory


def _reordered(data, labels, order, ids):
    """The blocks of the canonical runs in ``order``, block ``k`` numbered ``ids[k]``."""
    rows = np.concatenate([np.arange(run * SCANS, (run + 1) * SCANS) for run in order])
    return data[..., rows], labels[rows], np.repeat(ids, SCANS), rows


def _decode(path):
    design = store.read_design(path, "sub01")
    [result] = decode_pairs(str(path), [PairJob("sub01", "cat", "face", N_RUNS)],
                            design.checksum, "logo", 1.0)
    return result


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(N_RUNS)),
       ids=st.lists(IDS, min_size=N_RUNS, max_size=N_RUNS, unique=True))
def test_any_run_order_and_numbering_gives_the_canonical_results(canonical, order, ids):
    data, labels, reference = canonical
    work = Path(tempfile.mkdtemp())
    try:
        bold, names, runs, rows = _reordered(data, labels, order, ids)
        ingest([_write(work / "sub01", bold, names, runs)], work / "s.zarr", "mask",
               detrend=True)
        # Row for row: scan i of the new file is scan rows[i] of the canonical one.
        np.testing.assert_array_equal(store.read_timeseries(work / "s.zarr", "sub01"),
                                      store.read_timeseries(reference, "sub01")[rows])
        design = store.read_design(work / "s.zarr", "sub01")
        np.testing.assert_array_equal(design.runs, runs)
        np.testing.assert_array_equal(design.labels, names)
        # Fold k of the canonical decoding holds out run k, now numbered ids[order.index(k)].
        result, expected = _decode(work / "s.zarr"), _decode(reference)
        new_id = {run: ids[list(order).index(run)] for run in range(N_RUNS)}
        position = {int(fold): index for index, fold in enumerate(result.folds)}
        for index, fold in enumerate(expected.folds):
            mine = position[new_id[int(fold)]]
            assert result.accuracy[mine] == expected.accuracy[index]
            assert result.n_train[mine] == expected.n_train[index]
            # libsvm visits the training scans in file order: the weights agree
            # within its stopping tolerance (1e-3), not bit for bit.
            np.testing.assert_allclose(result.coef[mine], expected.coef[index], atol=1e-3)
    finally:
        shutil.rmtree(work)


@settings(max_examples=15, deadline=None)
@given(order=st.permutations(range(N_RUNS)), ids=st.lists(IDS, min_size=N_RUNS - 1,
                                                          max_size=N_RUNS - 1, unique=True),
       data=st.data())
def test_a_run_id_given_to_two_separate_blocks_is_refused(order, ids, data):
    # Two sessions numbered alike: one id on two blocks with another between.
    first = data.draw(st.integers(0, N_RUNS - 3))
    second = data.draw(st.integers(first + 2, N_RUNS - 1))
    numbering = list(ids)
    numbering.insert(second, numbering[first])
    work = Path(tempfile.mkdtemp())
    try:
        runs = np.repeat(numbering, SCANS)
        pd.DataFrame({"labels": np.tile(BLOCK_LABELS, N_RUNS), "chunks": runs}).to_csv(
            work / "labels.txt", sep=" ", index=False)
        start = 2 + second * SCANS
        with pytest.raises(InputError, match=f"run {numbering[first]} at lines {start}-"
                                             f"{start + SCANS - 1} already came at lines "
                                             f"{2 + first * SCANS}-"):
            from nidecode.io.haxby import read_labels

            read_labels(work / "labels.txt")
    finally:
        shutil.rmtree(work)
