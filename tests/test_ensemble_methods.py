"""kit.ensemble.combine on synthetic probabilities where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from kit.ensemble import METHODS, EnsembleResult, combine
from kit.errors import KitError
from kit.metrics import scores

K = 4


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _calibrated(y: np.ndarray, rng: np.random.Generator, alpha: float = 1.2) -> np.ndarray:
    """The exact posterior of a noisy one-hot observation: an informative, calibrated member."""
    x = alpha * np.eye(K)[y] + rng.normal(size=(len(y), K))
    return _softmax(alpha * x)


def _noise(n: int, rng: np.random.Generator, k: int = K) -> np.ndarray:
    return rng.dirichlet(np.ones(k), n)


def _split_members(y: np.ndarray, rng: np.random.Generator, eps: float = 0.02) -> list[np.ndarray]:
    """A sees only the low bit of the class (0/1 put all mass on classes 0/1), B only the pair ({0,1} vs {2,3}).

    Each alone is right about half the time, their mean too; the class is the sum of their log-probabilities
    after a per-class remap that a multinomial logistic regression on log-probabilities can learn.
    """
    n = len(y)
    p_low = 1 / (1 + np.exp(-(3 * (2 * (y % 2) - 1) + 1.5 * rng.normal(size=n))))
    p_pair = 1 / (1 + np.exp(-(3 * (2 * (y // 2) - 1) + 1.5 * rng.normal(size=n))))
    a = np.stack([(1 - p_low) * (1 - eps), p_low * (1 - eps), np.full(n, eps / 2), np.full(n, eps / 2)], 1)
    b = np.stack([(1 - p_pair) / 2, (1 - p_pair) / 2, p_pair / 2, p_pair / 2], 1)
    return [a, b]


@pytest.fixture
def good_and_useless():
    """Two calibrated informative members, then a uniform and a random-noise member (val, y, test)."""
    rng = np.random.default_rng(0)
    y, y_test = rng.integers(0, K, 400), rng.integers(0, K, 40)
    val = [_calibrated(y, rng), _calibrated(y, rng), np.full((400, K), 1 / K), _noise(400, rng)]
    test = [_calibrated(y_test, rng), _calibrated(y_test, rng), np.full((40, K), 1 / K), _noise(40, rng)]
    return val, y, test


@pytest.fixture
def pure_noise():
    """Five members that know nothing about the labels (val, y, test)."""
    rng = np.random.default_rng(1)
    return [_noise(150, rng, 3) for _ in range(5)], rng.integers(0, 3, 150), [_noise(20, rng, 3) for _ in range(5)]


def _check_shapes(r: EnsembleResult, m: int, n_val: int, n_test: int) -> None:
    assert r.val_probs.shape == (n_val, K) and r.test_probs.shape == (n_test, K)
    assert np.allclose(r.test_probs.sum(1), 1) and np.allclose(r.val_probs.sum(1), 1)
    assert len(r.members_scores) == m and set(r.estimate) == {"accuracy", "macro_f1", "log_loss"}
    if r.weights is not None:
        assert r.weights.shape == (m,) and (r.weights >= 0).all() and r.weights.sum() == pytest.approx(1)


@pytest.mark.parametrize("geometric", [False, True])
def test_mean_of_identical_members_is_the_member(good_and_useless, geometric):
    val, y, test = good_and_useless
    r = combine("mean", [val[0]] * 3, y, [test[0]] * 3, geometric=geometric)
    assert np.allclose(r.val_probs, val[0]) and np.allclose(r.test_probs, test[0])
    assert r.estimate == r.in_sample == scores(val[0], y)
    assert np.allclose(r.weights, 1 / 3)


def test_geometric_mean_is_normalised(good_and_useless):
    val, y, test = good_and_useless
    r = combine("mean", val, y, test, geometric=True)
    _check_shapes(r, 4, 400, 40)
    expected = np.exp(np.mean(np.log(val), 0))
    assert np.allclose(r.val_probs, expected / expected.sum(1, keepdims=True))


@pytest.mark.parametrize("geometric", [False, True])
def test_weighted_ignores_useless_members(good_and_useless, geometric):
    val, y, test = good_and_useless
    r = combine("weighted", val, y, test, geometric=geometric)
    _check_shapes(r, 4, 400, 40)
    assert r.weights[2] < 0.05 and r.weights[3] < 0.05
    assert r.weights[0] > 0.3 and r.weights[1] > 0.3
    assert r.estimate["log_loss"] < min(s["log_loss"] for s in r.members_scores)


def test_hillclimb_never_selects_useless_members(good_and_useless):
    val, y, test = good_and_useless
    r = combine("hillclimb", val, y, test, n_init=2)
    _check_shapes(r, 4, 400, 40)
    assert r.weights[2] == 0 and r.weights[3] == 0
    assert r.details["selection_counts"][2:] == [0, 0]
    assert r.estimate["log_loss"] < min(s["log_loss"] for s in r.members_scores)


def test_hillclimb_bagging_averages_bag_weights(good_and_useless):
    """Bags hold 3 of 5 members, so each holds a good one and never needs a useless one."""
    val, y, test = good_and_useless
    rng = np.random.default_rng(4)
    val, test = [*val, _calibrated(y, rng)], [*test, test[0]]
    r = combine("hillclimb", val, y, test, bagging=8)
    _check_shapes(r, 5, 400, 40)
    assert r.weights[2] == 0 and r.weights[3] == 0 and (r.weights[[0, 1, 4]] > 0).all()
    assert sum(r.details["selection_counts"]) >= 8


def test_hillclimb_copy_of_a_better_member_does_not_hurt(good_and_useless):
    val, y, test = good_and_useless
    best = int(np.argmin([scores(p, y)["log_loss"] for p in val]))
    plain = combine("hillclimb", val, y, test)
    copied = combine("hillclimb", [*val, val[best]], y, [*test, test[best]])
    assert copied.estimate["log_loss"] <= plain.estimate["log_loss"] + 1e-9
    assert copied.in_sample["log_loss"] <= plain.in_sample["log_loss"] + 1e-9
    assert np.allclose(copied.test_probs, plain.test_probs)


def test_stack_recovers_a_combination_no_member_holds():
    rng = np.random.default_rng(2)
    y, y_test = rng.integers(0, K, 300), rng.integers(0, K, 60)
    val, test = _split_members(y, rng), _split_members(y_test, rng)
    r = combine("stack", val, y, test)
    _check_shapes(r, 2, 300, 60)
    mean = combine("mean", val, y, test)
    best_member = max(s["accuracy"] for s in r.members_scores)
    assert best_member < 0.6 and mean.estimate["accuracy"] < 0.6
    assert r.estimate["accuracy"] > 0.85
    assert scores(r.test_probs, y_test)["accuracy"] > 0.85
    assert r.weights is None and r.details["C"] > 0


def test_stack_on_pure_noise_reports_chance_not_its_in_sample_fit(pure_noise):
    val, y, test = pure_noise
    r = combine("stack", val, y, test)
    majority = np.bincount(y).max() / len(y)
    assert r.estimate["accuracy"] < majority + 0.1
    assert r.estimate["accuracy"] < r.in_sample["accuracy"]
    assert r.estimate["log_loss"] > r.in_sample["log_loss"]


def test_stack_with_rare_and_missing_classes():
    """Class 3 never occurs in validation and class 2 is too rare for an inner CV inside the outer folds."""
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1, 2], [10, 10, 2])
    r = combine("stack", [_noise(22, rng), _noise(22, rng)], y, [_noise(6, rng), _noise(6, rng)], cv_folds=2)
    _check_shapes(r, 2, 22, 6)
    assert (r.test_probs[:, 3] == 0).all()


@pytest.mark.parametrize("method", ["weighted", "hillclimb", "stack"])
def test_fitted_methods_report_out_of_fold_estimates(pure_noise, method):
    val, y, test = pure_noise
    r = combine(method, val, y, [t for t in test], cv_folds=3)
    assert r.estimate == scores(r.val_probs, y)
    assert r.estimate != r.in_sample
    assert r.estimate["accuracy"] <= r.in_sample["accuracy"] + 0.02
    assert r.estimate["log_loss"] > r.in_sample["log_loss"]
    assert r.details["cv_folds"] == 3
    if r.weights is not None:  # the estimate is not the final weights scored on the rows they were fitted on
        final = np.tensordot(r.weights, np.stack(val), 1)
        assert not np.allclose(r.val_probs, final)


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_given_seed(pure_noise, method):
    val, y, test = pure_noise
    a, b = (combine(method, val, y, test, bagging=4, seed=3) for _ in range(2))
    assert np.array_equal(a.test_probs, b.test_probs) and np.array_equal(a.val_probs, b.val_probs)


def _bad_inputs():
    rng = np.random.default_rng(3)
    y = np.tile(np.arange(3), 10)
    p = _noise(30, rng, 3)
    t = _noise(5, rng, 3)
    nan = p.copy()
    nan[4, 1] = np.nan
    return [
        ("mean", [], y, [], "no ensemble members"),
        ("mean", [p, p], y, [t], "give one of each per member"),
        ("mean", [p, p[:20]], y, [t, t], "member 1: validation probabilities are (20, 3)"),
        ("mean", [p, p], y, [t, _noise(5, rng, 4)], "member 1: test probabilities are (5, 4)"),
        ("mean", [p], y, [_noise(5, rng, 4)], "class count mismatch"),
        ("mean", [p], np.full(30, 3), [t], "labels out of range: found 3"),
        ("mean", [p], np.full(30, -1), [t], "labels out of range: found -1"),
        ("mean", [p], y.astype(float), [t], "integer class indices"),
        ("mean", [p], y[:10], [t], "one label per validation row"),
        ("mean", [nan], y, [t], "NaN"),
        ("mean", [p * 2], y, [t], "row 0 sums to 2"),
        ("mean", [p], y, [np.log(t)], "negative values"),
        ("blend", [p], y, [t], "choose one of mean, weighted, hillclimb, stack"),
        ("stack", [p], np.repeat([0, 1, 2], [13, 13, 4]), [t], "class 2 has 4 validation rows, fewer than cv_folds=5"),
        ("weighted", [p], np.zeros(30, int), [t], "only class 0"),
    ]


@pytest.mark.parametrize(("method", "val", "y", "test", "message"), _bad_inputs())
def test_bad_inputs_raise_kit_error(method, val, y, test, message):
    with pytest.raises(KitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        combine(method, val, y, test)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"cv_folds": 1}, "cv_folds=1"),
        ({"n_init": 0}, "n_init=0"),
        ({"bagging": -1}, "bagging=-1"),
        ({"metric": "auc"}, "unknown ensemble metric 'auc'"),
    ],
)
def test_bad_options_raise_kit_error(good_and_useless, option, message):
    val, y, test = good_and_useless
    with pytest.raises(KitError, match=message):
        combine("hillclimb", val, y, test, **option)


def test_grouped_cv_does_not_score_a_stack_on_groups_it_was_fitted_on():
    """Each song has its own label and its own member outputs, which say nothing across songs.

    Row-wise folds let the meta-model learn a song's label from its other rows; folds that keep songs
    whole score it at chance, which is what it will do on new songs."""
    rng = np.random.default_rng(7)
    songs = np.repeat(np.arange(40), 8)
    song_label, song_probs = rng.integers(0, K, 40), rng.dirichlet(np.ones(K) * 0.5, (3, 40))
    y = song_label[songs]
    val = [song_probs[m][songs] for m in range(3)]
    test = [_noise(20, rng) for _ in range(3)]
    leaky = combine("stack", val, y, test)
    honest = combine("stack", val, y, test, groups=songs.astype(str))
    assert leaky.estimate["accuracy"] > 0.6
    assert honest.estimate["accuracy"] < 0.4
    assert honest.details["grouped"] and not leaky.details["grouped"]


def test_groups_must_cover_the_rows_and_outnumber_the_folds(good_and_useless):
    val, y, test = good_and_useless
    with pytest.raises(KitError, match="3 groups for 400 validation rows"):
        combine("stack", val, y, test, groups=np.array(["a", "b", "c"]))
    with pytest.raises(KitError, match="the validation rows hold 3 groups, fewer than cv_folds=5"):
        combine("weighted", val, y, test, groups=np.arange(400) % 3)


def test_stack_with_a_class_in_a_single_group_falls_back_to_a_fixed_c():
    """Every inner fold that holds that group out cannot score log-loss: no C search, no NaN warnings."""
    import warnings

    from kit.ensemble.stack import FALLBACK_C, fit_stack

    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 27 + [2] * 6)
    groups = np.array([f"g{i // 3}" for i in range(54)] + ["rare"] * 6)
    P = rng.dirichlet(np.ones(3), (2, 60))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = fit_stack(P, y, 0, groups)
    assert fitted.details == {"C": FALLBACK_C} and fitted.predict(P).shape == (60, 3)


def test_the_default_method_does_not_lose_to_its_best_member_where_the_mean_does():
    """One good member and two confidently wrong ones: their mean is worse than the good one alone;
    the default method (hill climbing from the best member) keeps it, in-sample and out of fold."""
    from kit.params import EnsembleParams

    rng = np.random.default_rng(3)
    y, y_test = rng.integers(0, K, 600), rng.integers(0, K, 300)
    sure = lambda n: _softmax(3 * rng.normal(size=(n, K)))  # noqa: E731  (knows nothing, says it loudly)
    val, test = [_calibrated(y, rng), sure(600), sure(600)], [_calibrated(y_test, rng), sure(300), sure(300)]
    method = EnsembleParams().method
    assert method == "hillclimb"
    best = scores(val[0], y)
    mean, chosen = combine("mean", val, y, test), combine(method, val, y, test)
    assert mean.estimate["accuracy"] < best["accuracy"] and mean.estimate["log_loss"] > best["log_loss"]
    assert chosen.in_sample["log_loss"] <= best["log_loss"] and chosen.weights[0] >= 0.5
    assert chosen.estimate["accuracy"] >= best["accuracy"] - 0.01  # out of fold: at most a few clips apart
    assert scores(chosen.test_probs, y_test)["accuracy"] >= scores(mean.test_probs, y_test)["accuracy"]


def _sharp_and_calibrated(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A: right on 80% of rows but 97% sure when wrong (the best accuracy, a poor log-loss);
    B: calibrated and right on ~63% (the best log-loss)."""
    y = rng.integers(0, K, n)
    wrong = rng.random(n) < 0.2
    pred = np.where(wrong, (y + rng.integers(1, K, n)) % K, y)
    sharp = np.full((n, K), 0.01)
    sharp[np.arange(n), pred] = 0.97
    return y, [sharp, _calibrated(y, rng, alpha=1.2)]


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "log_loss"])
def test_hillclimb_climbs_the_ranking_metric_from_the_best_member_by_it(metric):
    """The default ensemble starts from the registry's best run (by ensemble.metric) and only adds
    what raises that metric: on validation it is never below that member, in the metric users rank by."""
    rng = np.random.default_rng(5)
    y, val = _sharp_and_calibrated(rng, 800)
    y_test, test = _sharp_and_calibrated(rng, 200)
    a, b = scores(val[0], y), scores(val[1], y)
    assert a["accuracy"] > b["accuracy"] and a["macro_f1"] > b["macro_f1"] and a["log_loss"] > b["log_loss"]
    r = combine("hillclimb", val, y, test, metric=metric)
    if metric == "log_loss":
        assert r.in_sample["log_loss"] <= b["log_loss"]
    else:  # from A, adding B while the metric rises: above both, where climbing log-loss is not
        assert r.in_sample[metric] >= a[metric]
        by_log_loss = combine("hillclimb", val, y, test, metric="log_loss")
        assert r.in_sample[metric] > by_log_loss.in_sample[metric]
        assert scores(r.test_probs, y_test)["accuracy"] >= scores(test[0], y_test)["accuracy"]


