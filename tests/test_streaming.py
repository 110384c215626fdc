import collections

import datasets
import numpy as np
import pytest
import torch

from recombinet_hf import RecombineIterableDataset, get_recombiner, load_dataset, set_epoch, split_dataset_by_node
from recombinet_hf.streaming import ParquetFiles, StreamedBackgrounds
from synthetic import make_release


@pytest.fixture(scope="module")
def wide_release(tmp_path_factory):
    """5 classes x 5 images (25 rows) in 4 shards per config: uneven shards for sharding tests."""
    names = ["a", "b", "c", "d", "e"]
    folder = tmp_path_factory.mktemp("wide")
    return make_release(folder, per_class=5, class_names=names, splits=("train",), num_shards=4)


def pixels(sample) -> bytes:
    return np.asarray(sample["image"]).tobytes()


@pytest.mark.parametrize("name", ["all-range-pt1.0-rot20", "same-range-pt0.4-oip0.5"])
def test_streaming_equals_map_style(release, name):
    mapped = load_dataset(release, name, split="train", seed=4, return_params=True)
    streamed = load_dataset(release, name, split="train", seed=4, return_params=True, streaming=True)
    assert isinstance(streamed, RecombineIterableDataset) and len(streamed) == len(mapped) == 12
    assert streamed.features["label"].names == mapped.features["label"].names
    for epoch in (0, 3):
        set_epoch(mapped, epoch)
        set_epoch(streamed, epoch)
        expected = {sample["params"]["idx"]: sample for sample in mapped}
        seen = list(streamed)
        assert sorted(s["params"]["idx"] for s in seen) == sorted(expected)
        for sample in seen:
            reference = expected[sample["params"]["idx"]]
            assert sample["params"] == reference["params"]
            assert {k: sample[k] for k in ("label", "fg_key", "bg_key", "bg_label")} == {
                k: reference[k] for k in ("label", "fg_key", "bg_key", "bg_label")}
            assert pixels(sample) == pixels(reference)


def test_background_adapter_reads_rows_on_demand(release):
    files = ParquetFiles(sorted((release / "data" / "backgrounds").glob("train-*.parquet")))
    backgrounds = StreamedBackgrounds(files, cache_size=1)
    stored = load_dataset(release, "backgrounds", split="train").cast_column("image", datasets.Image(decode=False))
    assert list(backgrounds["key"]) == stored["key"] and list(backgrounds["idx"]) == stored["idx"]
    for row in (0, 7, 3, 11):
        record = backgrounds[row]
        assert record["key"] == stored[row]["key"] and record["image"]["bytes"] == stored[row]["image"]["bytes"]
    assert len(backgrounds._cache) == 1  # bounded LRU of row groups
    with pytest.raises(IndexError, match=r"out of range \[0, 12\)"):
        backgrounds[12]
    url = ParquetFiles([f"file://{path}" for path in files.files])  # the fsspec path (as for hf:// URLs)
    assert StreamedBackgrounds(url)[5]["key"] == backgrounds[5]["key"]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("num_workers", [1, 2, 5])
def test_sharding_covers_every_row_once(wide_release, world_size, num_workers, shuffle):
    dataset = load_dataset(wide_release, "all-range-pt1.0", split="train", streaming=True, shuffle=shuffle)
    assert len(dataset.foregrounds.row_groups) == 4
    for epoch in (0, 1):
        counts = collections.Counter()
        for rank in range(world_size):
            node = split_dataset_by_node(dataset, rank=rank, world_size=world_size)
            node_rows = [
                row["idx"] for worker in range(num_workers) for row in node.iter_rows(epoch, worker, num_workers)
            ]
            node.set_epoch(epoch)
            assert len(node_rows) == len(node)
            counts.update(node_rows)
        assert counts == collections.Counter(range(25))


def test_dataloader_workers_and_nodes(wide_release):
    dataset = load_dataset(wide_release, "same-range-pt1.0", split="train", streaming=True, seed=2)
    keys = collections.Counter()
    for rank in range(2):
        node = split_dataset_by_node(dataset, rank=rank, world_size=2)
        loader = torch.utils.data.DataLoader(node, batch_size=4, num_workers=2, collate_fn=lambda rows: rows)
        keys.update(row["fg_key"] for batch in loader for row in batch)
    assert len(keys) == 25 and set(keys.values()) == {1}
    with pytest.raises(ValueError, match="already node 1 of 2"):
        split_dataset_by_node(dataset, 1, 2).shard(2, 0)
    plain = datasets.load_dataset(str(wide_release), "foregrounds", split="train", streaming=True)
    assert isinstance(split_dataset_by_node(plain, rank=0, world_size=2), datasets.IterableDataset)


@pytest.mark.parametrize("persistent", [False, True])
def test_set_epoch_reaches_streaming_workers(release, persistent):
    dataset = load_dataset(release, "all-range-pt1.0-rot10", split="train", streaming=True, seed=1)

    def by_key(**kwargs):
        loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=lambda rows: rows, **kwargs)
        epochs = []
        for epoch in range(2):
            set_epoch(dataset, epoch)
            epochs.append({row["fg_key"]: pixels(row) for batch in loader for row in batch})
        return epochs

    reference = by_key(num_workers=0)
    assert reference[0].keys() == reference[1].keys() and reference[0] != reference[1]
    assert by_key(num_workers=2, persistent_workers=persistent) == reference


def test_streaming_options(release):
    dataset = load_dataset(release, "same-range-pt0.8", split="train", streaming=True)
    assert dataset.shuffle and get_recombiner(dataset) is dataset.recombiner
    assert dataset.present_labels() == [0, 1, 2]
    both = load_dataset(release, "same-range-pt0.8", streaming=True)
    assert set(both) == {"train", "validation"} and not both["validation"].shuffle
    rows = load_dataset(release, "foregrounds", split="train", streaming=True)
    assert isinstance(rows, datasets.IterableDataset)
    with pytest.raises(ValueError, match=r"`shuffle=True` applies to `streaming=True` only"):
        load_dataset(release, "same-range-pt0.8", split="train", shuffle=True)
