"""The plan: pairs, validation against the design, batching into tasks."""

import numpy as np
import pytest

from nidecode.errors import InputError
from nidecode.plan import batch_jobs, category_pairs, parse_categories, plan_decode
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
