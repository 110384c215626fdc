"""The build: decode -> segment (batched) -> versions -> score/select -> inpaint -> rows,
shard by shard, each shard written atomically and marked finished by its outcome file.

Per image (see `outcomes` for where each one ends):

1. decode (worker threads, one batch ahead): bytes -> RGB; ``empty_file`` / ``too_large``
   (header only) / ``decode_error`` / ``read_error`` / ``no_label`` end here.
2. segment (main thread, one call per batch of the shard's consecutive images; a failing
   batch is retried image by image so one bad image fails alone): ``segment_error``.
3. versions, scores and the selected version (`versions`): no candidate = ``no_detection``.
4. inpaint the selected version's mask after `inpaint.dilate_mask`: ``inpaint_error``.
5. rows of the three configs, images encoded (worker threads): ``encode_error``.

Only a kept image gets rows, in all three configs at once, so there is never an orphan
foreground. A shard in which every image fails inside a backend (segment, select, inpaint,
encode) is not marked finished: that is a setup problem (model, options, device), and
the run stops with it (shards of fewer than `SETUP_CHECK_MIN_IMAGES` images are exempt).
"""

from __future__ import annotations

import collections
import logging
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from PIL import Image

from recombinet_hf.features import DATA_CONFIGS
from recombinet_hf.parquet_writer import write_shard

from .backends import INPAINTERS, SEGMENTERS
from .classifiers import classifier_version, load_classifier
from .decode import load_rgb
from .manifest import BuildSettings, check_manifest, make_manifest, manifest_shards, write_or_check_manifest
from .outcomes import Outcome, SourceImageError, count_outcomes
from .rows import make_rows
from .shards import RankInfo, ShardSpec, data_paths, is_finished, outcome_path, shards_for_rank, write_json_atomic
from .sources import Source, SourceItem
from .versions import make_versions, score_versions, select_version

__all__ = ["Backends", "create_backends", "ShardBuilder", "BuildReport", "run_build", "torch_device"]

logger = logging.getLogger(__name__)

#: Backend modules imported (so they register) before a backend is created by name.
BACKEND_MODULES = (
    "recombinet_builder.segment_salient",
    "recombinet_builder.segment_grounded_sam",
    "recombinet_builder.inpaint",
)
#: Backends given `device="cuda:<local rank>"` when CUDA is available (unless set by the user).
TORCH_DEVICE_BACKENDS = {"grounded-sam", "lama"}
#: Errors that say "the backend", not "the image", when every image of a shard has one.
BACKEND_REASONS = {"segment_error", "select_error", "inpaint_error", "encode_error"}
#: A shard of at least this many images that all fail inside a backend stops the build.
SETUP_CHECK_MIN_IMAGES = 4


def torch_device(local_rank: int = 0) -> str:
    """``cuda:<local_rank>`` when torch sees CUDA, else ``cpu``."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"
    if torch.cuda.is_available():
        return f"cuda:{local_rank % max(1, torch.cuda.device_count())}"
    return "cpu"


@dataclass
class Backends:
    """The segmenter, inpainter and optional classifier of a build."""

    segmenter: Any
    inpainter: Any
    classifier: Optional[Callable[[Image.Image], Sequence[float]]] = None
    classifier_spec: Optional[str] = None
    device: str = "cpu"

    def versions(self) -> dict:
        """What ran, for `recombinet.json`: each backend's `.version`."""
        return {
            "segment": dict(getattr(self.segmenter, "version", {}) or {}),
            "inpaint": dict(getattr(self.inpainter, "version", {}) or {}),
            "classifier": classifier_version(self.classifier_spec, self.classifier),
        }


def _with_device(name: str, options: dict, device: str) -> dict:
    if device not in ("cpu", "auto") and name in TORCH_DEVICE_BACKENDS and "device" not in options:
        return {**options, "device": device}
    return dict(options)


def _import_backend_modules() -> None:
    import importlib

    for module in BACKEND_MODULES:
        importlib.import_module(module)


