import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from recombinet_hf import (
    Compose,
    ImageDecodeError,
    RandomHorizontalFlip,
    RandomResizedCrop,
    get_recombiner,
    load_dataset,
    set_epoch,
)
from recombinet_hf.parquet_writer import shard_path, write_shard
from synthetic import CLASS_NAMES, make_release


def pixels(sample) -> bytes:
    return np.asarray(sample["image"]).tobytes()


def test_sample_contract(release):
    dataset = load_dataset(release, "same-range-pt0.8", split="train", seed=0)
    sample = dataset[0]
    assert set(sample) == {"image", "label", "fg_key", "bg_key", "bg_label"}
    assert isinstance(sample["image"], Image.Image) and sample["image"].mode == "RGB"
    assert sample["label"] == sample["bg_label"]  # `same`
    assert len(dataset) == 12
    assert dataset.features["label"].names == CLASS_NAMES


def test_same_draws_own_class_all_mixes(release):
    same = load_dataset(release, "same-range-pt1.0", split="train")
    every = load_dataset(release, "all-range-pt1.0", split="train")
    pairs_all = set()
    for epoch in range(4):
        set_epoch(same, epoch)
        set_epoch(every, epoch)
        assert all(s["label"] == s["bg_label"] for s in same)
        pairs_all |= {(s["label"], s["bg_label"]) for s in every}
    assert len({b for _, b in pairs_all}) == 3 and any(a != b for a, b in pairs_all)


def test_pruning_applies_in_the_loader(release):
    # synthetic fg_ratios cycle 0.1, 0.2, 0.3, 0.5: pt0.4 drops the 0.5 ones
    dataset = load_dataset(release, "all-range-pt0.4", split="train", return_params=True)
    ratios = dict(zip(dataset.with_format(None)["idx"], dataset.with_format(None)["fg_ratio"]))
    for epoch in range(5):
        set_epoch(dataset, epoch)
        for sample in dataset:
            assert ratios[sample["params"]["bg_idx"]] < 0.4


def test_same_input_same_image_and_epoch_changes_it(release):
    a = load_dataset(release, "all-range-pt1.0-rot20", split="train", seed=5)
    b = load_dataset(release, "all-range-pt1.0-rot20", split="train", seed=5)  # a "restart"
    first = [pixels(a[i]) for i in range(len(a))]
    assert first == [pixels(b[i]) for i in range(len(b))]
    assert first[3] == pixels(a.select([3])[0])  # row order / subsets do not matter
    set_epoch(a, 1)
    assert sum(x != pixels(a[i]) for i, x in enumerate(first)) >= 10
    set_epoch(a, 0)
    assert [pixels(a[i]) for i in range(len(a))] == first
    c = load_dataset(release, "all-range-pt1.0-rot20", split="train", seed=6)
    assert sum(x != pixels(c[i]) for i, x in enumerate(first)) >= 10


def _loader_pixels(dataset, **kwargs) -> list[list[bytes]]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=lambda rows: rows, **kwargs)
    epochs = []
    for epoch in range(2):
        set_epoch(dataset, epoch)
        epochs.append([pixels(row) for batch in loader for row in batch])
    return epochs


@pytest.mark.parametrize("persistent", [False, True])
def test_dataloader_workers_match_main_process(release, persistent):
    dataset = load_dataset(release, "all-range-pt1.0", split="train", seed=3)
    reference = _loader_pixels(dataset, num_workers=0)
    assert reference[0] != reference[1]
    workers = _loader_pixels(dataset, num_workers=2, persistent_workers=persistent)
    assert workers == reference


def test_params_replay_exactly(release):
    dataset = load_dataset(
        release, "all-range-pt1.0-rot30-jut0.2", split="train", return_params=True, return_mask=True,
        background_transform=Compose([RandomResizedCrop(48), RandomHorizontalFlip()]),
    )
    sample = dataset[4]
    recombiner = get_recombiner(dataset)
    row = dataset.with_format(None)[4]
    replay = recombiner.apply(row, sample["params"], epoch=7)
    assert pixels(replay) == pixels(sample)
    assert np.array_equal(np.asarray(replay["mask"]), np.asarray(sample["mask"]))
    assert sample["image"].size == (48, 48) and sample["mask"].size == (48, 48)
    other = dataset.with_format(None)[5]
    with pytest.raises(ValueError, match=f"drawn for idx {row['idx']}, not for the row with idx {other['idx']}"):
        recombiner.apply(other, sample["params"])


