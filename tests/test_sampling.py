import math

import numpy as np
import pytest
from scipy import stats

from recombinet_hf import RecombineConfig
from recombinet_hf.sampling import (
    foreground_pixel_size,
    placement_range,
    sample_bates,
    sample_generators,
    sample_geometry,
    schedule_probability,
    target_area_bounds,
)


def positions(n: int, draws: int = 2000) -> np.ndarray:
    """Relative x positions drawn per sample exactly as the loader does (one generator per idx)."""
    config = RecombineConfig(fg_bates_n=n, mask_smoothing_sigma=0)
    return np.array(
        [sample_geometry(sample_generators(0, 0, i)[1], config, fg_ratio=0.1, bg_ratio=0.2)["position"][0] for i in range(draws)]
    )


def test_bates_one_is_uniform():
    assert stats.kstest(positions(1), "uniform").pvalue > 0.01


def test_bates_eight_is_central():
    # Bates(8) in the free range has std sqrt(1/96) ~ 0.102; the pasted object's centre in the
    # canvas (std < 0.1) is checked on pixels in test_compositing.
    x = positions(8)
    assert x.std() == pytest.approx(math.sqrt(1 / 96), rel=0.08)
    assert abs(x.mean() - 0.5) < 0.02


def test_negative_bates_pushes_to_edges():
    assert np.abs(positions(-4) - 0.5).mean() > 0.3


def test_bates_zero_is_exactly_centred():
    assert set(positions(0, 50)) == {0.5}


def test_bates_is_not_degenerate_for_one_and_two():
    # A sampler that always returns 0.5 or ignores n would fail one of these.
    assert positions(2).std() == pytest.approx(math.sqrt(1 / 24), rel=0.1)
    assert positions(1).std() == pytest.approx(math.sqrt(1 / 12), rel=0.1)


def test_generators_depend_only_on_seed_epoch_idx():
    a = [g.random() for g in sample_generators(3, 1, 7)]
    b = [g.random() for g in sample_generators(3, 1, 7)]
    assert a == b
    assert a != [g.random() for g in sample_generators(3, 2, 7)]
    assert a != [g.random() for g in sample_generators(3, 1, 8)]
    assert len(set(a)) == 4  # independent sub-streams


def test_generators_reject_negative_seed():
    with pytest.raises(ValueError, match="`seed` must be a non-negative integer"):
        sample_generators(-1, 0, 0)


@pytest.mark.parametrize(
    "mode, expected", [("range", (0.1, 0.4)), ("min", (0.1, 0.1)), ("max", (0.4, 0.4)), ("mean", (0.25, 0.25))]
)
def test_target_area_bounds(mode, expected):
    assert target_area_bounds(0.1, 0.4, mode) == pytest.approx(expected)
    assert target_area_bounds(0.4, 0.1, mode) == pytest.approx(expected)


def test_target_area_with_jitter_stays_in_bounds():
    config = RecombineConfig(fg_size_mode="range", fg_scale_jitter=0.3)
    areas = np.array(
        [sample_geometry(sample_generators(0, 0, i)[1], config, fg_ratio=0.1, bg_ratio=0.3)["target_area"] for i in range(2000)]
    )
    assert areas.min() >= 0.07 and areas.max() <= 0.39
    assert areas.min() < 0.08 and areas.max() > 0.38  # the whole jittered range is reached


def test_zero_fg_ratio_does_not_vanish():
    lo, hi = target_area_bounds(0.0, 0.0, "range")
    assert lo > 0 and hi > 0


def test_pixel_size_hits_the_opaque_area():
    width, height = foreground_pixel_size(0.25, (400, 300), (100, 50), alpha_coverage=0.5)
    assert width / height == pytest.approx(2.0, rel=0.02)
    assert width * height * 0.5 == pytest.approx(0.25 * 400 * 300, rel=0.01)


def test_pixel_size_never_rounds_to_zero_and_survives_empty_alpha():
    assert foreground_pixel_size(1e-9, (50, 50), (300, 2), alpha_coverage=0.3) == (1, 1)
    assert min(foreground_pixel_size(0.1, (50, 50), (10, 10), alpha_coverage=0.0)) >= 1
    assert min(foreground_pixel_size(0.1, (50, 50), (0, 0), alpha_coverage=0.5)) >= 1


def test_placement_range_with_jut_out():
    assert placement_range(100, 40, 0.0) == (0.0, 60.0)
    assert placement_range(100, 40, 0.25) == (-10.0, 70.0)
    assert placement_range(100, 140, 0.0) == (-20.0, -20.0)  # cannot fit: centred


@pytest.mark.parametrize(
    "schedule, first, middle, last",
    [("lin", 0.0, 0.5, 1.0), ("revlin", 1.0, 0.5, 0.0), ("cos", 0.0, 1 - math.cos(math.pi / 4), 1.0)],
)
def test_schedules_at_first_middle_last_epoch(schedule, first, middle, last):
    assert schedule_probability(schedule, 0, 11) == pytest.approx(first)
    assert schedule_probability(schedule, 5, 11) == pytest.approx(middle)
    assert schedule_probability(schedule, 10, 11) == pytest.approx(last)
    assert 0.0 <= schedule_probability(schedule, 3, 11) <= 1.0


def test_schedule_edge_cases():
    assert schedule_probability(0.3, 99, None) == 0.3
    assert schedule_probability("revlin", 0, 1) == 1.0  # one epoch: no division by zero
    with pytest.raises(ValueError, match="pass `num_epochs`"):
        schedule_probability("cos", 0, 0)
    with pytest.raises(ValueError, match="pass `num_epochs`"):
        schedule_probability("lin", 0, None)


def test_rotation_and_sigma_ranges():
    config = RecombineConfig(rotation=20, mask_smoothing_sigma=4.0)
    draws = [sample_geometry(sample_generators(0, 0, i)[1], config, fg_ratio=0.1, bg_ratio=0.1) for i in range(500)]
    angles = np.array([d["angle"] for d in draws])
    sigmas = np.array([d["sigma"] for d in draws])
    assert angles.min() >= -20 and angles.max() <= 20 and angles.std() > 10
    assert sigmas.min() >= 0.4 and sigmas.max() <= 4.0


def test_bates_function_directly():
    rng = np.random.default_rng(0)
    assert sample_bates(rng, 0) == 0.5
    assert 0 <= sample_bates(rng, -3) <= 1
