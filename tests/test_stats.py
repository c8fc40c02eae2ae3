"""Permutation schemes, p-values, group tests and one-vs-one votes (nidecode.stats)."""

import itertools

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from sklearn.datasets import make_classification
from sklearn.svm import SVC

from nidecode.errors import InputError
from nidecode.stats import (
    confusion_matrix_table,
    count_distinct_permutations,
    fold_metrics,
    group_test,
    label_blocks,
    max_statistic_p_values,
    multiclass_vote,
    pair_fold_metrics,
    permutation_p_value,
    permutation_p_values,
    permute_within_runs,
    sign_flip_test,
)


@st.composite
def blocked_designs(draw):
    """Labels and runs of a blocked design: runs of blocks of random labels and lengths."""
    labels, runs = [], []
    for run in range(draw(st.integers(1, 4))):
        blocks = draw(st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 4)),
                               min_size=1, max_size=6))
        for label, length in blocks:
            labels += [label] * length
            runs += [10 * run + 3] * length  # run ids need not be 0, 1, 2, ...
    return np.array(labels), np.array(runs)


def _counts_per_run(labels, runs):
    return sorted(zip(runs.tolist(), labels.tolist(), strict=True))


def _blocks_of(labels, runs):
    """(run, length, label) of every block, sorted."""
    block = label_blocks(labels, runs)
    starts = np.flatnonzero(np.r_[True, np.diff(block) != 0])
    lengths = np.bincount(block)
    return sorted(zip(runs[starts].tolist(), lengths.tolist(), labels[starts].tolist(),
                      strict=True))


# --- permutation schemes ----------------------------------------------------------------


@settings(deadline=None, max_examples=150)
@given(blocked_designs(), st.integers(0, 2**32 - 1), st.booleans())
def test_permutations_keep_the_label_counts_of_every_run(design, seed, blocks):
    labels, runs = design
    permuted = permute_within_runs(labels, runs, np.random.default_rng(seed), blocks=blocks)
    assert permuted.dtype == labels.dtype
    assert _counts_per_run(permuted, runs) == _counts_per_run(labels, runs)


@settings(deadline=None, max_examples=150)
@given(blocked_designs(), st.integers(0, 2**32 - 1))
def test_blocks_move_whole_and_only_among_blocks_of_their_length(design, seed):
    labels, runs = design
    permuted = permute_within_runs(labels, runs, np.random.default_rng(seed), blocks=True)
    block = label_blocks(labels, runs)
    for index in np.unique(block):
        members = np.flatnonzero(block == index)
        np.testing.assert_array_equal(np.diff(members), 1)  # contiguous
        assert len(set(permuted[members].tolist())) == 1  # single-labelled
    # Every block took the label of a block of its run and length.
    relabelled = sorted(zip(runs[np.r_[True, np.diff(block) != 0]].tolist(),
                            np.bincount(block).tolist(),
                            permuted[np.r_[True, np.diff(block) != 0]].tolist(), strict=True))
    assert relabelled == _blocks_of(labels, runs)


@settings(deadline=None, max_examples=60)
@given(blocked_designs(), st.booleans())
def test_count_of_distinct_permutations_is_what_sampling_reaches(design, blocks):
    labels, runs = design
    count = count_distinct_permutations(labels, runs, blocks=blocks)
    assume(count <= 24)
    rng = np.random.default_rng(0)
    seen = {tuple(permute_within_runs(labels, runs, rng, blocks=blocks)) for _ in
            range(40 * count)}
    assert len(seen) == count  # missing one of them has probability < count * e**-40


def test_label_blocks_split_on_label_and_run_changes():
    labels = np.array(["a", "a", "b", "b", "b", "a", "a", "a"])
    runs = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(label_blocks(labels, runs), [0, 0, 1, 1, 2, 3, 3, 3])


def test_blocks_of_unequal_length_keep_their_labels_unless_a_partner_exists():
    # Run 0: a(3) b(3) a(2) b(4). The two blocks of length 3 may swap labels; the blocks of
    # length 2 and 4 have no partner and keep theirs.
    labels = np.array(list("aaabbbaabbbb"))
    runs = np.zeros(12, dtype=int)
    assert count_distinct_permutations(labels, runs, blocks=True) == 2
    outcomes = {"".join(permute_within_runs(labels, runs, seed)) for seed in range(50)}
    assert outcomes == {"aaabbbaabbbb", "bbbaaaaabbbb"}