def _pair_whose_blends_lose(n: int = 100) -> tuple[np.ndarray, list[np.ndarray]]:
    """As on a real fold: A is right on 70% with the lower log-loss, B on 80%; where only one of them is
    right the other is sure it is wrong, so every blend of the two is right on the 60% they share."""
    y = np.arange(n) % 3
    other, third = (y + 1) % 3, (y + 2) % 3
    a, b = np.zeros((n, 3)), np.zeros((n, 3))
    rows = np.arange(n)

    def put(p, sel, on_y, on_other):
        p[rows[sel], y[sel]], p[rows[sel], other[sel]] = on_y, on_other
        p[rows[sel], third[sel]] = 1 - on_y - on_other

    both, b_only, a_only = rows < 60, (rows >= 60) & (rows < 80), (rows >= 80) & (rows < 90)
    for p in (a, b):
        put(p, both, 0.8, 0.1)
        put(p, rows >= 90, 0.1, 0.8)  # both wrong
    put(a, b_only, 0.05, 0.9), put(b, b_only, 0.5, 0.25)
    put(a, a_only, 0.5, 0.25), put(b, a_only, 0.001, 0.998)
    return y, [a, b]


@pytest.mark.parametrize("geometric", [False, True])
@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_hillclimb_starts_from_the_best_member_by_the_metric_not_by_log_loss(geometric, order):
    y, (a, b) = _pair_whose_blends_lose()
    sa, sb = scores(a, y), scores(b, y)
    assert (sa["accuracy"], sb["accuracy"]) == (0.7, 0.8) and sa["log_loss"] < sb["log_loss"]
    assert scores((a + b) / 2, y)["accuracy"] == 0.6
    members = [[a, b][i] for i in order]
    by_accuracy = combine("hillclimb", members, y, members, geometric=geometric, metric="accuracy")
    by_log_loss = combine("hillclimb", members, y, members, geometric=geometric, metric="log_loss")
    assert by_accuracy.weights.tolist() == [float(i == 1) for i in order]  # B alone, where the climb starts
    assert "fell_back_to" not in by_accuracy.details
    assert by_accuracy.in_sample["accuracy"] == 0.8
    assert by_log_loss.in_sample["log_loss"] <= sa["log_loss"]