def test_post_mode_pastes_on_the_transformed_background(release):
    dataset = load_dataset(release, "same-range-pt1.0-sig0-post", split="train", return_mask=True,
                           background_transform=RandomResizedCrop((40, 60), scale=(0.5, 1.0)), return_params=True)
    for sample in dataset:
        assert sample["image"].size == (60, 40) == sample["mask"].size
        area = np.asarray(sample["mask"], dtype=float).sum() / 255
        target = sample["params"]["target_area"] * 60 * 40
        assert area == pytest.approx(target, rel=0.35)  # pasted at the small canvas's scale


def test_mask_is_aligned_with_the_object(release):
    dataset = load_dataset(release, "all-range-pt1.0-sig0", split="train", return_mask=True)
    for sample in dataset:
        image = np.asarray(sample["image"], dtype=int)
        mask = np.asarray(sample["mask"]) == 255
        colour = [(220, 30, 30), (30, 200, 40), (40, 60, 230)][sample["label"]]
        assert np.abs(image[mask] - colour).max() <= 8


def test_original_image_probability_and_reconstruction(release):
    always = load_dataset(release, "same-range-pt1.0-oip1", split="train", return_mask=True)
    raw = always.with_format(None)
    for i in range(3):
        sample = always[i]
        width, height = raw[i]["source_size"]
        assert sample["image"].size == (width, height) and sample["bg_key"] == sample["fg_key"]
        x0, y0, x1, y1 = raw[i]["box"]
        assert np.asarray(sample["mask"])[y0:y1, x0:x1].mean() > 100
    schedule = load_dataset(release, "same-range-pt1.0-oiplin", split="train", num_epochs=3, return_params=True)
    set_epoch(schedule, 0)
    assert not any(s["params"]["use_original"] for s in schedule)
    set_epoch(schedule, 2)
    assert all(s["params"]["use_original"] for s in schedule)
    with pytest.raises(ValueError, match="pass `num_epochs`"):
        load_dataset(release, "same-range-pt1.0-oipcos", split="train")


def test_original_from_source(release, tmp_path):
    raw = load_dataset(release, "foregrounds", split="train")
    marker = {key: Image.new("RGB", (10, 10), (i, 0, 0)) for i, key in enumerate(raw["key"])}
    dataset = load_dataset(release, "all-range-pt1.0-oip1", split="train", source=marker)
    assert dataset[2]["image"].getpixel((0, 0)) == (2, 0, 0)
    folder = tmp_path / "src"
    folder.mkdir()
    for key, image in marker.items():
        image.save(folder / f"{key}.png")
    dataset = load_dataset(release, "all-range-pt1.0-oip1", split="train", source=folder)
    assert dataset[5]["image"].getpixel((0, 0)) == (5, 0, 0)