def test_haxby_like_design_counts():
    # 12 runs, one block of 9 scans per category of the pair: 2 relabellings per run.
    labels = np.tile(np.repeat(["face", "house"], 9), 12)
    runs = np.repeat(np.arange(12), 18)
    assert count_distinct_permutations(labels, runs, blocks=True) == 2**12
    exact = count_distinct_permutations(labels, runs, blocks=False)
    assert exact == 48620**12 and isinstance(exact, int)  # C(18, 9) ** 12, beyond int64


def test_block_permutations_are_uniform_over_the_allowed_relabellings():
    labels = np.tile(np.repeat(list("abab"), 2), 2)  # 2 runs x 4 blocks of 2 scans
    runs = np.repeat([0, 1], 8)
    assert count_distinct_permutations(labels, runs) == 36
    rng = np.random.default_rng(1)
    draws = [tuple(permute_within_runs(labels, runs, rng)) for _ in range(7200)]
    _, frequencies = np.unique(np.array(draws), axis=0, return_counts=True)
    assert len(frequencies) == 36
    assert scipy_stats.chisquare(frequencies).pvalue > 0.001


def test_the_same_seed_gives_the_same_permutation():
    labels = np.tile(list("aabbab"), 4)
    runs = np.repeat(np.arange(4), 6)
    first = permute_within_runs(labels, runs, 7, blocks=False)
    np.testing.assert_array_equal(first, permute_within_runs(labels, runs, 7, blocks=False))
    assert not np.array_equal(first, permute_within_runs(labels, runs, 8, blocks=False))


def test_mismatched_labels_and_runs_are_refused():
    with pytest.raises(ValueError, match="one length"):
        permute_within_runs(np.array(["a", "b"]), np.array([0, 0, 1]), 0)


# --- p-values ------------------------------------------------------------------------------


def test_permutation_p_value_counts_the_observed_labelling():
    null = np.array([0.4, 0.55, 0.6, 0.7])
    assert permutation_p_value(0.9, null) == pytest.approx(1 / 5)
    assert permutation_p_value(0.6, null) == pytest.approx(3 / 5)  # ties count
    assert permutation_p_value(0.1, null) == 1.0


def test_rounding_differences_count_as_ties():
    # 0.1 + 0.2 is 0.30000000000000004: the same accuracy computed in another order.
    assert permutation_p_value(0.1 + 0.2, np.array([0.3, 0.0])) == pytest.approx(2 / 3)


