"""Hostile designs (issue #13): unbalanced classes, a missing category, labels like numbers."""

import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nidecode.analyses.decode import decode, prepare_decode
from nidecode.analyses.permute import permute
from nidecode.analyses.searchlight import searchlight
from nidecode.cli import main
from nidecode.errors import InputError
from nidecode.ingest import ingest
from nidecode.report import write_report

N_RUNS, SCANS_PER_RUN, SHAPE = 4, 20, (5, 4, 3)


def noise_subject(directory, labels, seed):
    """A subject of pure noise (no information) in the Haxby layout, every voxel in the mask."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    bold = rng.normal(800, 50, size=(*SHAPE, len(labels))).astype(np.float32)
    nib.save(nib.Nifti1Image(bold, affine), directory / "bold.nii.gz")
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.uint8), affine), directory / "mask4_vt.nii.gz")
    runs = np.repeat(np.arange(N_RUNS), len(labels) // N_RUNS)
    lines = ["labels chunks"] + [f"{label} {run}" for label, run in zip(labels, runs,
                                                                         strict=True)]
    (directory / "labels.txt").write_text("\n".join(lines) + "\n")
    return directory


def unbalanced_labels(seed):
    """Scans labelled a or b at random, 9:1 (every run holds at least one b)."""
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(N_RUNS * SCANS_PER_RUN) < 0.9, "a", "b")
    labels[::SCANS_PER_RUN] = "b"
    return labels


def majority_rate(labels):
    """Per run (= leave-one-run-out test fold), the share of its larger class; fold mean."""
    runs = np.repeat(np.arange(N_RUNS), SCANS_PER_RUN)
    return np.mean([max(np.mean(labels[runs == run] == "a"), np.mean(labels[runs == run] == "b"))
                    for run in range(N_RUNS)])


@pytest.fixture(scope="module")
def unbalanced_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("unbalanced")
    labels = {f"s{index}": unbalanced_labels(index) for index in range(3)}
    directories = [noise_subject(root / subject, labels[subject], seed=10 + index)
                   for index, subject in enumerate(labels)]
    ingest(directories, root / "store.zarr", "mask4_vt")
    return root / "store.zarr", labels


def test_unbalanced_noise_is_tested_against_the_majority_rate(unbalanced_store, client,
                                                              tmp_path, capsys):
    store_path, labels = unbalanced_store
    summary = decode(store_path, tmp_path, client, progress=False)
    expected = [majority_rate(labels[subject]) for subject in summary["subject"]]
    np.testing.assert_allclose(summary["chance"], expected, rtol=1e-12)
    assert 0.85 < np.mean(expected) < 0.95
    on_disk = pd.read_csv(tmp_path / "summary.csv")
    np.testing.assert_allclose(on_disk["chance"], expected, rtol=1e-12)

    group = pd.read_csv(tmp_path / "group.csv")
    assert group["chance"].item() == pytest.approx(np.mean(expected))
    assert group["n_subjects"].item() == 3
    differences = summary["mean_accuracy"] - summary["chance"]
    test = stats.ttest_1samp(differences, 0.0, alternative="greater")
    assert group["p_value"].item() == pytest.approx(test.pvalue)
    assert group["p_value"].item() > 0.05  # noise: not significant
    # Against 0.5 the same noise would look highly significant (the defect).
    assert stats.ttest_1samp(summary["mean_accuracy"], 0.5, alternative="greater").pvalue < 0.05

    from nidecode.cli import _print_accuracies

    _print_accuracies(summary)
    printed = capsys.readouterr().out
    assert "chance 0.5" not in printed
    assert "chance" in printed and f"{np.mean(expected):.3f}" in printed


def test_unbalanced_report_marks_nothing_and_draws_the_design_chance(unbalanced_store,
                                                                      client, tmp_path):
    store_path, _ = unbalanced_store
    decode(store_path, tmp_path, client, progress=False)
    page = write_report(tmp_path).read_text()
    assert 'class="significant"' not in page
    assert "chance 0.5" not in page and "chance (0.5)" not in page


def test_unbalanced_permutations_use_the_null_mean_as_chance(unbalanced_store, client,
                                                             tmp_path):
    store_path, _ = unbalanced_store
    permute(store_path, tmp_path, client, n_permutations=20, progress=False)
    pvalues = pd.read_csv(tmp_path / "permutations" / "pvalues.csv").sort_values("subject")
    summary = pd.read_csv(tmp_path / "summary.csv").sort_values("subject")
    np.testing.assert_allclose(summary["chance"], pvalues["null_mean"], rtol=1e-9)
    group = pd.read_csv(tmp_path / "group.csv")
    assert group["chance"].item() == pytest.approx(pvalues["null_mean"].mean())
    test = stats.ttest_1samp(pvalues["accuracy"].to_numpy() - pvalues["null_mean"].to_numpy(),
                             0.0, alternative="greater")
    assert group["p_value"].item() == pytest.approx(test.pvalue)


def test_unbalanced_searchlight_group_map_is_tested_against_each_subjects_chance(
        unbalanced_store, client, tmp_path):
    store_path, labels = unbalanced_store
    table = searchlight(store_path, tmp_path, client, radius=4.0, progress=False)
    expected = [majority_rate(labels[subject]) for subject in table["subject"]]
    np.testing.assert_allclose(table["chance"], expected, rtol=1e-12)
    maps = np.stack([nib.load(tmp_path / "searchlight" / f"{subject}_a_vs_b.nii.gz").get_fdata()
                     for subject in table["subject"]])
    t_map = nib.load(tmp_path / "searchlight" / "group_a_vs_b_t.nii.gz").get_fdata()
    effects = maps - np.asarray(expected)[:, None, None, None]
    expected_t = effects.mean(axis=0) / (effects.std(axis=0, ddof=1) / np.sqrt(len(expected)))
    np.testing.assert_allclose(t_map, expected_t, rtol=1e-4, atol=1e-4)
    page = write_report(tmp_path).read_text()  # accuracy maps drawn above the design's chance
    assert f"(accuracy above {min(expected):.3g})" in page and "(accuracy above 0.5)" not in page


# --- a subject without one category ---------------------------------------------------------


def _three_categories(seed, without=None):
    """Per run, 5 scans each of cat, face, shoe and rest in random order (``without``: rest)."""
    rng = np.random.default_rng(seed)
    base = np.repeat(["cat", "face", "shoe", "rest"], SCANS_PER_RUN // 4)
    labels = np.concatenate([rng.permutation(base) for _ in range(N_RUNS)])
    if without is not None:
        labels[labels == without] = "rest"
    return labels


@pytest.fixture(scope="module")
def missing_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("missing")
    directories = [noise_subject(root / "s1", _three_categories(1), seed=1),
                   noise_subject(root / "s2", _three_categories(2), seed=2),
                   noise_subject(root / "s3", _three_categories(3, without="shoe"), seed=3)]
    ingest(directories, root / "store.zarr", "mask4_vt")
    return root / "store.zarr"


def test_missing_category_is_known_before_the_cluster_starts(missing_store, tmp_path):
    run = prepare_decode(missing_store, tmp_path / "all")
    assert sorted(job.key for job in run.jobs if job.subject == "s3") == [("s3", "cat", "face")]
    assert len(run.jobs) == 7
    assert run.notes == []  # every pair has 2+ subjects
    requested = prepare_decode(missing_store, tmp_path / "some", categories=["face", "shoe"])
    assert [job.subject for job in requested.jobs] == ["s1", "s2"]
    assert requested.notes == ["s3 has no scans labelled 'shoe': its pairs with shoe are "
                               "skipped (s3 has no pair left)"]
    with pytest.raises(InputError, match="no subject has scans labelled 'chair'"):
        prepare_decode(missing_store, tmp_path / "none", categories=["face", "chair"])


def test_missing_category_decodes_the_pairs_each_subject_has(missing_store, client, tmp_path):
    summary = decode(missing_store, tmp_path, client, progress=False)
    assert sorted(summary.loc[summary["subject"] == "s3", "class_b"]) == ["face"]
    group = pd.read_csv(tmp_path / "group.csv").set_index(["class_a", "class_b"])
    assert group["n_subjects"].to_dict() == {("cat", "face"): 3, ("cat", "shoe"): 2,
                                             ("face", "shoe"): 2}
    assert group["p_value"].notna().all()


def test_a_requested_category_a_subject_lacks_is_skipped_with_a_note(missing_store, tmp_path,
                                                                   capsys):
    out = tmp_path / "out"
    status = main(["decode", str(missing_store), "--out", str(out), "--workers", "1",
                   "--categories", "cat,face,shoe", "--cv", "kfold:2"])
    assert status == 0
    err = capsys.readouterr().err
    assert "note: s3 has no scans labelled 'shoe'" in err
    group = pd.read_csv(out / "group.csv").set_index(["class_a", "class_b"])
    assert group.loc[("cat", "shoe"), "n_subjects"] == 2


def test_a_pair_of_one_subject_has_no_p_value(tmp_path, client):
    root = tmp_path
    directories = [noise_subject(root / "s1", _three_categories(1), seed=1),
                   noise_subject(root / "s2", _three_categories(2, without="shoe"), seed=2)]
    ingest(directories, root / "store.zarr", "mask4_vt")
    run = prepare_decode(root / "store.zarr", root / "out")
    assert run.notes == ["cat vs shoe: 1 subject (s1); no group test (it needs 2 or more)",
                         "face vs shoe: 1 subject (s1); no group test (it needs 2 or more)"]
    decode(root / "store.zarr", root / "out", client, progress=False)  # the rerun resumes
    group = pd.read_csv(root / "out" / "group.csv").set_index(["class_a", "class_b"])
    assert group["n_subjects"].to_dict() == {("cat", "face"): 2, ("cat", "shoe"): 1,
                                             ("face", "shoe"): 1}
    assert group.loc[("cat", "face"), "p_value"] > 0
    assert group.loc[[("cat", "shoe"), ("face", "shoe")], "p_value"].isna().all()
    write_report(root / "out")  # and the report reads it
    permute(root / "store.zarr", root / "perm", client, n_permutations=3, progress=False)
    assert pd.read_csv(root / "perm" / "group.csv")["n_subjects"].tolist() == [2, 1, 1]
    searchlight(root / "store.zarr", root / "light", client, radius=4.0, progress=False)
    assert (root / "light" / "searchlight" / "group_cat_vs_face_t.nii.gz").exists()
    assert not (root / "light" / "searchlight" / "group_cat_vs_shoe_t.nii.gz").exists()


# --- names that look like numbers or missing values, and mathtext ---------------------------

HOSTILE_NAMES = ["01", "NA", "a$x$b", "None"]


def test_report_of_categories_named_like_numbers_and_missing_values(tmp_path, client):
    labels = [np.tile(np.repeat(HOSTILE_NAMES, SCANS_PER_RUN // 4), N_RUNS)] * 2
    directories = [noise_subject(tmp_path / f"s{index}", labels[index], seed=index)
                   for index in range(2)]
    ingest(directories, tmp_path / "store.zarr", "mask4_vt")
    summary = decode(tmp_path / "store.zarr", tmp_path / "out", client, progress=False)
    assert sorted(set(summary["class_a"]) | set(summary["class_b"])) == sorted(HOSTILE_NAMES)
    assert len(summary) == 2 * 6
    # The multiclass confusion (4 categories) and group table hold the names too.
    assert (tmp_path / "out" / "multiclass" / "confusion_s0.csv").exists()
    page = write_report(tmp_path / "out").read_text()
    for pair in ("01 vs NA", "01 vs None", "NA vs a$x$b", "None vs a$x$b"):
        assert pair in page
    assert "categories (01, NA, None, a$x$b)" in page
    text = re.sub(r"data:image/png;base64,[^\"]*", "", page)  # the figures' bytes
    assert ">nan<" not in text.lower() and "<td>01</td>" in text and "<td>NA</td>" in text


def test_figures_draw_dollar_signs_as_text():
    from nidecode.report.figures import accuracy_bars, confusion_matrix

    summary = pd.DataFrame({"subject": ["s1"], "class_a": ["a$x$b"], "class_b": ["$"],
                            "mean_accuracy": [0.7], "std_accuracy": [0.1], "n_folds": [4],
                            "chance": [0.5]})
    assert accuracy_bars(summary).startswith(b"\x89PNG")
    counts = pd.DataFrame([[3, 1], [0, 4]], index=["a$x$b", "$\\frac{"],
                          columns=["a$x$b", "$\\frac{"])
    assert confusion_matrix(counts, "s1: $\\frac{$").startswith(b"\x89PNG")


# --- report --anat / --mask that are not 3D images ------------------------------------------


def _report_run(out):
    out.mkdir()
    (out / "run.json").write_text('{"status": "complete", "parameters": {"cv": "logo"}}')
    pd.DataFrame({"subject": ["01"], "class_a": ["cat"], "class_b": ["face"],
                  "mean_accuracy": [0.75], "std_accuracy": [0.1], "n_folds": [4]}).to_csv(
        out / "summary.csv", index=False)
    weights = np.zeros((4, 4, 3), np.float32)
    weights[1:3, 1:3, 1] = 0.2
    (out / "weights").mkdir()
    nib.save(nib.Nifti1Image(weights, np.diag([3.0, 3.0, 3.0, 1.0])),
             out / "weights" / "01_cat_vs_face.nii.gz")
    return out


@pytest.mark.parametrize("option", ["--anat", "--mask"])
def test_report_image_options_that_are_text_files(tmp_path, capsys, option):
    out = _report_run(tmp_path / "out")
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    status = main(["report", str(out), option, str(text)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"nidecode: error: {option} {text}: not a readable NIfTI image")


def test_report_4d_anat_uses_its_mean_and_4d_mask_is_refused(tmp_path, capsys):
    out = _report_run(tmp_path / "out")
    rng = np.random.default_rng(0)
    four_d = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(rng.random((4, 4, 3, 5)).astype(np.float32),
                             np.diag([3.0, 3.0, 3.0, 1.0])), four_d)
    assert main(["report", str(out), "--anat", str(four_d)]) == 0
    assert "mean of its 5 volumes" in (out / "report.html").read_text()
    capsys.readouterr()
    status = main(["report", str(out), "--mask", str(four_d)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith(f"nidecode: error: --mask {four_d}: a 4D image with shape "
                          f"(4, 4, 3, 5); give a 3D mask")


def test_multiclass_chance_is_the_share_of_the_most_frequent_category(tmp_path, client):
    labels = np.tile(np.repeat(["a", "b", "c", "rest"], [12, 4, 4, 0]), N_RUNS)
    ingest([noise_subject(tmp_path / "s1", labels, seed=5)], tmp_path / "store.zarr",
           "mask4_vt")
    decode(tmp_path / "store.zarr", tmp_path / "out", client, progress=False)
    multiclass = pd.read_csv(tmp_path / "out" / "multiclass" / "accuracy.csv")
    assert multiclass["chance"].item() == pytest.approx(0.6)
    assert "(chance 0.600)" in write_report(tmp_path / "out").read_text()


def test_balanced_real_slice_keeps_chance_half_and_its_accuracies(haxby_store, client,
                                                                   tmp_path):
    decode(haxby_store["run"], tmp_path, client, categories=["face", "cat"], progress=False)
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert (scores["chance"] == 0.5).all()  # 9 face and 9 cat scans in every run
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary["chance"].item() == 0.5
    assert summary["mean_accuracy"].item() == pytest.approx(np.mean(
        [.9444, .5, .8889, .8889, .9444, 1, .9444, .9444, .5, .5, .7222, .9444]), abs=5e-5)
    assert not (tmp_path / "group.csv").exists()  # one subject: no group test


def test_balanced_group_p_values_are_those_against_half():
    from nidecode.results import group_table

    summary = pd.DataFrame({"subject": ["s1", "s2", "s3"], "class_a": "a", "class_b": "b",
                            "mean_accuracy": [0.61, 0.7, 0.66], "chance": 0.5})
    group = group_table(summary)
    expected = stats.ttest_1samp([0.61, 0.7, 0.66], 0.5, alternative="greater")
    assert group["p_value"].item() == expected.pvalue and group["chance"].item() == 0.5
    assert group_table(summary.drop(columns="chance"))["p_value"].item() == expected.pvalue