def test_mask_of_a_resized_original_follows_it(release):
    raw = load_dataset(release, "foregrounds", split="train")
    half = {row["key"]: row["image"].resize((48, 36)) for row in load_dataset(release, "backgrounds", split="train")}
    dataset = load_dataset(release, "all-range-pt1.0-oip1", split="train", source=half, return_mask=True)
    for i in range(4):
        sample, row = dataset[i], raw[i]
        x0, y0, x1, y1 = (v // 2 for v in row["box"])  # sources are 96x72
        mask = np.asarray(sample["mask"], dtype=float)
        assert sample["image"].size == mask.shape[::-1] == (48, 36)
        assert mask[y0:y1, x0:x1].sum() / max(mask.sum(), 1) > 0.95


def test_image_processor_gives_pixel_values(release):
    from transformers import ViTImageProcessorPil

    processor = ViTImageProcessorPil(size={"height": 32, "width": 32})
    dataset = load_dataset(release, "all-range-pt1.0", split="train", image_transform=processor, return_mask=True)
    sample = dataset[0]
    assert sample["pixel_values"].shape == (3, 32, 32)
    assert sample["mask"].shape == (32, 32) and 0 <= float(sample["mask"].min()) and float(sample["mask"].max()) <= 1
    plain = load_dataset(release, "all-range-pt1.0-sig0", split="train", return_mask=True,
                         image_transform=lambda im: np.asarray(im.resize((8, 6), Image.Resampling.NEAREST)))
    sample = plain[0]
    assert sample["pixel_values"].shape == (6, 8, 3) and sample["mask"].shape == (6, 8)
    colour = np.array([(220, 30, 30), (30, 200, 40), (40, 60, 230)][sample["label"]])
    object_pixels = sample["pixel_values"][sample["mask"] == 255]
    assert len(object_pixels) and np.abs(object_pixels - colour).max() <= 8  # mask aligned with the image
    tensor = load_dataset(release, "all-range-pt1.0", split="train", return_mask=True,
                          image_transform=lambda im: torch.from_numpy(np.array(im.resize((8, 6)))).permute(2, 0, 1))
    assert tensor[0]["pixel_values"].shape == (3, 6, 8) and tensor[0]["mask"].shape == (6, 8)


def test_dataset_dict_without_split(release):
    both = load_dataset(release, "same-range-pt0.8")
    assert set(both) == {"train", "validation"}
    assert both["validation"][0]["image"].mode == "RGB"


def test_data_config_passes_through(release):
    masks = load_dataset(release, "masks", split="train")
    assert masks[0]["mask"].mode == "L"


@pytest.mark.parametrize(
    "name, kwargs, error, message",
    [
        ("same-range-pt0.8-zoom2", {}, ValueError, r"Unknown token 'zoom2'"),
        ("same-range-pt0.8", {"split": "test"}, ValueError, r"Unknown split 'test'.*available splits: \['train', 'validation'\]"),
        ("same-range-pt0.8-rot10", {"rotation": 20, "split": "train"}, ValueError, r"contradicts"),
        ("same-range-pt0.8", {"split": "train", "seed": -1}, ValueError, r"`seed` must be a non-negative"),
    ],
)
def test_bad_arguments(release, name, kwargs, error, message):
    with pytest.raises(error, match=message):
        load_dataset(release, name, **kwargs)


def test_wrong_format_version(release, tmp_path):
    copy = shutil.copytree(release, tmp_path / "copy")
    info = json.loads((copy / "recombinet.json").read_text())
    info["format_version"] = 99
    (copy / "recombinet.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"format_version=99.*reads format_version \[1\]"):
        load_dataset(copy, "same-range-pt0.8", split="train")
    (copy / "recombinet.json").unlink()
    with pytest.raises(FileNotFoundError, match="not a RecombiNet release"):
        load_dataset(copy, "same-range-pt0.8", split="train")


def _rewrite_shard(folder, config, edit):
    """Rewrite the single train shard of `config` with `edit(rows)` (read with pyarrow, not
    through `datasets`, so no Arrow cache of the old content exists)."""
    import pyarrow.parquet as pq

    path = shard_path(folder, config, "train", 0, 1)
    rows = pq.read_table(path).to_pylist()
    write_shard(path, config, edit(rows), CLASS_NAMES)


def test_missing_column(tmp_path):
    from huggingface_hub import DatasetCard

    folder = make_release(tmp_path / "missing_column", per_class=1, splits=("train",), num_shards=1)
    import pyarrow.parquet as pq

    path = shard_path(folder, "backgrounds", "train", 0, 1)
    pq.write_table(pq.read_table(path).drop_columns(["fg_ratio"]), path)
    card = DatasetCard.load(folder / "README.md")
    for info in card.data.dataset_info:
        if info["config_name"] == "backgrounds":
            info["features"] = [f for f in info["features"] if f["name"] != "fg_ratio"]
    card.save(folder / "README.md")
    with pytest.raises(ValueError, match=r"config 'backgrounds' is missing column\(s\) \['fg_ratio'\]"):
        load_dataset(folder, "same-range-pt0.8", split="train")


def test_corrupt_image_row_names_its_key(tmp_path):
    folder = make_release(tmp_path / "corrupt_row", per_class=1, splits=("train",), num_shards=1)

    def corrupt(rows):
        rows[1]["image"] = {"bytes": b"\x89PNG\r\n\x1a\n this is not an image", "path": None}
        return rows

    _rewrite_shard(folder, "foregrounds", corrupt)
    dataset = load_dataset(folder, "all-range-pt1.0", split="train")
    dataset[0]
    with pytest.raises(ImageDecodeError, match=r"foreground of row 'train_1_0000' could not be decoded"):
        dataset[1]


def test_grayscale_cmyk_palette_sources(tmp_path):
    folder = make_release(tmp_path / "odd_modes", per_class=1, splits=("train",), num_shards=1)

    def convert(rows):
        for row, mode in zip(rows, ["L", "CMYK", "P"]):
            image = Image.open(io.BytesIO(row["image"]["bytes"])).convert(mode)
            buffer = io.BytesIO()
            image.save(buffer, format="TIFF" if mode == "CMYK" else "PNG")
            row["image"] = buffer.getvalue()
        return rows

    _rewrite_shard(folder, "backgrounds", convert)
    dataset = load_dataset(folder, "orig-range-pt1.0", split="train")
    assert [s["image"].mode for s in dataset] == ["RGB"] * 3


def test_no_global_random_state_is_touched(release):
    np.random.seed(0)
    import random

    random.seed(0)
    before = (np.random.random(), random.random())
    np.random.seed(0)
    random.seed(0)
    dataset = load_dataset(release, "all-range-pt1.0-rot10", split="train")
    [dataset[i] for i in range(4)]
    assert (np.random.random(), random.random()) == before


@pytest.mark.parametrize("path", ["./no/such/release", "/no/such/release", "no-such-org/no-such-release"])
def test_missing_release_is_named(path):
    with pytest.raises(FileNotFoundError, match="release"):
        load_dataset(path, "same-range-pt0.8", split="train")


def test_split_slices(release):
    whole = load_dataset(release, "all-range-pt1.0", split="train", return_params=True)
    part = load_dataset(release, "all-range-pt1.0", split="train[2:5]", return_params=True)
    assert len(part) == 3
    assert [s["params"] for s in part] == [whole[i]["params"] for i in range(2, 5)]  # same samples
    assert len(load_dataset(release, "all-range-pt1.0", split="validation[:50%]")) == 6
    with pytest.raises(ValueError, match="combines several splits"):
        load_dataset(release, "all-range-pt1.0", split="train[:2]+validation")
    with pytest.raises(ValueError, match=r"Unknown split 'test\[:5\]'"):
        load_dataset(release, "all-range-pt1.0", split="test[:5]")


def _rows(batch):
    return batch


def test_spawned_persistent_workers_follow_set_epoch(release):
    dataset = load_dataset(release, "all-range-pt1.0", split="train", seed=3)
    reference = _loader_pixels(dataset, num_workers=0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=3, collate_fn=_rows, num_workers=2, persistent_workers=True,
        multiprocessing_context="spawn",
    )
    spawned = []
    for epoch in range(2):
        set_epoch(dataset, epoch)
        spawned.append([pixels(row) for batch in loader for row in batch])
    assert spawned == reference


def test_shared_epoch_copies_and_pickles():
    import copy
    import pickle

    from recombinet_hf.epoch import SharedEpoch

    epoch = SharedEpoch(3)
    twin, clone = copy.deepcopy(epoch), pickle.loads(pickle.dumps(epoch))
    epoch.value = 7
    assert twin.value == 7 and clone.value == 7  # same block while its creator lives
    orphan = SharedEpoch._attach("rn_no_such_block", 5)
    assert orphan.value == 5


def test_shared_epoch_without_shared_memory(monkeypatch):
    import pickle

    from recombinet_hf import epoch as epoch_module

    def refuse(*args, **kwargs):
        raise OSError("no /dev/shm")

    monkeypatch.setattr(epoch_module.shared_memory, "SharedMemory", refuse)
    counter = epoch_module.SharedEpoch(2)
    counter.value = 4
    assert counter.value == 4 and pickle.loads(pickle.dumps(counter)).value == 4