@settings(deadline=None, max_examples=200)
@given(st.integers(1, 30), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_p_values_are_in_0_1_and_max_statistic_ones_are_larger(n_null, n_voxels, seed):
    # Integer-valued statistics (like counts of correct predictions): many exact ties.
    rng = np.random.default_rng(seed)
    observed = rng.integers(0, 8, n_voxels).astype(float)
    null = rng.integers(0, 8, (n_null, n_voxels)).astype(float)
    uncorrected = permutation_p_values(observed, null)
    corrected = max_statistic_p_values(observed, null)
    expected = [(1 + np.sum(null[:, v] >= observed[v])) / (1 + n_null)
                for v in range(n_voxels)]
    np.testing.assert_allclose(uncorrected, expected)
    expected_fwe = [(1 + np.sum(null.max(axis=1) >= observed[v])) / (1 + n_null)
                    for v in range(n_voxels)]
    np.testing.assert_allclose(corrected, expected_fwe)
    assert np.all(uncorrected >= 1 / (1 + n_null)) and np.all(uncorrected <= 1)
    assert np.all(corrected >= uncorrected)
    assert permutation_p_value(observed[0], null[:, 0]) == pytest.approx(uncorrected[0])


def test_max_statistic_of_one_voxel_is_the_uncorrected_p_value():
    rng = np.random.default_rng(3)
    observed, null = rng.normal(size=1), rng.normal(size=(99, 1))
    np.testing.assert_array_equal(max_statistic_p_values(observed, null),
                                  permutation_p_values(observed, null))


def test_an_empty_null_is_refused():
    with pytest.raises(ValueError, match="at least one permutation"):
        permutation_p_values(np.zeros(3), np.zeros((0, 3)))


def _blocked_pair_design():
    # 6 runs x 4 alternating blocks of 5 scans: 6 relabellings per run. (In an a b b a run
    # the two b blocks would be one block of 10 scans, with no partner of its length.)
    labels = np.concatenate([np.repeat(list(order), 5) for order in ["abab", "baba"] * 3])
    runs = np.repeat(np.arange(6), 20)
    assert count_distinct_permutations(labels, runs) == 6**6
    return labels, runs


def _permutation_test(signal, labels, runs, rng, blocks, n_permutations=99):
    def statistic(assigned):  # mean difference b - a, for a stack of labellings
        is_b = assigned == "b"
        return (signal * is_b).sum(-1) / is_b.sum(-1) - (signal * ~is_b).sum(-1) / (
            ~is_b).sum(-1)

    null = np.array([permute_within_runs(labels, runs, rng, blocks=blocks)
                     for _ in range(n_permutations)])
    return permutation_p_value(statistic(labels), statistic(null))


def _simulate(rng, labels, runs, effect, block_sd):
    block = label_blocks(labels, runs)
    noise = rng.normal(size=len(labels)) + block_sd * rng.normal(size=block.max() + 1)[block]
    return noise + effect * (labels == "b")


@pytest.mark.parametrize("blocks", [True, False])
def test_p_values_are_uniform_on_null_data(blocks):
    labels, runs = _blocked_pair_design()
    rng = np.random.default_rng(11)
    p_values = [_permutation_test(_simulate(rng, labels, runs, 0.0, 0.0), labels, runs, rng,
                                  blocks) for _ in range(200)]
    assert scipy_stats.kstest(p_values, "uniform").pvalue > 0.01
    assert 0.01 < np.mean(np.array(p_values) <= 0.05) < 0.10


def test_block_noise_needs_block_permutations():
    # Noise shared by the scans of a block: permuting blocks stays valid, permuting scans
    # treats 5 correlated scans as 5 independent ones and finds effects that are not there.
    labels, runs = _blocked_pair_design()
    rng = np.random.default_rng(12)
    data = [_simulate(rng, labels, runs, 0.0, 2.0) for _ in range(200)]
    by_block = [_permutation_test(signal, labels, runs, rng, True) for signal in data]
    by_scan = [_permutation_test(signal, labels, runs, rng, False) for signal in data]
    assert scipy_stats.kstest(by_block, "uniform").pvalue > 0.01
    assert np.mean(np.array(by_block) <= 0.05) < 0.10
    assert np.mean(np.array(by_scan) <= 0.05) > 0.15  # 0.21 here; 0.05 if it were valid


def test_a_planted_effect_gets_the_smallest_p_value():
    labels, runs = _blocked_pair_design()
    rng = np.random.default_rng(13)
    p_values = [_permutation_test(_simulate(rng, labels, runs, 1.5, 0.0), labels, runs, rng,
                                  True) for _ in range(20)]
    np.testing.assert_allclose(p_values, 1 / 100)


# --- group level ---------------------------------------------------------------------------


def test_group_t_test_against_chance():
    result = group_test(np.array([0.6, 0.7, 0.8]))
    # t = 0.2 / (0.1 / sqrt(3)); for 2 degrees of freedom P(T > t) = 1/2 - t / (2 sqrt(2 + t^2))
    t = 2 * np.sqrt(3)
    assert result["t"] == pytest.approx(t)
    assert result["p_value"] == pytest.approx(0.5 - t / (2 * np.sqrt(2 + t**2)))
    assert result["mean"] == pytest.approx(0.7) and result["n"] == 3
    below = group_test(np.array([0.4, 0.45, 0.5]))  # t = -sqrt(3): one-sided p above 0.5
    assert below["p_value"] == pytest.approx(0.5 + np.sqrt(3) / (2 * np.sqrt(5)))
    four_classes = group_test(np.array([0.35, 0.4, 0.45]), chance=0.25)  # t = 3 sqrt(3)
    assert four_classes["p_value"] == pytest.approx(0.5 - np.sqrt(27) / (2 * np.sqrt(29)))


def test_group_test_without_variance_is_undefined():
    result = group_test(np.array([0.7, 0.7, 0.7]))
    assert np.isnan(result["t"]) and np.isnan(result["p_value"]) and result["n"] == 3


def test_group_test_needs_two_subjects():
    with pytest.raises(InputError, match="at least 2"):
        group_test(np.array([0.8]))


def test_sign_flip_test_agrees_with_nilearn_non_parametric_inference():
    from nilearn.glm.second_level import non_parametric_inference
    from nilearn.mass_univariate import permuted_ols

    rng = np.random.default_rng(1)
    n_subjects, shape, n_permutations = 10, (4, 5, 1), 5000
    maps = 0.5 + rng.normal(0, 0.05, (n_subjects, 20))
    maps[:, :5] += np.linspace(0.0, 0.06, 5)  # effects from none to strong
    t_map, p_fwe, p_uncorrected = sign_flip_test(maps, 0.5, n_permutations, rng=0,
                                                 return_uncorrected=True)
    np.testing.assert_allclose(t_map, scipy_stats.ttest_1samp(maps, 0.5).statistic)

    affine = np.eye(4)
    images = [nib.Nifti1Image(subject_map.reshape(shape), affine) for subject_map in maps - 0.5]
    log_p = non_parametric_inference(
        images, design_matrix=pd.DataFrame({"intercept": np.ones(n_subjects)}),
        mask=nib.Nifti1Image(np.ones(shape, np.uint8), affine), n_perm=n_permutations,
        two_sided_test=False, random_state=0)
    nilearn_fwe = 10 ** -log_p.get_fdata().ravel()  # mask voxels in C order, as ours
    # Uncorrected: nilearn's max statistic over a single voxel.
    nilearn_uncorrected = np.array([
        10 ** -permuted_ols(np.ones((n_subjects, 1)), maps[:, [voxel]] - 0.5,
                            n_perm=n_permutations, two_sided_test=False,
                            random_state=0)["logp_max_t"].item() for voxel in range(5)])

    def monte_carlo_tolerance(p):  # 4.5 standard errors of a difference of two estimates
        return 4.5 * np.sqrt(2 * p * (1 - p) / n_permutations) + 2 / n_permutations

    assert np.all(np.abs(p_fwe - nilearn_fwe) <= monte_carlo_tolerance(nilearn_fwe))
    assert np.all(np.abs(p_uncorrected[:5] - nilearn_uncorrected)
                  <= monte_carlo_tolerance(nilearn_uncorrected))
    assert p_fwe[4] < 0.05 and p_uncorrected[4] < 0.01 and np.all(p_fwe >= p_uncorrected)


def test_sign_flip_p_values_match_the_exact_enumeration():
    rng = np.random.default_rng(5)
    maps = 0.5 + rng.normal(0.02, 0.05, (6, 8))
    effects = maps - 0.5
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=6)))  # all 64 flips
    flipped = signs[:, :, None] * effects[None]
    t_all = flipped.mean(1) / (flipped.std(1, ddof=1) / np.sqrt(6))
    t_observed = t_all[-1]  # all signs +1
    exact_uncorrected = (t_all >= t_observed - 1e-12).mean(0)
    exact_fwe = (t_all.max(1)[:, None] >= t_observed - 1e-12).mean(0)
    # 63 flips or more asked: every flip once, the exact p-values.
    t_map, p_fwe, p_uncorrected = sign_flip_test(maps, 0.5, 63, rng=2,
                                                 return_uncorrected=True)
    np.testing.assert_allclose(t_map, t_observed)
    np.testing.assert_allclose(p_uncorrected, exact_uncorrected)
    np.testing.assert_allclose(p_fwe, exact_fwe)
    # Fewer: random flips, within Monte-Carlo error of the exact p-values.
    _, p_fwe, p_uncorrected = sign_flip_test(maps, 0.5, 62, rng=2, return_uncorrected=True)
    tolerance = 4.5 * np.sqrt(0.25 / 62)
    assert not np.allclose(p_fwe, exact_fwe)
    np.testing.assert_allclose(p_uncorrected, exact_uncorrected, atol=tolerance)
    np.testing.assert_allclose(p_fwe, exact_fwe, atol=tolerance)


