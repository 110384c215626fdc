import pytest

from recombinet_hf import RecombineConfig


@pytest.mark.parametrize(
    "name",
    [
        "same-range-pt0.8",
        "all-range-pt1.0-rot20",
        "orig-mean-pt0.5-bates3",
        "all-min-pt0.9-batesm4-sig2.5-jit0-jut0.2-oipcos-post",
        "same-max-pt0.8-bates0-oip0.25",
        "all-range-pt0.8-oiplin",
        "all-range-pt0.8-oiprevlin",
    ],
)
def test_canonical_names_round_trip(name):
    config = RecombineConfig.from_name(name)
    assert config.name == name
    assert RecombineConfig.from_name(config.name) == config


def test_name_parses_every_parameter():
    config = RecombineConfig.from_name("all-min-pt0.9-rot15-batesm4-sig2.5-jit0.1-jut0.2-oipcos-post")
    assert config == RecombineConfig(
        background_combination="all", fg_size_mode="min", pruning_threshold=0.9, rotation=15, fg_bates_n=-4,
        mask_smoothing_sigma=2.5, fg_scale_jitter=0.1, rel_jut_out=0.2, orig_img_prob="cos",
        paste_pre_transform=False,
    )


def test_defaults_are_omitted_and_numbers_normalised():
    assert RecombineConfig.from_name("same-range-pt1-rot20.0-bates1-sig4-jit0.3").name == "same-range-pt1.0-rot20"
    assert RecombineConfig.from_name("all-range-pt0.80").name == "all-range-pt0.8"


def test_keyword_override_shows_in_name():
    config = RecombineConfig.from_name("same-range-pt0.8", rotation=30, fg_bates_n=-2)
    assert config.name == "same-range-pt0.8-rot30-batesm2"
    # Agreeing with the name is fine.
    assert RecombineConfig.from_name("same-range-pt0.8-rot30", rotation=30).rotation == 30


def test_keyword_contradicting_token_is_an_error():
    with pytest.raises(ValueError, match=r"rotation=10.*contradicts.*rotation=20"):
        RecombineConfig.from_name("all-range-pt1.0-rot20", rotation=10)


@pytest.mark.parametrize(
    "name, message",
    [
        ("same-range-pt0.8-spin3", r"Unknown token 'spin3'.*allowed tokens: rot<deg>"),
        ("any-range-pt0.8", r"background.*must be one of \['same', 'all', 'orig'\], got 'any'"),
        ("same-huge-pt0.8", r"size mode.*must be one of \['range', 'min', 'max', 'mean'\], got 'huge'"),
        ("same-range-pt1.5", r"`pruning_threshold` out of bounds. Expected inside \(0.0, 1.0\], got 1.5"),
        ("same-range-pt0", r"`pruning_threshold` out of bounds"),
        ("same-range-0.8", r"pt<threshold>"),
        ("same-range", r"<background>-<size>-pt<threshold>"),
        ("same-range-pt0.8-rot10-rot20", r"sets `rotation` twice"),
        ("same-range-pt0.8-oipfast", r"Unknown token 'oipfast'"),
        ("same-range-pt0.8-jit1", r"`fg_scale_jitter` out of bounds"),
        ("same-range-pt0.8-rot200", r"`rotation` out of bounds"),
    ],
)
def test_bad_names_raise_clear_errors(name, message):
    with pytest.raises(ValueError, match=message):
        RecombineConfig.from_name(name)


def test_unknown_keyword_lists_allowed():
    with pytest.raises(ValueError, match=r"Unknown recombination parameter `spin`; allowed: \["):
        RecombineConfig.from_name("same-range-pt0.8", spin=3)


def test_bates_must_be_integer():
    with pytest.raises(ValueError, match="`fg_bates_n` must be an integer"):
        RecombineConfig(fg_bates_n=1.5)