def check_backend_names(settings: BuildSettings) -> None:
    """ValueError naming the option and the registered names when a backend is unknown."""
    _import_backend_modules()
    for option, registry, name in (("--segment", SEGMENTERS, settings.segment), ("--inpaint", INPAINTERS, settings.inpaint)):
        if name not in registry.factories:
            raise ValueError(
                f"`{option}` {name!r} is not a registered {registry.kind} backend; available: {sorted(registry.factories)} "
                "(backends of other packages register when imported: `--plugin MODULE`)."
            )


def create_backends(settings: BuildSettings, class_names: Sequence[str], *, device: str = "cpu") -> Backends:
    """Create the backends named in `settings` (torch backends on `device`)."""
    _import_backend_modules()
    segmenter = SEGMENTERS.create(settings.segment, **_with_device(settings.segment, settings.segment_options, device))
    inpainter = INPAINTERS.create(settings.inpaint, **_with_device(settings.inpaint, settings.inpaint_options, device))
    classifier = load_classifier(settings.classifier, class_names=class_names, device=device)
    return Backends(segmenter, inpainter, classifier, settings.classifier, device)


class _SerialExecutor:
    """`submit` runs at once; stands in for a thread pool when `num_workers` is 0."""

    def submit(self, function, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(function(*args, **kwargs))
        except BaseException as error:  # delivered by .result(), like a pool
            future.set_exception(error)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


def _error(item: SourceItem, position: int, error: SourceImageError) -> tuple[Outcome, None]:
    return Outcome(position, item.key, item.label, "error", error.reason, error.message), None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class ShardBuilder:
    """Builds shards of one source with one set of backends (see the module docstring).

    Args:
        source: the source (already limited to the built splits).
        settings: the build settings.
        backends: the created backends.
        out: the build folder.
        num_workers: threads for decoding, inpainting and encoding (0 = all in the main thread).
    """

    def __init__(self, source: Source, settings: BuildSettings, backends: Backends, out: str | Path, *, num_workers: int = 2) -> None:
        if num_workers < 0:
            raise ValueError(f"`--num-workers` must be >= 0; got {num_workers}.")
        self.source = source
        self.settings = settings
        self.backends = backends
        self.out = Path(out)
        self.num_workers = num_workers
        self.num_classes = len(source.class_names)

    # ------------------------------------------------------------ per image

    def decode(self, split: str, item: SourceItem) -> Image.Image | SourceImageError:
        """Read and decode one item; a SourceImageError says why it cannot be used."""
        if item.label is None:
            return SourceImageError("no_label", f"image {item.key!r} has no label in the source.")
        try:
            data = self.source.read(split, item)
        except OSError as error:
            return SourceImageError("read_error", f"image {item.key!r} could not be read: {_describe(error)}")
        try:
            return load_rgb(data, key=item.key, max_pixels=self.settings.max_pixels)
        except SourceImageError as error:
            return error

    def segment(self, images: list[Image.Image], prompts: list[list[str]]) -> list[list | SourceImageError]:
        """Candidates per image; a failing batch is retried image by image."""
        try:
            results = self.backends.segmenter.segment(images, prompts)
            if len(results) != len(images):
                raise RuntimeError(f"the segmenter returned {len(results)} results for {len(images)} images")
            return list(results)
        except Exception as error:
            if len(images) == 1:
                return [SourceImageError("segment_error", _describe(error))]
            logger.warning("segmenting a batch of %d failed (%s); retrying image by image", len(images), _describe(error))
            return [result for i in range(len(images)) for result in self.segment(images[i : i + 1], prompts[i : i + 1])]

    def _inpaint(self, image: Image.Image, mask) -> Image.Image:
        from .inpaint import dilate_mask

        try:
            return self.backends.inpainter.inpaint(image, dilate_mask(mask, self.settings.dilation_radius))
        except Exception as error:
            raise SourceImageError("inpaint_error", _describe(error)) from error

    def finish(
        self, position: int, item: SourceItem, image: Image.Image, candidates: list, prompts: list[str]
    ) -> tuple[Outcome, Optional[dict]]:
        """Versions -> selected version -> background -> rows of one segmented image."""
        try:
            versions = make_versions(
                candidates, prompts, iou_threshold=self.settings.iou_threshold, max_versions=self.settings.max_versions
            )
            if not versions:
                return Outcome(position, item.key, item.label, "no_detection"), None
            scores, backgrounds = score_versions(
                versions,
                image=image,
                label=item.label,
                num_classes=self.num_classes,
                classifier=self.backends.classifier,
                inpaint=lambda version: self._inpaint(image, version.mask),
            )
            chosen = select_version(scores)
        except SourceImageError as error:
            return _error(item, position, error)
        except Exception as error:
            return _error(item, position, SourceImageError("select_error", _describe(error)))
        try:
            background = backgrounds[chosen] if chosen in backgrounds else self._inpaint(image, versions[chosen].mask)
        except SourceImageError as error:
            return _error(item, position, error)
        try:
            rows = make_rows(
                idx=position, key=item.key, label=item.label, image=image, mask=versions[chosen].mask,
                background=background, score=scores[chosen],
            )
        except Exception as error:
            return _error(item, position, SourceImageError("encode_error", _describe(error)))
        outcome = Outcome(
            position, item.key, item.label, "kept", score=float(scores[chosen]), version=chosen, num_versions=len(versions)
        )
        return outcome, rows

    # ------------------------------------------------------------ per shard

    def build_shard(self, spec: ShardSpec, *, progress=None, rank: Optional[RankInfo] = None) -> dict:
        """Build one shard: write its Parquet files, then its outcome file. Returns the report."""
        started = time.perf_counter()
        items = self.source.splits[spec.split][spec.start : spec.stop]
        batch_size = self.settings.batch_size
        batches = [list(range(offset, min(offset + batch_size, len(items)))) for offset in range(0, len(items), batch_size)]
        executor = ThreadPoolExecutor(self.num_workers) if self.num_workers else _SerialExecutor()
        results: list[tuple[Outcome, Optional[dict]]] = []
        pending: collections.deque = collections.deque()

        statuses: collections.Counter = collections.Counter()

        def collect_oldest() -> None:
            futures = pending.popleft()
            for future in futures:
                results.append(future.result())
                statuses[results[-1][0].status] += 1
            if progress is not None:
                progress.update(len(futures))
                progress.set_postfix(
                    kept=statuses["kept"], none=statuses["no_detection"], err=statuses["error"], refresh=False
                )

        def submit_decode(batch: list[int]) -> list[Future]:
            return [executor.submit(self.decode, spec.split, items[i]) for i in batch]

        try:
            decoding = submit_decode(batches[0]) if batches else []
            for number, batch in enumerate(batches):
                decoded = [future.result() for future in decoding]
                decoding = submit_decode(batches[number + 1]) if number + 1 < len(batches) else []
                ready = [(i, image) for i, image in zip(batch, decoded) if not isinstance(image, SourceImageError)]
                prompts = {i: self.source.prompts(items[i].label) for i, _ in ready}
                segmented = dict(
                    zip(
                        [i for i, _ in ready],
                        self.segment([image for _, image in ready], [prompts[i] for i, _ in ready]) if ready else [],
                    )
                )
                futures = []
                for i, image in zip(batch, decoded):
                    position = spec.start + i
                    if isinstance(image, SourceImageError):
                        futures.append(executor.submit(_error, items[i], position, image))
                    elif isinstance(segmented[i], SourceImageError):
                        futures.append(executor.submit(_error, items[i], position, segmented[i]))
                    else:
                        futures.append(executor.submit(self.finish, position, items[i], image, segmented[i], prompts[i]))
                pending.append(futures)
                while len(pending) > 2:
                    collect_oldest()
            while pending:
                collect_oldest()
        finally:
            executor.shutdown(wait=True)

        outcomes = [outcome for outcome, _ in results]
        self._check_not_all_backend_errors(spec, outcomes)
        tables = {config: [rows[config] for _, rows in results if rows is not None] for config in DATA_CONFIGS}
        for config, path in data_paths(self.out, spec).items():
            write_shard(path, config, tables[config], self.source.class_names)
        elapsed = time.perf_counter() - started
        report = {
            "split": spec.split,
            "index": spec.index,
            "num_shards": spec.num_shards,
            "start": spec.start,
            "stop": spec.stop,
            "counts": count_outcomes(outcomes),
            "outcomes": [outcome.to_json() for outcome in outcomes],
            "backends": self.backends.versions(),
            "device": self.backends.device,
            "host": socket.gethostname(),
            "rank": rank.rank if rank else 0,
            "world_size": rank.world_size if rank else 1,
            "elapsed_s": round(elapsed, 3),
            "images_per_s": round(len(items) / elapsed, 3) if elapsed > 0 else None,
        }
        write_json_atomic(outcome_path(self.out, spec), report)  # last: marks the shard finished
        return report

    @staticmethod
    def _check_not_all_backend_errors(spec: ShardSpec, outcomes: list[Outcome]) -> None:
        if len(outcomes) >= SETUP_CHECK_MIN_IMAGES and all(o.status == "error" and o.reason in BACKEND_REASONS for o in outcomes):
            first = outcomes[0]
            raise RuntimeError(
                f"Every image of shard {spec.name} failed inside a backend ({first.reason}: {first.message}). "
                "This looks like a setup problem (model, options, device), not bad images; the shard is left "
                "unfinished so a rerun redoes it."
            )


@dataclass
class BuildReport:
    """What one rank did."""

    rank: RankInfo
    shards_total: int
    shards_mine: int
    shards_skipped: int
    shards_built: list[str] = field(default_factory=list)
    images: int = 0
    elapsed_s: float = 0.0
    counts: dict = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.images / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_build(
    source: Source,
    settings: BuildSettings,
    out: str | Path,
    *,
    rank: RankInfo = RankInfo(0, 1, "single"),
    release_version: str = "1.0.0",
    recombination_configs: Sequence[str] = (),
    num_workers: int = 2,
    progress: bool = True,
    backends: Optional[Backends] = None,
) -> BuildReport:
    """Build this rank's unfinished shards of `source` into `out` (no finalize).

    An existing `build.json` is checked first (differing settings fail before any work);
    backends are created only when there is a shard to build (`backends` overrides them),
    and `build.json` is written once they exist, so a typo in a backend name or option
    leaves no trace in the folder.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    check_backend_names(settings)
    source = source.limited(settings.limit, settings.splits)
    manifest = make_manifest(
        source, settings, release_version=release_version, recombination_configs=recombination_configs
    )
    check_manifest(out, manifest)
    shards = manifest_shards(manifest)
    mine = shards_for_rank(shards, rank.rank, rank.world_size)
    todo = [spec for spec in mine if not is_finished(out, spec)]
    report = BuildReport(rank, len(shards), len(mine), len(mine) - len(todo))
    if report.shards_skipped:
        logger.info("rank %d: %d of its %d shards are already finished; skipping them", rank.rank, report.shards_skipped, len(mine))
    if todo and backends is None:
        needs_torch = {settings.segment, settings.inpaint} & TORCH_DEVICE_BACKENDS or settings.classifier
        device = torch_device(rank.local_rank) if needs_torch else "auto"  # salient/telea pick their own device
        backends = create_backends(settings, source.class_names, device=device)
    out.mkdir(parents=True, exist_ok=True)
    write_or_check_manifest(out, manifest)
    if not todo:
        return report
    builder = ShardBuilder(source, settings, backends, out, num_workers=num_workers)
    started = time.perf_counter()
    counts: list[dict] = []
    with tqdm(
        total=sum(len(spec) for spec in todo),
        unit="img",
        desc=f"rank {rank.rank}/{rank.world_size}" if rank.world_size > 1 else "build",
        disable=not progress,
        dynamic_ncols=True,
        smoothing=0.1,
    ) as bar:
        for spec in todo:
            shard_report = builder.build_shard(spec, progress=bar, rank=rank)
            report.shards_built.append(spec.name)
            report.images += len(spec)
            counts.extend(shard_report["outcomes"])
    report.elapsed_s = time.perf_counter() - started
    report.counts = count_outcomes(counts)
    return report