def test_sign_flip_test_controls_the_family_wise_error():
    rng = np.random.default_rng(21)
    any_false_positive = []
    for _ in range(200):
        maps = 0.5 + rng.normal(0, 0.05, (8, 30))
        _, p_fwe = sign_flip_test(maps, 0.5, 199, rng)
        any_false_positive.append(p_fwe.min() <= 0.05)
    assert 0.01 < np.mean(any_false_positive) <= 0.10


def test_sign_flip_test_handles_constant_voxels():
    maps = np.full((7, 3), 0.5)
    maps[:, 1] = 0.75  # every subject above chance, no variance
    maps[:, 2] = 0.5 + np.linspace(-0.1, 0.1, 7)
    t_map, p_fwe, p_uncorrected = sign_flip_test(maps, 0.5, 999, rng=4,
                                                 return_uncorrected=True)
    assert t_map[0] == 0.0 and t_map[1] == np.inf and t_map[2] == pytest.approx(0.0, abs=1e-9)
    assert p_uncorrected[0] == 1.0
    # Only the all-positive flip (probability 1/128) is as extreme as +inf.
    assert p_fwe[1] < 0.03


def test_sign_flip_test_refuses_one_subject_and_no_permutations():
    with pytest.raises(InputError, match="at least 2"):
        sign_flip_test(np.full((1, 4), 0.6), n_permutations=10, rng=0)
    with pytest.raises(InputError, match="permutations"):
        sign_flip_test(np.full((3, 4), 0.6), n_permutations=0, rng=0)


