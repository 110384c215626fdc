"""Sources: where the labelled photos come from, as sorted lists of items per release split.

Three kinds, picked by the `--source` spec (:func:`open_source`):

* ``sample``: the 20 foolbox ImageNet photos (:mod:`recombinet_builder.sample`), split
  ``train``, ImageNet-1k label space.
* a folder ``PATH``:

  - ImageNet-style class folders ``PATH/train/<class>/*`` and ``PATH/val/<class>/*``
    (``val/`` or ``validation/`` becomes the release split ``validation``). When every
    class folder is an ImageNet-1k wnid the label space is ImageNet-1k (index = position
    among the 1000 sorted wnids, names and prompts from the class table); otherwise it is
    the sorted class folder names (labels as in torchvision's ImageFolder).
  - the flat ImageNet validation folder ``PATH/val/*.JPEG`` with a label file. Supported:
    Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString``; the label is the first
    wnid of the prediction string), and the devkit's
    ``ILSVRC2012_validation_ground_truth.txt`` (line *i* = 1-based ILSVRC2012_ID of
    ``ILSVRC2012_val_<i:08d>``), which needs the devkit's ``meta.mat`` (ILSVRC2012_ID ->
    wnid; read with scipy) found next to it, in ``../data/meta.mat``, or given with
    ``--devkit-meta``. The label file is given with ``--val-labels`` or found in ``PATH``,
    ``PATH/val`` or up to three parent folders of ``PATH`` (Kaggle's layout keeps it three
    levels above ``ILSVRC/Data/CLS-LOC``).

  Image files are those with the suffixes of :data:`IMAGE_SUFFIXES` (any case); the key of
  an image is its file stem (ImageNet's file names), unique within a split.
* ``hf:ID_OR_PATH``: any `datasets` dataset (Hub id, local script-free dataset folder, or a
  ``save_to_disk`` folder) with an image column and a ClassLabel column (auto-detected, or
  ``--image-column`` / ``--label-column``). Source splits ``train`` -> ``train`` and
  ``validation``/``valid``/``val`` -> ``validation``; other splits (``test``, ...) are not
  built and are listed in the source description. The key of a row is ``--key-column``
  when given (unique strings), else its row number zero-padded to 8+ digits, so sorting
  by key keeps the source order. The label space is the dataset's ClassLabel.

Items of a split are sorted by key; an item's position in that order is its `idx`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from recombinet_hf.features import SPLITS

from . import class_table

__all__ = [
    "IMAGE_SUFFIXES",
    "SourceItem",
    "Source",
    "open_source",
    "sample_source",
    "folder_source",
    "hf_source",
    "parse_loc_val_solution",
    "parse_ground_truth",
    "read_devkit_meta",
    "source_fingerprint",
]

logger = logging.getLogger(__name__)

#: Image file suffixes a folder source lists (compared lower-case). Fixed here rather than
#: taken from PIL's registry so a source lists the same files on every machine.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
#: Source folder names of each release split.
FOLDER_SPLITS: dict[str, tuple[str, ...]] = {"train": ("train",), "validation": ("val", "validation")}
#: Source split names of each release split for `hf:` datasets.
HF_SPLITS: dict[str, tuple[str, ...]] = {"train": ("train",), "validation": ("validation", "valid", "val")}
LOC_VAL_SOLUTION = "LOC_val_solution.csv"
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
IMAGENET_LICENSE = {
    "license": "other",
    "license_name": "imagenet-terms-of-access",
    "license_link": "https://image-net.org/download.php",
}
_WNID = re.compile(r"^n\d{8}$")


@dataclass(frozen=True)
class SourceItem:
    """One source image.

    Attributes:
        key: source image id (file stem, sample name, or row key); unique within a split.
        label: index in the release's label space, or None when the source has no label
            for it (the image then ends as an error with reason ``no_label``).
        ref: how the source reads it: a file path, or a row number of an `hf:` dataset.
    """

    key: str
    label: Optional[int]
    ref: Any


@dataclass
class Source:
    """A labelled image source, read by the builder one item at a time.

    Attributes:
        kind: ``"sample"``, ``"folder"`` or ``"hf"``.
        description: JSON-able facts about the source for ``recombinet.json`` (spec, layout,
            label file, ignored splits...).
        class_names: the release's label space (ClassLabel names).
        label_space: ``"imagenet-1k"``, ``"folder"`` (sorted class folder names) or ``"source"``.
        splits: release split -> its items sorted by key.
        license: card license fields (``license``, optional ``license_name``/``license_link``).
    """

    kind: str
    description: dict
    class_names: list[str]
    label_space: str
    splits: dict[str, list[SourceItem]]
    license: dict = field(default_factory=dict)
    _reader: Callable[[str, SourceItem], bytes] = field(default=lambda split, item: b"", repr=False)
    _prompts: Callable[[int], list[str]] = field(default=lambda label: [], repr=False)

    def read(self, split: str, item: SourceItem) -> bytes:
        """The encoded bytes of `item` (may be empty or corrupt: decoding is the caller's job)."""
        return self._reader(split, item)

    def prompts(self, label: int) -> list[str]:
        """Detection prompts of class `label` (class name plus WordNet ancestors when known)."""
        return self._prompts(label)

    def limited(self, limit: Optional[int], splits: Optional[Sequence[str]] = None) -> "Source":
        """This source restricted to the release splits `splits` and the first `limit` items
        of each (in key order); None keeps everything."""
        if splits is not None:
            unknown = sorted(set(splits) - set(SPLITS))
            if unknown:
                raise ValueError(f"`--splits` got unknown split(s) {unknown}; allowed: {list(SPLITS)}.")
        if limit is not None and limit < 1:
            raise ValueError(f"`--limit` must be a positive number of images per split; got {limit}.")
        kept = {
            split: items[:limit] if limit is not None else items
            for split, items in self.splits.items()
            if splits is None or split in splits
        }
        if not any(kept.values()):
            raise ValueError(
                f"The source has no images in the requested split(s) {list(splits or SPLITS)}; "
                f"it has {[s for s, items in self.splits.items() if items]}."
            )
        return Source(
            self.kind, self.description, self.class_names, self.label_space, kept, self.license,
            self._reader, self._prompts,
        )


# ------------------------------------------------------------------ prompts


@lru_cache(maxsize=None)
def _imagenet_prompts(label: int) -> tuple[str, ...]:
    entry = class_table.class_by_index(label)
    return tuple(class_table.detection_prompts(entry.name, entry.ancestors))


def imagenet_prompts(label: int) -> list[str]:
    """Prompts of ImageNet class `label`: ``"a goldfish, a type of cyprinid."`` + ancestors."""
    return list(_imagenet_prompts(label))


def name_prompts(class_names: Sequence[str]) -> Callable[[int], list[str]]:
    """Prompts from bare class names (``"golden_retriever"`` -> ``"a golden retriever."``)."""

    def prompts(label: int) -> list[str]:
        name = class_names[label].replace("_", " ").strip()
        return class_table.detection_prompts(name, []) if name else []

    return prompts


# ------------------------------------------------------------------ sample


def sample_source() -> Source:
    """The 20 foolbox ImageNet photos as split `train` (label = ImageNet index)."""
    from .sample import SAMPLE_WHEEL, sample_images
    from .registry_assets import pinned

    samples = sample_images()
    items = [SourceItem(key=s.key, label=s.label, ref=s.path) for s in samples]
    return Source(
        kind="sample",
        description={
            "spec": "sample",
            "kind": "sample",
            "what": "ImageNet validation-style photos shipped by foolbox (foolbox/data/imagenet_NN_<class>.jpg)",
            "wheel": pinned(SAMPLE_WHEEL).requirement,
        },
        class_names=class_table.imagenet_class_names(),
        label_space="imagenet-1k",
        splits={"train": items},
        license=dict(IMAGENET_LICENSE),
        _reader=_read_path,
        _prompts=imagenet_prompts,
    )


def _read_path(split: str, item: SourceItem) -> bytes:
    return Path(item.ref).read_bytes()


# ------------------------------------------------------------------ folders


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _keyed(paths: Sequence[Path], where: Path) -> dict[str, Path]:
    """Map file stem -> path; a stem used twice is an error naming both files."""
    keyed: dict[str, Path] = {}
    for path in paths:
        if path.stem in keyed:
            raise ValueError(
                f"Two images in {where} have the key {path.stem!r}: {keyed[path.stem]} and {path}; "
                "keys (file stems) must be unique within a split."
            )
        keyed[path.stem] = path
    return keyed


def parse_loc_val_solution(text: str, *, where: str = LOC_VAL_SOLUTION) -> dict[str, str]:
    """Kaggle's ``LOC_val_solution.csv`` -> {image id: wnid} (first wnid of the prediction)."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
        raise ValueError(f"{where}: expected the header `ImageId,PredictionString`; got {header!r}.")
    labels: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) < 2 or not row[1].split():
            raise ValueError(f"{where} line {line}: expected `<image id>,<wnid> <box>...`; got {row!r}.")
        labels[row[0].strip()] = row[1].split()[0]
    return labels


def parse_ground_truth(text: str, id_to_wnid: Mapping[int, str], *, where: str = GROUND_TRUTH) -> dict[str, str]:
    """The devkit's ground-truth file (line i: 1-based ILSVRC2012_ID of image i) -> {image id: wnid}."""
    labels: dict[str, str] = {}
    for line, value in enumerate(text.split(), start=1):
        try:
            wnid = id_to_wnid[int(value)]
        except (ValueError, KeyError):
            raise ValueError(
                f"{where} line {line}: {value!r} is not an ILSVRC2012_ID in 1..{len(id_to_wnid)} of meta.mat."
            ) from None
        labels[f"ILSVRC2012_val_{line:08d}"] = wnid
    return labels


def read_devkit_meta(path: str | Path) -> dict[int, str]:
    """ILSVRC2012_ID -> wnid of the 1000 leaf synsets in the devkit's ``meta.mat``."""
    try:
        from scipy.io import loadmat
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError("Reading the devkit's meta.mat needs scipy: `pip install recombinet[builder]`.") from error
    synsets = loadmat(str(path), squeeze_me=True)["synsets"]
    mapping: dict[int, str] = {}
    for entry in synsets.ravel():
        children = int(entry["num_children"]) if "num_children" in entry.dtype.names else 0
        if children == 0:
            mapping[int(entry["ILSVRC2012_ID"])] = str(entry["WNID"])
    if not mapping:
        raise ValueError(f"{path}: no leaf synsets (num_children == 0) in `synsets`.")
    return mapping


def _find_label_file(root: Path, split_dir: Path) -> Optional[Path]:
    for folder in [root, split_dir, *list(root.resolve().parents)[:3]]:
        for name in (LOC_VAL_SOLUTION, GROUND_TRUTH):
            if (folder / name).is_file():
                return folder / name
    return None


def _find_meta(label_file: Path) -> Optional[Path]:
    for candidate in (label_file.parent / "meta.mat", label_file.parent.parent / "data" / "meta.mat"):
        if candidate.is_file():
            return candidate
    return None


def _flat_labels(
    root: Path, split_dir: Path, val_labels: Optional[Path], devkit_meta: Optional[Path]
) -> tuple[dict[str, str], dict]:
    label_file = Path(val_labels) if val_labels else _find_label_file(root, split_dir)
    if label_file is None or not label_file.is_file():
        raise ValueError(
            f"{split_dir} holds images without class folders, so it needs a label file: "
            f"`--val-labels` {LOC_VAL_SOLUTION} (Kaggle) or {GROUND_TRUTH} (+ the devkit's meta.mat); "
            f"none was given{'' if val_labels else ' or found next to the folder'}"
            f"{f' (no such file {str(label_file)!r})' if label_file else ''}."
        )
    text = label_file.read_text(encoding="utf-8")
    if text.lstrip().startswith("ImageId"):
        return parse_loc_val_solution(text, where=str(label_file)), {"label_file": label_file.name, "format": "kaggle-loc-csv"}
    meta = Path(devkit_meta) if devkit_meta else _find_meta(label_file)
    if meta is None or not meta.is_file():
        raise ValueError(
            f"{label_file} holds 1-based ILSVRC2012_IDs; mapping them to wnids needs the devkit's meta.mat: "
            "pass `--devkit-meta PATH/meta.mat` (or put it next to the label file)."
        )
    labels = parse_ground_truth(text, read_devkit_meta(meta), where=str(label_file))
    return labels, {"label_file": label_file.name, "format": "ilsvrc2012-ground-truth", "devkit_meta": meta.name}


def _split_dir(root: Path, split: str) -> Optional[Path]:
    for name in FOLDER_SPLITS[split]:
        if (root / name).is_dir():
            return root / name
    return None


def folder_source(
    path: str | Path, *, val_labels: Optional[str | Path] = None, devkit_meta: Optional[str | Path] = None
) -> Source:
    """An ImageNet-style folder (class folders per split) or the flat ImageNet val folder."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"`--source` {str(path)!r} is not a folder (nor `sample` or `hf:ID`).")
    listing: dict[str, dict[str, Path]] = {}  # split -> key -> path
    folder_labels: dict[str, dict[str, str]] = {}  # split -> key -> class folder
    description: dict[str, Any] = {"spec": str(path), "kind": "folder", "name": root.name, "layout": {}}
    for split in SPLITS:
        split_dir = _split_dir(root, split)
        if split_dir is None:
            continue
        class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir())
        loose = sorted(p for p in split_dir.iterdir() if _is_image(p))
        if class_dirs and loose:
            raise ValueError(
                f"{split_dir} mixes class folders ({class_dirs[0].name}, ...) and loose images ({loose[0].name}, ...); "
                "use either `<split>/<class>/<image>` or a flat folder with a label file."
            )
        if class_dirs:
            paths, labels = [], {}
            for class_dir in class_dirs:
                for image in sorted(p for p in class_dir.rglob("*") if _is_image(p)):
                    paths.append(image)
                    labels[image.stem] = class_dir.name
            keyed = _keyed(paths, split_dir)
            description["layout"][split] = f"{split_dir.name}/<class>/<image>"
        elif loose:
            if split != "validation":
                raise ValueError(f"{split_dir} holds loose images; the train split needs class folders `train/<class>/*`.")
            keyed = _keyed(loose, split_dir)
            labels, facts = _flat_labels(root, split_dir, val_labels, devkit_meta)
            description["layout"][split] = f"{split_dir.name}/<image> + {facts['label_file']}"
            description.update({f"validation_{k}": v for k, v in facts.items()})
        else:
            continue
        listing[split] = keyed
        folder_labels[split] = labels
    if not listing:
        raise ValueError(
            f"{root} has no images under train/ or val/ (or validation/); expected an ImageNet-style "
            f"folder `train/<wnid>/*`, `val/<wnid>/*` with image suffixes {sorted(IMAGE_SUFFIXES)}."
        )

    used = sorted({name for labels in folder_labels.values() for name in labels.values()})
    imagenet = all(_WNID.match(name) for name in used) and _all_imagenet(used)
    if imagenet:
        class_names = class_table.imagenet_class_names()
        index = {name: class_table.class_by_wnid(name).index for name in used}
        prompts: Callable[[int], list[str]] = imagenet_prompts
        license = dict(IMAGENET_LICENSE)
    else:
        class_names = used
        index = {name: number for number, name in enumerate(used)}
        prompts = name_prompts(class_names)
        license = {}
    splits = {
        split: [
            SourceItem(key=key, label=index.get(folder_labels[split].get(key, "")), ref=keyed[key])
            for key in sorted(keyed)
        ]
        for split, keyed in listing.items()
    }
    for split, items in splits.items():
        unlabelled = sum(item.label is None for item in items)
        if unlabelled:
            logger.warning("%d image(s) of split %s have no label in the label file; they end as `no_label` errors.", unlabelled, split)
    if imagenet:
        description["kind"] = "imagenet-folder"
    return Source(
        kind="folder",
        description=description,
        class_names=class_names,
        label_space="imagenet-1k" if imagenet else "folder",
        splits=splits,
        license=license,
        _reader=_read_path,
        _prompts=prompts,
    )


def _all_imagenet(wnids: Sequence[str]) -> bool:
    try:
        for wnid in wnids:
            class_table.class_by_wnid(wnid)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------ hf datasets


def _load_hf(path: str, config: Optional[str], revision: Optional[str]):
    import datasets

    local = Path(path)
    if (local / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(local))
    if (local / "state.json").is_file() and (local / "dataset_info.json").is_file():
        return datasets.DatasetDict({"train": datasets.load_from_disk(str(local))})
    loaded = datasets.load_dataset(path, config, revision=revision)
    return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})


def _pick_column(features, kind: type, option: str, given: Optional[str], where: str) -> str:
    if given is not None:
        if given not in features:
            raise ValueError(f"`{option}` {given!r} is not a column of {where}; columns: {list(features)}.")
        if not isinstance(features[given], kind):
            raise ValueError(
                f"`{option}` {given!r} of {where} is a {type(features[given]).__name__}, expected {kind.__name__}."
            )
        return given
    found = [name for name, feature in features.items() if isinstance(feature, kind)]
    if len(found) != 1:
        raise ValueError(
            f"{where} has {len(found)} {kind.__name__} column(s) {found}; name the one to use with `{option}` "
            f"(columns: {list(features)})."
        )
    return found[0]


def hf_source(
    path: str,
    *,
    image_column: Optional[str] = None,
    label_column: Optional[str] = None,
    key_column: Optional[str] = None,
    config: Optional[str] = None,
    revision: Optional[str] = None,
) -> Source:
    """A `datasets` dataset with an Image and a ClassLabel column (see the module docstring)."""
    import datasets

    where = f"hf:{path}"
    loaded = _load_hf(path, config, revision)
    mapping = {
        release: next((name for name in names if name in loaded), None) for release, names in HF_SPLITS.items()
    }
    mapping = {release: name for release, name in mapping.items() if name is not None}
    if not mapping:
        raise ValueError(
            f"{where} has splits {list(loaded)}; the builder reads `train` and `validation` (or `valid`/`val`)."
        )
    ignored = sorted(set(loaded) - set(mapping.values()))
    splits: dict[str, list[SourceItem]] = {}
    tables: dict[str, Any] = {}
    class_names: Optional[list[str]] = None
    image_col = label_col = None
    for release, name in mapping.items():
        dataset = loaded[name]
        image_col = _pick_column(dataset.features, datasets.Image, "--image-column", image_column, f"{where} [{name}]")
        label_col = _pick_column(dataset.features, datasets.ClassLabel, "--label-column", label_column, f"{where} [{name}]")
        names = list(dataset.features[label_col].names)
        if class_names is not None and names != class_names:
            raise ValueError(f"{where}: the ClassLabel names of split {name!r} differ from the other split's.")
        class_names = names
        labels = list(dataset[label_col])
        if key_column is not None:
            if key_column not in dataset.column_names:
                raise ValueError(f"`--key-column` {key_column!r} is not a column of {where}; columns: {dataset.column_names}.")
            keys = [str(k) for k in dataset[key_column]]
            if len(set(keys)) != len(keys):
                raise ValueError(f"`--key-column` {key_column!r} of {where} [{name}] has repeated values; keys must be unique.")
        else:
            width = max(8, len(str(len(dataset) - 1)))
            keys = [f"{row:0{width}d}" for row in range(len(dataset))]
        items = [
            SourceItem(key=key, label=int(label) if label is not None and int(label) >= 0 else None, ref=row)
            for row, (key, label) in enumerate(zip(keys, labels))
        ]
        splits[release] = sorted(items, key=lambda item: item.key)
        tables[release] = dataset.select_columns([image_col]).cast_column(image_col, datasets.Image(decode=False))
    column = image_col

    def read(split: str, item: SourceItem) -> bytes:
        from recombinet_hf.images import image_bytes

        return image_bytes(tables[split][int(item.ref)][column]) or b""

    first = loaded[next(iter(mapping.values()))]
    license_name = (first.info.license or "").strip()
    return Source(
        kind="hf",
        description={
            "spec": where,
            "kind": "hf",
            **({"path": path} if Path(path).exists() else {"repo_id": path}),
            "config": config,
            "revision": revision,
            "splits": mapping,
            "ignored_splits": ignored,
            "image_column": image_col,
            "label_column": label_col,
            "key_column": key_column,
        },
        class_names=list(class_names or []),
        label_space="source",
        splits=splits,
        license={"license": license_name} if license_name else {},
        _reader=read,
        _prompts=name_prompts(list(class_names or [])),
    )


# ------------------------------------------------------------------ entry


def open_source(
    spec: str,
    *,
    image_column: Optional[str] = None,
    label_column: Optional[str] = None,
    key_column: Optional[str] = None,
    hf_config: Optional[str] = None,
    hf_revision: Optional[str] = None,
    val_labels: Optional[str | Path] = None,
    devkit_meta: Optional[str | Path] = None,
) -> Source:
    """Open `spec`: ``sample``, ``hf:ID_OR_PATH`` or a folder path (see the module docstring)."""
    if spec == "sample":
        return sample_source()
    if spec.startswith("hf:"):
        if not spec[3:]:
            raise ValueError("`--source hf:` needs a dataset id or folder after `hf:`, e.g. `hf:user/dataset`.")
        return hf_source(
            spec[3:], image_column=image_column, label_column=label_column, key_column=key_column,
            config=hf_config, revision=hf_revision,
        )
    return folder_source(spec, val_labels=val_labels, devkit_meta=devkit_meta)


def source_fingerprint(items: Sequence[SourceItem]) -> str:
    """sha256 of the split's sorted `key<TAB>label` lines: identifies what a build covers,
    independent of where the source lives."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.key}\t{item.label}\n".encode("utf-8"))
    return digest.hexdigest()
