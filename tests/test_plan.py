"""The plan: pairs, validation against the design, batching into tasks."""

import numpy as np
import pytest

from nidecode.analyses.plan import (
    batch_jobs,
    category_pairs,
    majority_rates,
    pair_subjects,
    parse_categories,
    plan_decode,
    plan_notes,
)
from nidecode.errors import InputError
from nidecode.store import Design


def _design(subject="s1", n_runs=4):
    labels = np.tile(["rest", "face", "cat", "house", "rest"], n_runs)
    runs = np.repeat(np.arange(n_runs), 5)
    return Design(subject, labels, runs, n_voxels=10, checksum="x")


def test_all_pairs_exclude_rest_and_are_sorted():
    jobs = plan_decode([_design()], "logo")
    assert [(job.class_a, job.class_b) for job in jobs] == [("cat", "face"), ("cat", "house"),
                                                           ("face", "house")]
    assert all(job.n_folds == 4 for job in jobs)
    assert category_pairs(["face", "cat", "face"]) == [("cat", "face")]


def test_requested_categories_and_missing_one():
    assert len(plan_decode([_design()], "kfold:2", ["face", "house"])) == 1
    with pytest.raises(InputError, match="no scans labelled 'chair'.*face"):
        plan_decode([_design("s9")], "logo", ["face", "chair"])


def test_pair_in_one_run_cannot_be_left_out():
    with pytest.raises(InputError, match="only 1 run"):
        plan_decode([_design(n_runs=1)], "logo", ["face", "cat"])


def test_training_fold_with_one_class_is_refused():
    labels = np.array(["face"] * 6 + ["cat"] * 6)
    design = Design("s1", labels, np.zeros(12, int), 3, "x")
    with pytest.raises(InputError, match="one class only"):
        plan_decode([design], "kfold:2", ["face", "cat"])


def test_parse_categories():
    assert parse_categories("face, cat") == ["face", "cat"]
    assert parse_categories(None) is None
    with pytest.raises(InputError):
        parse_categories("face,face")


def test_batches_group_one_subject_and_bound_the_fits():
    jobs = plan_decode([_design("a", 12), _design("b", 12)], "logo")
    batches = batch_jobs(jobs, fits_per_task=24)
    assert [len(batch) for batch in batches] == [2, 1, 2, 1]
    assert all(len({job.subject for job in batch}) == 1 for batch in batches)
    assert [job for batch in batches for job in batch] == jobs


def _labelled(subject, labels, n_runs=4):
    return Design(subject, np.tile(labels, n_runs), np.repeat(np.arange(n_runs), len(labels)),
                  n_voxels=10, checksum="x")


def test_each_subject_gets_the_pairs_it_has():
    designs = [_design("s1"), _labelled("s2", ["rest", "face", "cat", "rest"])]
    jobs = plan_decode(designs, "logo")
    assert [job.key for job in jobs if job.subject == "s2"] == [("s2", "cat", "face")]
    assert plan_notes(designs, jobs) == [
        "cat vs house: 1 subject (s1); no group test (it needs 2 or more)",
        "face vs house: 1 subject (s1); no group test (it needs 2 or more)"]
    assert plan_notes(designs, jobs, group=False) == []
    assert pair_subjects(jobs)[("cat", "face")] == ["s1", "s2"]


def test_a_requested_category_a_subject_lacks_skips_its_pairs_with_a_note():
    designs = [_design("s1"), _design("s2"), _labelled("s3", ["rest", "face", "cat", "rest"])]
    jobs = plan_decode(designs, "logo", ["face", "house"])
    assert [job.subject for job in jobs] == ["s1", "s2"]
    assert plan_notes(designs, jobs, ["face", "house"]) == [
        "s3 has no scans labelled 'house': its pairs with house are skipped (s3 has no pair "
        "left)"]
    jobs = plan_decode(designs, "logo", ["cat", "face", "house"])
    assert [job.key for job in jobs if job.subject == "s3"] == [("s3", "cat", "face")]
    with pytest.raises(InputError, match="--categories: no subject has scans labelled 'chair'"):
        plan_decode(designs, "logo", ["face", "chair"])
    apart = [_labelled("a", ["face", "rest"]), _labelled("b", ["house", "rest"])]
    with pytest.raises(InputError, match="no subject has scans of two of these categories"):
        plan_decode(apart, "logo", ["face", "house"])


def test_majority_rates_are_the_share_of_the_larger_class_per_test_fold():
    labels = np.array(["a"] * 9 + ["b"] + ["a"] * 6 + ["b"] * 4 + ["rest"] * 3)
    runs = np.repeat([0, 1, 2], [10, 10, 3])
    rates = majority_rates(Design("s", labels, runs, 1, "x"), "a", "b", "logo")
    np.testing.assert_allclose(rates, [0.9, 0.6])
    balanced = majority_rates(_design(), "cat", "face", "kfold:2")
    np.testing.assert_array_equal(balanced, [0.5, 0.5])


def test_decode_tasks_are_whole_subjects_from_three_subjects_per_worker_thread():
    import dask

    from nidecode.analyses.decode import _subject_tasks
    from nidecode.analyses.plan import PairJob

    def jobs(n_subjects):
        return [PairJob(f"s{s}", "a", b, 12 if s else 10) for s in range(n_subjects)
                for b in ("b", "c", "d")]

    assert _subject_tasks(jobs(6), n_threads=2) == 36  # the largest subject's fits
    assert len(batch_jobs(jobs(6), _subject_tasks(jobs(6), n_threads=2))) == 6
    assert _subject_tasks(jobs(5), n_threads=2) is None  # too few: the default size
    assert _subject_tasks(jobs(3), n_threads=1) == 36
    assert _subject_tasks(jobs(6), n_threads=0) is None  # no worker yet (adaptive)
    with dask.config.set({"nidecode.fits-per-task": 12}):
        assert _subject_tasks(jobs(6), n_threads=2) is None  # the config decides