# --- multiclass ----------------------------------------------------------------------------


def _multiclass_problem():
    X, y = make_classification(n_samples=240, n_features=20, n_informative=6, n_classes=4,
                               n_clusters_per_class=1, class_sep=0.7, random_state=0)
    names = np.array(["shoe", "cat", "face", "house"])[y]  # not in sorted order
    X_test = np.random.default_rng(0).normal(0, 2.0, (400, 20))  # far from the data: ties
    return X, names, X_test


def test_votes_of_pairwise_svcs_reproduce_svc_predict():
    X, names, X_test = _multiclass_problem()
    svc = SVC(kernel="linear", decision_function_shape="ovo").fit(X, names)
    classes = list(svc.classes_)
    decisions = {}
    for class_a, class_b in itertools.combinations(classes, 2):
        pair = np.isin(names, [class_a, class_b])
        binary = SVC(kernel="linear").fit(X[pair], names[pair])
        decisions[(class_a, class_b)] = binary.decision_function(X_test)  # > 0: class_b
    votes = multiclass_vote(decisions, ["shoe", "face", "house", "cat"])
    # libsvm trains the very same binary problems inside SVC: identical predictions.
    np.testing.assert_array_equal(votes, svc.predict(X_test))
    # The SVC's own ovo decisions (libsvm's sign: > 0 favours the first class) agree.
    ovo = svc.decision_function(X_test)
    own = {pair: -ovo[:, k] for k, pair in enumerate(itertools.combinations(classes, 2))}
    np.testing.assert_array_equal(multiclass_vote(own, classes), svc.predict(X_test))
    # The check covers libsvm's tie-breaking: some samples have two classes tied on votes.
    winners = np.array([[decisions[pair][i] >= 0 for pair in decisions]
                        for i in range(len(X_test))])
    tally = np.zeros((len(X_test), 4), int)
    for k, (class_a, class_b) in enumerate(decisions):
        tally[:, classes.index(class_b)] += winners[:, k]
        tally[:, classes.index(class_a)] += ~winners[:, k]
    assert np.sum((tally == tally.max(1, keepdims=True)).sum(1) > 1) >= 10


def test_vote_ties_go_to_the_first_class_and_zero_to_class_b():
    cycle = {("cat", "face"): np.array([1.0]), ("face", "house"): np.array([1.0]),
             ("cat", "house"): np.array([-1.0])}  # face > cat, house > face, cat > house
    assert multiclass_vote(cycle, ["house", "face", "cat"]).tolist() == ["cat"]
    zero = {("cat", "face"): np.array([0.0]), ("cat", "house"): np.array([0.0]),
            ("face", "house"): np.array([-1.0])}
    assert multiclass_vote(zero, ["cat", "face", "house"]).tolist() == ["face"]