def test_hillclimb_ties_on_the_metric_go_to_the_lower_log_loss_in_either_order():
    """A sharpened copy of A has A's argmax everywhere (so every blend has A's accuracy) but another log-loss."""
    y, (a, _) = _pair_whose_blends_lose()
    sharp = a**3 / (a**3).sum(1, keepdims=True)
    lower = 0 if scores(a, y)["log_loss"] < scores(sharp, y)["log_loss"] else 1
    for members, first in (([a, sharp], lower), ([sharp, a], 1 - lower)):
        r = combine("hillclimb", members, y, members, metric="accuracy")
        assert r.weights.tolist() == [float(i == first) for i in range(2)]


def test_hillclimb_falls_back_to_the_best_member_when_its_start_already_loses():
    """Starting from both members (n_init 2) is the 60% blend; no single addition helps, so the climb stops
    there, below B alone: the method returns B alone rather than lose to it."""
    y, members = _pair_whose_blends_lose()
    r = combine("hillclimb", members, y, members, metric="accuracy", n_init=2)
    assert r.in_sample["accuracy"] == 0.8 and r.weights.tolist() == [0.0, 1.0]
    assert r.details["fell_back_to"] == 1


@pytest.mark.parametrize("seed", range(8))
def test_bagged_hillclimb_falls_back_when_its_bags_blend_below_the_best_member(seed):
    """Bags of one of the two members each: averaged, every bag that took A makes A's weight at least
    a quarter, a blend right on 60% (A's weight from 0.23 to 0.8) or 70%; then B alone is returned.
    Where every bag took B (seeds 4 and 7) the bags already are B alone and nothing falls back."""
    y, members = _pair_whose_blends_lose()
    r = combine("hillclimb", members, y, members, metric="accuracy", bagging=4, seed=seed)
    assert r.in_sample["accuracy"] == 0.8 and r.weights.tolist() == [0.0, 1.0]
    took_a = r.details["selection_counts"][0] > 0
    assert ("fell_back_to" in r.details) == took_a
    assert took_a == (seed not in (4, 7))  # both cases are covered
