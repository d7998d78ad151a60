"""Sum mixing: two clips' powers added, the label looked up in the table. Filter augmentation:
one random EQ curve per example. Frequency shift: each example moved along frequency."""

from __future__ import annotations

import pytest
import torch

from kit.errors import KitError
from kit.params import AugmentParams, load_params
from kit.training.augment import (
    DB_PER_NEPER,
    filter_augment,
    freq_shift,
    log_unit,
    mixup,
    sum_mix,
    sum_spec,
    time_reverse,
)

VOICES = [[0, 1, 2, 3], [1, 3, 3, 3], [2, 3, 3, 3], [3, 3, 3, 3]]  # the contest: voices add up


def _clips(powers: list[float], log: str) -> torch.Tensor:
    """One (2, 3, 4) example per power, every bin at that power, as dB or natural-log features."""
    p = torch.tensor(powers, dtype=torch.float64).view(-1, 1, 1, 1).expand(-1, 2, 3, 4)
    return 10 * torch.log10(p) if log == "db" else torch.log(p)


@pytest.mark.parametrize("log", ["db", "ln"])
def test_sums_add_powers_and_take_their_label_from_the_table(log):
    powers = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    y = torch.tensor([0, 1, 2, 1, 0, 3])
    p = AugmentParams(sum_mix=1.0, sum_gain_db=0.0, sum_labels=VOICES)
    spec = sum_spec(p, 4, ["mix", "vocals"])
    x = _clips(powers, log)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        state = gen.get_state()
        perm = torch.randperm(6, generator=gen)  # the partners sum_mix will draw
        gen.set_state(state)
        out, labels = sum_mix(x, y, p, spec, log_unit(p, log), gen)
        power = 10 ** (out / 10) if log == "db" else out.exp()
        for i in range(6):
            j = int(perm[i])
            if j == i:  # never its own partner: left as it was
                assert labels[i] == y[i] and torch.allclose(out[i], x[i])
            else:
                assert torch.allclose(power[i], torch.tensor(powers[i] + powers[j], dtype=torch.float64))
                assert labels[i] == VOICES[int(y[i])][int(y[j])]


def test_the_partner_gain_stays_within_its_range_and_the_share_is_respected():
    p = AugmentParams(sum_mix=0.25, sum_gain_db=6.0, sum_labels=VOICES)
    x = _clips([1.0] * 400, "db")
    y = torch.zeros(400, dtype=torch.long)
    out, _ = sum_mix(x, y, p, sum_spec(p, 4, ["mix"]), DB_PER_NEPER, torch.Generator().manual_seed(1))
    changed = (out != x).flatten(1).any(1)
    assert 0.18 < changed.float().mean() < 0.32
    partner = 10 ** (out[changed, 0, 0, 0] / 10) - 1.0  # the summed clip's power minus its own
    gain_db = 10 * torch.log10(partner)
    assert gain_db.min() >= -6.0 - 1e-6 and gain_db.max() <= 6.0 + 1e-6 and gain_db.std() > 2.0


@pytest.mark.parametrize(
    "channels, vocals",
    [
        (["mix", "vocals"], [1, 1]),
        (["mix:logmel", "vocals:logmel", "mix:logfreq", "vocals:logfreq"], [1, 1, 3, 3]),
        (["mix:logfreq", "vocals:logfreq"], [1, 1]),  # --channels: one front-end of a two-front-end store
    ],
)
def test_a_vocals_partner_adds_its_own_front_ends_vocals_to_every_channel(channels, vocals):
    p = AugmentParams(sum_mix=1.0, sum_gain_db=0.0, sum_labels=VOICES, sum_partner="vocals")
    c = len(channels)
    powers = torch.tensor([[1.0, 2.0, 4.0, 8.0][:c], [16.0, 32.0, 64.0, 128.0][:c]], dtype=torch.float64)
    x = (10 * torch.log10(powers)).view(2, c, 1, 1).expand(2, c, 3, 4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):  # two clips: each is the other's partner, or nothing changes
        out, labels = sum_mix(x, torch.tensor([1, 2]), p, sum_spec(p, 4, channels), DB_PER_NEPER, gen)
        if not torch.equal(out, x):
            break
    assert torch.allclose(10 ** (out[:, :, 0, 0] / 10), powers + powers.flip(0)[:, vocals])
    assert labels.tolist() == [3, 3]


def test_off_by_default_and_bad_tables_name_their_key():
    assert sum_spec(AugmentParams(sum_mix=0.0), 4, ["mix"]) is None
    with pytest.raises(KitError, match=r"train.augment.sum_labels: needs a 4 x 4 table"):
        sum_spec(AugmentParams(sum_mix=0.5, sum_labels=[[0, 1], [1, 1]]), 4, ["mix"])
    with pytest.raises(KitError, match=r"train.augment.sum_labels\[1\]\[2\]: 7 is not a class \(0..3\)"):
        sum_spec(AugmentParams(sum_mix=0.5, sum_labels=[VOICES[0], [1, 3, 7, 3], *VOICES[2:]]), 4, ["mix"])
    with pytest.raises(KitError, match="train.augment.sum_mix: need log-power features"):
        log_unit(AugmentParams(sum_mix=0.5, filter_db=0.0, sum_labels=VOICES), None)
    with pytest.raises(KitError, match="sum_partner: vocals needs a vocals channel; the model sees mix"):
        sum_spec(AugmentParams(sum_mix=0.5, sum_labels=VOICES, sum_partner="vocals"), 4, ["mix"])