def test_vote_needs_every_pair_in_sorted_order():
    with pytest.raises(ValueError, match="missing"):
        multiclass_vote({("a", "b"): np.zeros(2)}, ["a", "b", "c"])
    with pytest.raises(ValueError, match="sorted order"):
        multiclass_vote({("b", "a"): np.zeros(2), ("a", "b"): np.zeros(2)}, ["a", "b"])


def test_confusion_matrix_table_counts_true_rows_predicted_columns():
    true = np.array(["cat", "cat", "face", "face", "face", "cat"])
    predicted = np.array(["cat", "face", "face", "face", "cat", "cat"])
    table = confusion_matrix_table(true, predicted, ["face", "cat", "house"])
    assert list(table.index) == ["face", "cat", "house"] == list(table.columns)
    assert table.index.name == "true" and table.columns.name == "predicted"
    np.testing.assert_array_equal(table.to_numpy(), [[2, 1, 0], [1, 2, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="shoe"):
        confusion_matrix_table(true, np.where(predicted == "cat", "shoe", predicted),
                               ["face", "cat"])


def test_group_test_of_per_subject_chance_is_a_test_of_the_differences():
    accuracies, chances = np.array([0.82, 0.80, 0.85, 0.79]), np.array([0.9, 0.85, 0.88, 0.8])
    result = group_test(accuracies, chances)
    expected = scipy_stats.ttest_1samp(accuracies - chances, 0.0, alternative="greater")
    assert result["t"] == pytest.approx(expected.statistic)
    assert result["p_value"] == pytest.approx(expected.pvalue) and result["p_value"] > 0.5
    assert result["chance"] == pytest.approx(chances.mean())
    # One chance for every subject: exactly the test against that value, as before.
    same = group_test(accuracies, np.full(4, 0.5))
    assert same == group_test(accuracies, 0.5)
    assert same["p_value"] == scipy_stats.ttest_1samp(accuracies, 0.5, alternative="greater").pvalue


def test_sign_flip_test_takes_each_subjects_chance():
    rng = np.random.default_rng(3)
    chances = np.array([0.9, 0.8, 0.85, 0.7, 0.75])
    maps = chances[:, None] + rng.normal(0, 0.05, size=(5, 40))
    t_map, p_fwe = sign_flip_test(maps, chance=chances, rng=0)
    shifted_t, shifted_p = sign_flip_test(maps - chances[:, None] + 0.5, chance=0.5, rng=0)
    np.testing.assert_allclose(t_map, shifted_t, rtol=1e-9)
    np.testing.assert_array_equal(p_fwe, shifted_p)
    assert p_fwe.min() > 0.05  # no information: nothing significant against the design's chance
    with pytest.raises(ValueError, match="one per subject"):
        sign_flip_test(maps, chance=chances[:3])


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n_folds=st.integers(1, 5))
def test_pair_fold_metrics_equal_fold_metrics(data, n_folds):
    """All folds at once give fold_metrics' values exactly: one-class folds, ties and
    decisions of exactly zero included."""
    sizes = data.draw(st.lists(st.integers(1, 9), min_size=n_folds, max_size=n_folds))
    y01 = np.array(data.draw(st.lists(st.integers(0, 1), min_size=sum(sizes),
                                      max_size=sum(sizes))))
    tests = np.split(np.random.default_rng(sum(sizes)).permutation(sum(sizes)),
                     np.cumsum(sizes)[:-1])
    decisions = [np.array(data.draw(st.lists(st.sampled_from([-1.5, -0.25, 0.0, 0.25, 2.0]),
                                             min_size=size, max_size=size)))
                 for size in sizes]
    predicted = [(decision >= 0).astype(float) for decision in decisions]
    metrics = ("accuracy", "balanced_accuracy", "roc_auc")
    together = pair_fold_metrics(y01, tests, predicted, decisions, metrics)
    classes = np.array(["a", "b"])
    for f, test in enumerate(tests):
        alone = fold_metrics(classes[y01[test]], classes[predicted[f].astype(int)], decisions[f],
                             metrics)
        for metric in metrics:
            np.testing.assert_array_equal(together[metric][f], alone[metric])
