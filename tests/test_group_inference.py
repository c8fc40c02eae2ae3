"""Group inference on searchlight maps (``nidecode group``): Stelzer, TFCE, prevalence.

Most inputs are built directly in the layout ``permute --searchlight`` writes
(observed maps, p maps, permutation maps as ``.npy``, run.json), with a
planted region whose accuracy is known; one slow test runs the real
``permute --searchlight`` on tiny subjects to check that layout.
"""

import json
import warnings

import dask.config
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from nidecode import inference
from nidecode.analyses.group import execute_group, group, prepare_group
from nidecode.cli import main
from nidecode.outdir import inference_map_name, null_name, searchlight_name, sphere_size_name
from tests.conftest import one_line_error, tiny_subject

AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
SHAPE = (8, 8, 6)
REGION = (slice(2, 5), slice(2, 5), slice(2, 5))  # 27 voxels
N_TEST = 96  # test scans per subject: accuracies are multiples of 1/96


def _accuracies(rng, p, size):
    return (rng.binomial(N_TEST, p, size=size) / N_TEST).astype(np.float32)


def make_group_dir(path, *, n_subjects=6, n_permutations=30, effect=0.78, seed=0,
                   command="permute", affines=None, pairs=(("cat", "face"),)):
    """A directory as 'permute --searchlight' (or 'searchlight') writes it, planted region."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, bool)
    mask[1:-1, 1:-1, :] = True
    planted = np.zeros(SHAPE, bool)
    planted[REGION] = True
    subjects = [f"sub{index:02d}" for index in range(n_subjects)]
    rows = []
    for class_a, class_b in pairs:
        for index, subject in enumerate(subjects):
            affine = AFFINE if affines is None else affines[index]
            p = np.where(planted[mask], effect, 0.5)
            observed = _accuracies(rng, p, mask.sum())
            volume = np.zeros(SHAPE, np.float32)
            volume[mask] = observed
            _save(path / searchlight_name(subject, class_a, class_b), volume, affine)
            if command == "permute":
                null = _accuracies(rng, 0.5, (n_permutations, mask.sum()))
                _save_null(path / null_name(subject, class_a, class_b, searchlight=True), null)
                p_map = np.zeros(SHAPE, np.float32)
                p_map[mask] = (1 + (null >= observed).sum(axis=0)) / (1 + n_permutations)
                _save(path / searchlight_name(subject, class_a, class_b, "p"), p_map, affine)
            else:
                _save(path / sphere_size_name(subject), mask.astype(np.float32) * 7, affine)
            rows.append({"subject": subject, "class_a": class_a, "class_b": class_b,
                         "chance": 0.5})
    table = pd.DataFrame(rows)
    if command == "permute":
        (path / "permutations").mkdir(parents=True, exist_ok=True)
        table.drop(columns="chance").to_csv(path / "permutations/searchlight.csv", index=False)
    else:
        table.to_csv(path / "searchlight.csv", index=False)
    identity = {"command": command, "radius": 4.0, "subjects": dict.fromkeys(subjects, "x")}
    (path / "run.json").write_text(json.dumps({"status": "complete", "identity": identity}))
    return path, planted


def _save(target, volume, affine):
    target.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume, affine), target)


def _save_null(target, null):
    target.parent.mkdir(parents=True, exist_ok=True)
    np.save(target, null)


def _map(out, method, statistic, pair=("cat", "face")):
    return nib.load(out / "group" / inference_map_name(*pair, method, statistic)).get_fdata()


# --- clusters and draws, by hand ----------------------------------------------------------------


def test_connectivity_joins_faces_edges_corners_and_never_crosses_the_mask():
    shape = (3, 3, 3)
    index = np.arange(27)
    supra = np.zeros(27, bool)
    supra[np.ravel_multi_index([(0, 1), (0, 1), (0, 0)], shape)] = True  # an edge apart
    supra[np.ravel_multi_index([(2,), (2,), (2,)], shape)] = True  # alone
    assert inference.label_clusters(supra, index, shape, 6)[1] == 3
    assert inference.label_clusters(supra, index, shape, 18)[1] == 2
    # (1, 1, 1): a face of (1, 1, 0), a corner of (0, 0, 0) and of (2, 2, 2).
    supra[np.ravel_multi_index([(1,), (1,), (1,)], shape)] = True
    assert inference.label_clusters(supra, index, shape, 6)[1] == 3
    assert inference.label_clusters(supra, index, shape, 18)[1] == 2
    assert inference.label_clusters(supra, index, shape, 26)[1] == 1
    # A line of five voxels whose middle one is outside the tested voxels: two clusters.
    line = np.array([0, 1, 3, 4])
    labels, n = inference.label_clusters(np.ones(4, bool), line, (5, 1, 1), 26)
    assert n == 2 and list(labels) == [1, 1, 2, 2]


def test_stelzer_machinery_matches_a_hand_computed_example():
    nulls = [np.array([[0.5, 0.6, 0.4], [0.7, 0.5, 0.5]]),
             np.array([[0.5, 0.4, 0.6], [0.3, 0.6, 0.5]])]
    draws = inference.draw_combinations([2, 2], 100, seed=0)  # all 4, subject 0 fastest
    assert draws.tolist() == [[0, 0], [1, 0], [0, 1], [1, 1]]
    observed = np.array([[0.7, 0.7, 0.4], [0.5, 0.6, 0.8]])
    result = inference.stelzer_test(observed, nulls, draws, 0.4, np.arange(3), (3, 1, 1))
    # Null means: [.5 .5 .5], [.6 .45 .55], [.4 .6 .5], [.5 .55 .5]; p <= 0.4 of 1 + 4
    # draws: above the 2nd largest null mean of each voxel (a tie is not above).
    np.testing.assert_allclose(result["thresholds"], [0.5, 0.55, 0.5])
    assert result["null_max"].tolist() == [0, 1, 1, 0]
    np.testing.assert_allclose(result["mean"], [0.6, 0.65, 0.6])
    assert result["labels"].tolist() == [1, 1, 1]
    np.testing.assert_allclose(result["p_cluster"], [1 / 5])  # no null cluster >= 3


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_compiled_draw_kernels_equal_the_numpy_and_scipy_path(connectivity):
    rng = np.random.default_rng(connectivity)
    shape = (7, 6, 5)
    index = np.flatnonzero(rng.random(shape).ravel() < 0.8)  # a mask with holes
    nulls = [_accuracies(rng, 0.5, (int(rng.integers(5, 9)), len(index))) for _ in range(4)]
    draws = inference.draw_combinations([len(null) for null in nulls], 300, seed=1)
    means = inference.stelzer_null_means(nulls, draws)
    stacked, rows = inference.stack_maps(nulls, draws)
    top = inference.null_top(stacked, rows, 31)
    np.testing.assert_array_equal(top, inference.top_values(means, 31))
    expected = inference.max_cluster_sizes(inference.supra_threshold(means, top[30]), index,
                                           shape, connectivity)
    assert expected.max() > 3  # clusters of several voxels are compared
    np.testing.assert_array_equal(
        inference.null_max_sizes(stacked, rows, top[30], index, shape, connectivity), expected)


def test_draws_are_distinct_and_fixed_by_the_seed():
    many = inference.draw_combinations([10, 10, 10], 500, seed=3)
    assert len(np.unique(many, axis=0)) == 500
    np.testing.assert_array_equal(many, inference.draw_combinations([10, 10, 10], 500, 3))
    assert not np.array_equal(many, inference.draw_combinations([10, 10, 10], 500, 4))
    every = inference.draw_combinations([3, 4], 100, seed=0, skip_first=True)
    assert len(every) == 11 and len(np.unique(every, axis=0)) == 11
    assert not (every == 0).all(axis=1).any()
    huge = inference.draw_combinations([100] * 12, 50, seed=1)  # 10^24 combinations
    assert huge.shape == (50, 12) and huge.max() < 100


def test_stelzer_family_wise_false_positive_rate_is_at_most_nominal():
    rng = np.random.default_rng(0)
    shape, repeats, alpha = (6, 6, 4), 400, 0.05
    index = np.arange(np.prod(shape))
    false_positives = 0
    for _ in range(repeats):
        # No signal: the actual maps come from the permutation maps' distribution.
        nulls = [_accuracies(rng, 0.5, (20, len(index))) for _ in range(4)]
        observed = _accuracies(rng, 0.5, (4, len(index)))
        draws = inference.draw_combinations([20] * 4, 200, seed=int(rng.integers(1 << 30)))
        result = inference.stelzer_test(observed, nulls, draws, 0.05, index, shape)
        false_positives += bool((result["p_cluster"] <= alpha).any())
    spread = 2.5 * np.sqrt(alpha * (1 - alpha) / repeats)
    assert false_positives / repeats <= alpha + spread


def test_prevalence_matches_allefelds_algorithm_step_by_step():
    rng = np.random.default_rng(1)
    maps = [_accuracies(rng, 0.6, (8, 50)) for _ in range(5)]  # row 0: observed
    for subject_maps in maps:
        subject_maps[0, :10] = 0.9  # information in 10 voxels of every subject
    draws = inference.draw_combinations([8] * 5, 300, seed=2, skip_first=True)
    observed_min = np.min([m[0] for m in maps], axis=0)
    counts, maxima = inference.prevalence_counts(maps, draws, observed_min)
    result = inference.prevalence_results(observed_min, counts, maxima, 5, alpha=0.05)
    # The reference implementation's loop: j = 1 is the neutral permutation.
    u_rank, c_rank = np.zeros(50), np.zeros(50)
    for combination in np.vstack([np.zeros((1, 5), int), draws]):
        m = np.min([maps[s][combination[s]] for s in range(5)], axis=0)
        u_rank += m >= observed_min - 1e-9
        c_rank += m.max() >= observed_min - 1e-9
    p2 = len(draws) + 1
    pu, pc = u_rank / p2, c_rank / p2
    np.testing.assert_allclose(result["p"], pu)
    np.testing.assert_allclose(result["p_fwe"], pc)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha_c = (0.05 - pc) / (1 - pc)
        gamma = (alpha_c ** (1 / 5) - pu ** (1 / 5)) / (1 - pu ** (1 / 5))
    defined = alpha_c >= pu
    assert defined[:10].all() and not defined[10:].any()
    np.testing.assert_allclose(result["gamma"][defined], gamma[defined])
    assert np.isnan(result["gamma"][~defined]).all()
    expected_max = (((0.05 - 1 / p2) / (1 - 1 / p2)) ** 0.2 - (1 / p2) ** 0.2) / (
        1 - (1 / p2) ** 0.2)
    assert result["gamma_max"] == pytest.approx(expected_max)
    assert np.nanmax(result["gamma"], initial=0) <= expected_max + 1e-12


# --- the command on a cluster -------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return make_group_dir(tmp_path_factory.mktemp("planted") / "run")


def test_tfce_equals_nilearns_permuted_ols_on_the_same_maps_and_flips(client, tmp_path):
    from nilearn.maskers import NiftiMasker
    from nilearn.mass_univariate import permuted_ols

    source, _ = make_group_dir(tmp_path / "run", command="searchlight", seed=5)
    with dask.config.set({"nidecode.draws-per-task": 64}):  # 4 tasks of nilearn's flips
        assert main(["group", str(source), "--method", "tfce", "--n-draws", "200", "--seed",
                     "7", "--scheduler", client.scheduler.address, "--quiet"]) == 0
    assert len(list((source / "group" / "parts").glob("*.npz"))) == 4
    mask = np.zeros(SHAPE, bool)
    mask[1:-1, 1:-1, :] = True
    masker = NiftiMasker(mask_img=nib.Nifti1Image(mask.astype(np.uint8), AFFINE)).fit()
    maps = np.stack([nib.load(source / searchlight_name(f"sub{s:02d}", "cat", "face"))
                     .get_fdata()[mask] for s in range(6)])
    expected = permuted_ols(np.ones((6, 1)), maps - 0.5, model_intercept=False, n_perm=200,
                            two_sided_test=False, random_state=7, masker=masker, tfce=True,
                            output_type="dict")
    np.testing.assert_allclose(_map(source, "tfce", "tfce")[mask], expected["tfce"][0],
                               rtol=1e-6)
    np.testing.assert_allclose(_map(source, "tfce", "p_fwe")[mask],
                               10 ** -expected["logp_max_tfce"][0], rtol=1e-6)
    clusters = pd.read_csv(source / "group" / "clusters.csv")
    assert set(clusters["method"]) == {"tfce"}


@pytest.mark.slow
def test_every_method_finds_the_planted_region_and_little_else(client, planted, tmp_path):
    source, region = planted
    tested = np.zeros(SHAPE, bool)
    tested[1:-1, 1:-1, :] = True
    outside = tested & ~region
    for method, options in (("stelzer", ["--cluster-p", "0.01"]), ("tfce", []),
                            ("prevalence", [])):
        assert main(["group", str(source), "--method", method, "--n-draws", "1000",
                     "--out", str(tmp_path), "--scheduler", client.scheduler.address,
                     "--quiet", *options]) == 0
        significant = _map(tmp_path, method, "p_fwe") < 0.05
        assert significant[region].mean() >= 0.8, method
        assert significant[outside].sum() <= 3, method
    # Six subjects and 1001 second-level permutations bound gamma_0 at 0.42 (Eq. 27):
    # most of the region reaches that bound.
    gamma = _map(tmp_path, "prevalence", "gamma")
    p2, n = 1001, 6
    bound = ((((0.05 - 1 / p2) / (1 - 1 / p2)) ** (1 / n) - (1 / p2) ** (1 / n))
             / (1 - (1 / p2) ** (1 / n)))
    assert np.isclose(gamma[region], bound, rtol=1e-5).mean() >= 0.8
    assert (gamma[outside] > 0).sum() <= 3
    clusters = pd.read_csv(tmp_path / "group" / "clusters.csv")
    assert set(clusters["method"]) == {"stelzer", "tfce"}  # both kept
    for method in ("stelzer", "tfce"):
        biggest = clusters[clusters["method"] == method].iloc[0]
        assert biggest["p_fwe"] < 0.05 and biggest["size_voxels"] >= 20
        assert biggest["size_mm3"] == biggest["size_voxels"] * 27
        assert 6 <= biggest["peak_x_mm"] <= 12  # region voxels 2..4, 3 mm each
    manifest = json.loads((tmp_path / "group" / "run.json").read_text())
    assert manifest["status"] == "complete" and set(manifest["methods"]) == set(
        ("stelzer", "tfce", "prevalence"))


@pytest.mark.parametrize("method", ["stelzer", "prevalence"])
def test_results_do_not_depend_on_the_split_and_equal_the_serial_test(client, planted,
                                                                      tmp_path, method):
    source, _ = planted
    outputs = []
    for per_task in (37, 200):
        out = tmp_path / f"split{per_task}"
        run = prepare_group(source, method=method, out=out, n_draws=300, cluster_p=0.05,
                            draws_per_task=per_task)
        execute_group(run, client, progress=False)
        outputs.append(out)
    for statistic in (("mean", "p_fwe") if method == "stelzer" else ("gamma", "p", "p_fwe")):
        np.testing.assert_array_equal(_map(outputs[0], method, statistic),
                                      _map(outputs[1], method, statistic))
    if method == "stelzer":
        maps = run.pairs[0]
        nulls = [np.load(path)[:, columns] for path, columns in zip(maps.null_paths,
                                                                    maps.columns, strict=True)]
        serial = inference.stelzer_test(maps.observed, nulls, run.draws[("cat", "face")], 0.05,
                                        maps.volume_index, SHAPE)
        labels = serial["labels"]
        expected = np.where(labels > 0, np.r_[1.0, serial["p_cluster"]][labels], 1.0)
        p_map = _map(outputs[0], method, "p_fwe").ravel()[maps.volume_index]
        np.testing.assert_allclose(p_map, expected, rtol=1e-6)


def test_a_killed_run_resumes_to_identical_results(client, planted, tmp_path):
    source, _ = planted
    arguments = ["group", str(source), "--method", "stelzer", "--n-draws", "400",
                 "--cluster-p", "0.05", "--out", str(tmp_path), "--scheduler",
                 client.scheduler.address, "--quiet"]
    with dask.config.set({"nidecode.draws-per-task": 50}):
        assert main(arguments) == 0
        before = {statistic: _map(tmp_path, "stelzer", statistic)
                  for statistic in ("mean", "p_fwe")}
        table = (tmp_path / "group" / "clusters.csv").read_text()
        # A kill mid-run: half the saved blocks, no final files, run.json says running.
        parts = sorted((tmp_path / "group" / "parts").glob("*.npz"))
        assert len(parts) == 16  # 8 blocks of draws x 2 phases
        for part in parts[::2]:
            part.unlink()
        for name in ("clusters.csv", inference_map_name("cat", "face", "stelzer", "p_fwe")):
            (tmp_path / "group" / name).unlink()
        manifest = json.loads((tmp_path / "group" / "run.json").read_text())
        manifest["status"] = "running"
        (tmp_path / "group" / "run.json").write_text(json.dumps(manifest))
        assert main(arguments) == 0
    assert len(list((tmp_path / "group" / "parts").glob("*.npz"))) == 16
    for statistic, values in before.items():
        np.testing.assert_array_equal(_map(tmp_path, "stelzer", statistic), values)
    assert (tmp_path / "group" / "clusters.csv").read_text() == table


@pytest.mark.slow
def test_group_reads_what_permute_searchlight_writes(client, tmp_path):
    for index in range(3):
        tiny_subject(tmp_path / "data" / f"s{index}", seed=index, n_runs=4, shape=(5, 4, 3))
    store = tmp_path / "store.zarr"
    assert main(["ingest", *(str(tmp_path / "data" / f"s{index}") for index in range(3)),
                 "--store", str(store), "--mask", "mask4_vt", "--workers", "1",
                 "--quiet"]) == 0
    run = tmp_path / "permuted"
    assert main(["permute", str(store), "--out", str(run), "--searchlight", "--radius", "4",
                 "--n-permutations", "9", "--scheduler", client.scheduler.address,
                 "--quiet"]) == 0
    for method in ("stelzer", "tfce", "prevalence"):
        assert main(["group", str(run), "--method", method, "--n-draws", "200",
                     "--cluster-p", "0.05", "--scheduler", client.scheduler.address,
                     "--quiet"]) == 0
        assert (run / "group" / inference_map_name("cat", "face", method, "p_fwe")).exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert group(run, client, method="tfce", n_draws=50, progress=False).shape[1] == 11


# --- bad input ------------------------------------------------------------------------------------


def test_a_searchlight_without_permutations_says_to_run_permute(tmp_path, capsys):
    source, _ = make_group_dir(tmp_path / "run", command="searchlight", n_subjects=2)
    one_line_error(capsys, main(["group", str(source), "--method", "stelzer"]),
                   r"run 'nidecode permute --searchlight'")
    one_line_error(capsys, main(["group", str(tmp_path / "nothing"), "--method", "prevalence"]),
                   r"no readable run.json")
    manifest = json.loads((source / "run.json").read_text())
    manifest["identity"].update(command="permute", radius=None)  # ROI permutations
    (source / "run.json").write_text(json.dumps(manifest))
    one_line_error(capsys, main(["group", str(source), "--method", "tfce"]),
                   r"holds no searchlight maps \(permute run\); run 'nidecode permute "
                   r"--searchlight' first")


def test_subjects_on_different_grids_are_refused(tmp_path, capsys):
    shifted = AFFINE.copy()
    shifted[0, 3] = 2.0
    source, _ = make_group_dir(tmp_path / "run", n_subjects=3, n_permutations=3,
                               affines=[AFFINE, AFFINE, shifted])
    one_line_error(capsys, main(["group", str(source), "--method", "tfce"]),
                   r"'sub00' and 'sub02' are on different grids")


def test_fewer_than_two_subjects_is_refused(tmp_path, capsys):
    source, _ = make_group_dir(tmp_path / "run", n_subjects=1, n_permutations=3)
    one_line_error(capsys, main(["group", str(source), "--method", "stelzer"]),
                   r"fewer than 2 subjects")


@pytest.mark.parametrize(("options", "pattern"), [
    (["--connectivity", "8"], r"--connectivity 8: must be 6 \(faces\), 18"),
    (["--cluster-p", "0"], r"--cluster-p 0: must be in \(0, 1\)"),
    (["--cluster-p", "1.5"], r"--cluster-p 1.5: must be in \(0, 1\)"),
    (["--cluster-p", "0.001", "--n-draws", "100"], r"draws cannot give .* --n-draws to at "
                                                   r"least 1000"),
    (["--method", "tfce", "--connectivity", "26"], r"TFCE uses nilearn's face connectivity"),
    (["--alpha", "0"], r"--alpha 0: must be in \(0, 1\)"),
    (["--n-draws", "0"], r"--n-draws 0: must be an int in the range \[1, 10000000\]"),
])
def test_bad_options_are_one_line(tmp_path, capsys, options, pattern):
    source, _ = make_group_dir(tmp_path / "run", n_subjects=2, n_permutations=3)
    method = [] if "--method" in options else ["--method", "stelzer"]
    one_line_error(capsys, main(["group", str(source), *method, *options]), pattern)
    assert not (source / "group").exists()  # refused before anything is claimed


@pytest.mark.parametrize("where", ["directory", "out"])
def test_urls_are_refused_in_one_line(tmp_path, capsys, where):
    source, _ = make_group_dir(tmp_path / "run", n_subjects=2, n_permutations=3)
    argv = (["s3://bucket/run"] if where == "directory"
            else [str(source), "--out", "memory://bucket/out"])
    one_line_error(capsys, main(["group", *argv, "--method", "tfce"]),
                   r"nidecode group reads and writes local directories .* not URLs yet")
    assert not (source / "group").exists()


def test_report_shows_the_thresholded_maps_and_the_cluster_table(client, planted, tmp_path):
    import shutil

    from nidecode.report import write_report

    source = tmp_path / "run"
    shutil.copytree(planted[0], source)
    for method in ("stelzer", "prevalence"):
        assert main(["group", str(source), "--method", method, "--n-draws", "300",
                     "--cluster-p", "0.01", "--scheduler", client.scheduler.address,
                     "--quiet"]) == 0
    page = write_report(source).read_text()
    assert "Group inference" in page and "group/clusters.csv" in page
    assert page.count("<img") >= 2  # one thresholded map per method
    biggest = pd.read_csv(source / "group" / "clusters.csv").iloc[0]
    assert f"<td class=\"num\">{biggest['size_voxels']}</td>" in page


def test_blocks_read_row_by_row_equal_blocks_from_the_cached_maps(planted, tmp_path,
                                                                 monkeypatch):
    from nidecode.analyses import group as group_module

    run = prepare_group(planted[0], method="stelzer", out=tmp_path, n_draws=300,
                        cluster_p=0.05)
    maps, draws = run.pairs[0], run.draws[("cat", "face")][:120]
    arguments = (("k",), maps.null_paths, maps.columns, draws)
    cached = group_module.stelzer_top_task(*arguments, 16).arrays["top"]
    monkeypatch.setattr(group_module, "CACHE_BYTES", 0)
    group_module._CACHE.clear()
    np.testing.assert_array_equal(group_module.stelzer_top_task(*arguments, 16).arrays["top"],
                                  cached)


def test_pairs_run_together_each_as_its_serial_test(client, tmp_path):
    pairs = (("cat", "face"), ("cat", "house"))
    source, _ = make_group_dir(tmp_path / "run", n_subjects=3, n_permutations=12,
                               pairs=pairs, seed=3)
    run = prepare_group(source, method="stelzer", n_draws=500, cluster_p=0.05,
                        draws_per_task=120)
    table = execute_group(run, client, progress=False)
    assert {tuple(pair) for pair in table[["class_a", "class_b"]].values} <= set(pairs)
    for maps in run.pairs:
        nulls = [np.load(path)[:, columns] for path, columns in zip(maps.null_paths,
                                                                    maps.columns, strict=True)]
        serial = inference.stelzer_test(maps.observed, nulls,
                                        run.draws[(maps.class_a, maps.class_b)], 0.05,
                                        maps.volume_index, SHAPE)
        labels = serial["labels"]
        expected = np.where(labels > 0, np.r_[1.0, serial["p_cluster"]][labels], 1.0)
        p_map = _map(source, "stelzer", "p_fwe", (maps.class_a, maps.class_b))
        np.testing.assert_allclose(p_map.ravel()[maps.volume_index], expected, rtol=1e-6)