def test_a_vocals_partner_adds_only_its_vocals_to_every_channel():
    p = AugmentParams(sum_mix=1.0, sum_gain_db=0.0, sum_labels=VOICES, sum_partner="vocals")
    spec = sum_spec(p, 4, ["mix", "vocals"])
    mix, vocals = torch.tensor([4.0, 8.0]), torch.tensor([1.0, 2.0])  # powers of two clips
    x = 10 * torch.log10(torch.stack([mix, vocals], 1)).view(2, 2, 1, 1)
    seed = next(s for s in range(20) if torch.randperm(2, generator=torch.Generator().manual_seed(s))[0] == 1)
    out, labels = sum_mix(x, torch.tensor([1, 2]), p, spec, DB_PER_NEPER, torch.Generator().manual_seed(seed))
    power = (10 ** (out / 10)).view(2, 2)  # a seed where the two clips partner each other
    assert torch.allclose(power, torch.tensor([[4.0 + 2.0, 1.0 + 2.0], [8.0 + 1.0, 2.0 + 1.0]]))
    assert labels.tolist() == [3, 3]


@pytest.mark.parametrize("log", ["db", "ln"])
def test_filter_augment_gives_each_example_one_piecewise_linear_eq_curve_in_db(log):
    x = torch.zeros(64, 2, 13, 5, dtype=torch.float64)  # power 1 everywhere; 13 bands, 5 frames
    out = filter_augment(x, 6.0, 4, log_unit(AugmentParams(), log), 2, torch.Generator().manual_seed(0))
    gain_db = out if log == "db" else out * DB_PER_NEPER
    curve = gain_db[:, 0, :, 0]  # (64, 13)
    assert torch.equal(gain_db, curve[:, None, :, None].expand_as(gain_db))  # every channel and frame alike
    assert curve.abs().max() <= 6.0 and curve.abs().max() > 5.0
    knots = curve[:, ::4]  # knots at bands 0, 4, 8, 12; straight lines between them
    assert torch.allclose(curve[:, 2], (knots[:, 0] + knots[:, 1]) / 2)
    assert torch.allclose(curve[:, 9], 0.75 * knots[:, 2] + 0.25 * knots[:, 3])
    assert not torch.allclose(curve[0], curve[1])  # each example its own curve


def test_freq_shift_moves_each_example_whole_within_its_range_and_repeats_the_edge_band():
    bands = torch.arange(20, dtype=torch.float32)
    x = (bands.view(1, 1, 20, 1) + 100 * torch.arange(2).view(1, 2, 1, 1)).expand(256, 2, 20, 3).contiguous()
    out = freq_shift(x, 3, 2, torch.Generator().manual_seed(0))
    shift = out[:, 0, 10, 0] - x[:, 0, 10, 0]  # band 10 now shows band 10 - shift
    assert set(shift.tolist()) == {-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0}  # every shift within ±3 drawn
    for i in range(256):
        s = int(-shift[i])  # out band f = x band clamp(f - s)
        expect = x[i, :, (bands.long() - s).clamp(0, 19)]
        assert torch.equal(out[i], expect)  # both channels and every frame alike; edges repeated


def test_log_power_augmentations_are_refused_on_images_by_name_and_a_curve_needs_two_knots(tmp_path):
    with pytest.raises(KitError, match="train.augment.filter_db: need log-power features"):
        log_unit(AugmentParams(sum_mix=0.0), None)
    with pytest.raises(KitError, match="train.augment.sum_mix and filter_db: need log-power features"):
        log_unit(AugmentParams(), None)  # the defaults: both on
    assert log_unit(AugmentParams(sum_mix=0.0, filter_db=0.0), None) == 0.0
    (tmp_path / "params.yaml").write_text("train:\n  augment:\n    filter_points: 1\n")
    with pytest.raises(KitError, match=r"train.augment.filter_points: must be ≥ 2, got 1"):  # the schema's range
        load_params(tmp_path / "params.yaml")


def test_time_reverse_flips_the_chosen_examples_only_and_mixup_keeps_the_larger_share():
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).view(2, 1, 3, 5)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(time_reverse(x, 1.0, 3, gen), x.flip(3))
    assert torch.equal(time_reverse(x, 0.0, 3, gen), x)
    y = torch.tensor([0, 1])
    g1, g2 = torch._standard_gamma(torch.full((2,), 0.3), generator=torch.Generator().manual_seed(5)).tolist()
    mixed, ya, yb, lam = mixup(x, y, 0.3, torch.Generator().manual_seed(5))
    assert lam.dim() == 0 and lam.item() == max(g1, g2) / (g1 + g2)  # float64, as runs before it was a tensor
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[[1, 0] if yb[0] == 1 else [0, 1]])
    assert torch.equal(ya, y)
