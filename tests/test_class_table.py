"""Tests for the committed ImageNet-1k class table and its runtime API."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources

import pytest

from recombinet_builder.class_table import (
    ImageNetClass,
    class_by_index,
    class_by_wnid,
    detection_prompts,
    imagenet_class_names,
    load_imagenet_classes,
)


def test_thousand_classes_in_index_order() -> None:
    classes = load_imagenet_classes()
    assert len(classes) == 1000
    assert [c.index for c in classes] == list(range(1000))


def test_wnids_sorted_ascending() -> None:
    wnids = [c.wnid for c in load_imagenet_classes()]
    assert wnids == sorted(wnids)
    assert len(set(wnids)) == 1000
    assert all(w.startswith("n") and len(w) == 9 and w[1:].isdigit() for w in wnids)


@pytest.mark.parametrize(
    ("index", "wnid", "name"),
    [(0, "n01440764", "tench"), (1, "n01443537", "goldfish"), (207, "n02099601", "golden retriever")],
)
def test_known_entries(index: int, wnid: str, name: str) -> None:
    cls = class_by_index(index)
    assert (cls.index, cls.wnid, cls.name) == (index, wnid, name)
    assert class_by_wnid(wnid) == cls
    assert cls.lemmas[0] == name


def test_tench_entry() -> None:
    tench = class_by_index(0)
    assert tench.lemmas == ("tench", "Tinca tinca")
    assert tench.ancestors[:2] == ("cyprinid", "cypriniform fish")


def test_every_class_has_ancestors() -> None:
    for cls in load_imagenet_classes():
        assert 1 <= len(cls.ancestors) <= 3, cls
        assert all(a and "_" not in a for a in cls.ancestors), cls


def test_names_unique_and_disambiguated() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000
    assert len({n.casefold() for n in names}) == 1000
    assert names[0] == "tench" and names[207] == "golden retriever"
    crane_bird, crane_machine = class_by_wnid("n02012849"), class_by_wnid("n03126707")
    assert crane_bird.name == crane_machine.name == "crane"
    assert names[crane_bird.index] == f"crane ({crane_bird.ancestors[0]})"
    assert names[crane_machine.index] == f"crane ({crane_machine.ancestors[0]})"
    maillots = [i for i, n in enumerate(names) if n.startswith("maillot")]
    assert len(maillots) == 2 and all(names[i] != "maillot" for i in maillots)
    # names not shared by another class stay the plain first lemma
    assert sum(n == c.name for n, c in zip(names, load_imagenet_classes())) >= 990


def test_class_is_frozen() -> None:
    cls = class_by_index(1)
    assert isinstance(cls, ImageNetClass)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cls.name = "carp"  # type: ignore[misc]


def test_goldfish_prompts() -> None:
    goldfish = class_by_index(1)
    assert detection_prompts(goldfish.name, goldfish.ancestors) == [
        "a goldfish, a type of cyprinid.",
        "a cyprinid.",
        "a cypriniform fish.",
    ]
    assert detection_prompts("goldfish", ["cyprinid", "cypriniform fish"], max_ancestors=1) == [
        "a goldfish, a type of cyprinid.",
        "a cyprinid.",
    ]
    assert detection_prompts("Goldfish", []) == ["a goldfish."]
    assert detection_prompts("goldfish", ["cyprinid"], max_ancestors=0) == ["a goldfish, a type of cyprinid."]


def test_prompts_lowercase_with_period() -> None:
    for cls in load_imagenet_classes():
        for prompt in detection_prompts(cls.name, cls.ancestors):
            assert prompt == prompt.lower() and prompt.endswith(".") and not prompt.endswith("..")


def test_unknown_wnid_error_names_it() -> None:
    with pytest.raises(ValueError, match="n99999999"):
        class_by_wnid("n99999999")


@pytest.mark.parametrize("bad", [-1, 1000, "1"])
def test_bad_index_error(bad: object) -> None:
    with pytest.raises(ValueError, match=r"0\.\.999"):
        class_by_index(bad)  # type: ignore[arg-type]


def test_table_file_provenance_and_size() -> None:
    ref = resources.files("recombinet_builder").joinpath("data", "imagenet_classes.json")
    raw = ref.read_bytes()
    assert len(raw) < 300_000
    table = json.loads(raw)
    assert "timm" in table["source"] and "WordNet 3.0" in table["source"]
