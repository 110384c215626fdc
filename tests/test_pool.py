import numpy as np
import pytest

from recombinet_hf.pool import BackgroundPool


def make_pool(combination: str, pt: float, k: int = 8) -> BackgroundPool:
    # class 0: 20 backgrounds, ratios 0.0..0.95; class 1: 10 all >= 0.9; class 2: 3 small ones
    ratios = list(np.linspace(0, 0.95, 20)) + list(np.linspace(0.9, 0.99, 10)) + [0.1, 0.2, 0.3]
    labels = [0] * 20 + [1] * 10 + [2] * 3
    return BackgroundPool(
        idx=np.arange(100, 100 + len(labels)), keys=[f"k{i}" for i in range(len(labels))], labels=labels,
        fg_ratios=ratios, background_combination=combination, pruning_threshold=pt, min_backgrounds_per_class=k,
    )


def test_same_draws_only_its_own_class_and_respects_pt():
    pool = make_pool("same", 0.5)
    rng = np.random.default_rng(0)
    for label in (0, 2):
        rows = [pool.sample_row(rng, label=label, key="x") for _ in range(500)]
        assert set(pool.labels[rows]) == {label}
        assert pool.fg_ratios[rows].max() < 0.5
    assert len(set(pool.sample_row(rng, label=0, key="x") for _ in range(2000))) == 11  # all 11 unpruned used


def test_pruned_class_falls_back_to_its_k_lowest_and_is_reported():
    pool = make_pool("same", 0.5, k=4)
    assert pool.fallback_classes == [1]
    rng = np.random.default_rng(1)
    rows = {pool.sample_row(rng, label=1, key="x") for _ in range(400)}
    assert set(pool.labels[list(rows)]) == {1}
    np.testing.assert_allclose(sorted(pool.fg_ratios[list(rows)]), np.linspace(0.9, 0.99, 10)[:4])


def test_small_class_keeps_all_it_has():
    pool = make_pool("same", 0.25, k=8)  # class 2 keeps 2 of 3 < pt: fewer than min(8, 3)
    assert 2 in pool.fallback_classes
    assert len(pool.candidates(2)) == 3


def test_all_draws_across_classes_without_pruned_ones():
    pool = make_pool("all", 0.5)
    rng = np.random.default_rng(0)
    rows = [pool.sample_row(rng, label=0, key="x") for _ in range(2000)]
    assert set(pool.labels[rows]) == {0, 2}
    assert pool.fg_ratios[rows].max() < 0.5
    assert pool.fallback_classes == []


def test_pt_one_keeps_all_but_entire_objects():
    pool = BackgroundPool(idx=[0, 1, 2], keys=["a", "b", "c"], labels=[0, 0, 0], fg_ratios=[0.2, 0.99, 1.0],
                          background_combination="all", pruning_threshold=1.0, min_backgrounds_per_class=1)
    assert sorted(pool.candidates(0)) == [0, 1]


def test_orig_uses_own_background_and_bad_arguments():
    pool = make_pool("orig", 0.5)
    assert pool.sample_row(np.random.default_rng(0), label=1, key="k25") == 25
    with pytest.raises(KeyError, match="No background row with key 'nope'"):
        pool.row_of_key("nope")
    with pytest.raises(ValueError, match="`background_combination` must be one of"):
        make_pool("mixed", 0.5)
    with pytest.raises(ValueError, match="`min_backgrounds_per_class` must be >= 1"):
        make_pool("same", 0.5, k=0)


def test_idx_and_key_lookups():
    pool = BackgroundPool(idx=[30, 10, 20], keys=["c", "a", "b"], labels=[0, 0, 0], fg_ratios=[0.1] * 3)
    assert [pool.row_of_idx(i) for i in (10, 20, 30)] == [1, 2, 0]
    assert pool.row_of_key("b") == 2
    for missing in (0, 15, 31):
        with pytest.raises(KeyError, match=f"No background row with idx {missing}"):
            pool.row_of_idx(missing)
