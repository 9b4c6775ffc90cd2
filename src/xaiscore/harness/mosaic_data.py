"""Mosaics as a dataset of the harness: the samples of the grid pointing game and Focus.

The mosaic metrics (``grid_pointing_game``, ``focus``: registry specs that need ``tiles``) are
scored on *mosaics*, ``n x n`` grids of images, not on the dataset's images. A run with a
``[mosaics]`` section (:class:`MosaicsConfig`; ``mosaics=`` of
:func:`~xaiscore.harness.runner.evaluate`) builds them after the model is ready, from the first
``max_images`` images of the run's dataset and the model's confident predictions, with
:func:`xaiscore.functional.mosaic.make_mosaics` (Rao, Böhle and Schiele, CVPR 2022): an image is
usable when the model predicts its label with a softmax probability of at least
``min_confidence``; the tiles of a mosaic show different classes, ``target_tiles`` of them the
target class. The target class is never the dataset's negative class (``"No Finding"``: its
evidence is the absence of a finding, which no tile holds) unless ``negative_target``; its images
still fill the other tiles. One set of mosaics per metric:

* ``grid_pointing_game``: ``grid x grid`` mosaics, one target tile (chance level ``1 / grid^2``);
* ``focus`` (Arias-Duart et al. 2022): 2 x 2 mosaics, two target tiles of distinct images and
  two tiles of two other classes (chance level 1/2).

A layout needs ``n^2 - target_tiles + 1`` classes (4 for a 2 x 2 grid pointing game, 3 for
Focus): a dataset with fewer, or too few confidently classified images per class, is an
:class:`~xaiscore._checks.OptionError` that says what is needed and what came.

The tiles keep the images' size, so a mosaic is ``n`` times larger along each axis: the model
must take such inputs (a fully convolutional CNN does; a ViT with fixed position embeddings
does not, its mosaic metrics are then skipped with the reason, see
:mod:`xaiscore.harness.mosaic_runs`).

:class:`MosaicDataset` is an ordinary record dataset (one mosaic per record: the label is the
target class, the mask and boxes are the target tiles, ``meta["tiles"]`` the target flags) that
provides the input ``tiles`` to the runner (its ``inputs`` and ``batch_inputs``).

Example:
    >>> import torch
    >>> from xaiscore.harness.data import make_synthetic_dataset
    >>> data = make_synthetic_dataset(8, size=(8, 8), classes=["No Finding", "Nodule", "Mass",
    ...                                                          "Opacity"])
    >>> model = lambda x: torch.nn.functional.one_hot(  # a perfect oracle for the 8 images
    ...     torch.tensor([data[i].label for i in range(8)]), 4).float()[: len(x)] * 10
    >>> mosaics = build_mosaic_dataset(data, model, MosaicsConfig(num_mosaics=2), metric="focus",
    ...                                seed=0)
    >>> len(mosaics), mosaics[0].image.shape, sum(mosaics[0].meta["tiles"])
    (2, torch.Size([1, 16, 16]), 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from xaiscore._checks import OptionError
from xaiscore._engine.batching import call_model, chunked_map
from xaiscore._engine.random import derive_seed
from xaiscore.functional.mosaic import Mosaics, make_mosaics

__all__ = ["MosaicsConfig", "MosaicDataset", "build_mosaic_dataset", "mosaic_layout",
           "parse_mosaics", "mosaic_metric_variables", "mosaic_hint", "MOSAIC_INPUT"]

#: The input a mosaic metric needs (registry ``needs``).
MOSAIC_INPUT = "tiles"


@dataclass(frozen=True)
class MosaicsConfig:
    """``[mosaics]``: how the mosaics of the mosaic metrics are built.

    Attributes:
        grid: ``n`` of the grid pointing game's ``n x n`` mosaics (Focus is always 2 x 2).
        num_mosaics: Mosaics per metric.
        min_confidence: The smallest softmax probability of the label for an image to be a tile
            (Rao et al.: "classified confidently"; their models reach 0.99 on ImageNet classes).
        max_images: The first images of the dataset that tiles are drawn from.
        negative_target: Whether the dataset's negative class (``"No Finding"``) may be a
            mosaic's target. Default no: its evidence is the absence of a finding, which no tile
            holds; its images still fill the other tiles.
        seed: Seed of the draws (default: the run's seed).
    """

    grid: int = 2
    num_mosaics: int = 16
    min_confidence: float = 0.99
    max_images: int = 256
    negative_target: bool = False
    seed: int | None = None


_KEYS = tuple(f.name for f in fields(MosaicsConfig))


def parse_mosaics(value: Any) -> MosaicsConfig | None:
    """A :class:`MosaicsConfig` from a mapping (or one, or ``None``), checked.

    Raises:
        OptionError: an unknown key or a value of the wrong type or range.
    """
    if value is None or isinstance(value, MosaicsConfig):
        raw = {} if value is None else {k: getattr(value, k) for k in _KEYS}
        if value is None:
            return None
    elif isinstance(value, Mapping):
        raw = dict(value)
    else:
        raise OptionError(
            f"Expected `mosaics` to be a table/mapping, but got {type(value).__name__}.")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise OptionError(f"Unknown key(s) {unknown} in `mosaics`; expected some of {list(_KEYS)}.")
    config = MosaicsConfig(**raw)
    for key, minimum in (("grid", 2), ("num_mosaics", 1), ("max_images", 1)):
        number = getattr(config, key)
        if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
            raise OptionError(
                f"Expected `mosaics.{key}` to be an int of at least {minimum}, but got {number!r}.")
    confidence = config.min_confidence
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) \
            or not 0.0 <= confidence <= 1.0:
        raise OptionError(
            f"Expected `mosaics.min_confidence` in [0, 1], but got {confidence!r}.")
    if not isinstance(config.negative_target, bool):
        raise OptionError(
            f"Expected `mosaics.negative_target` to be true or false, but got "
            f"{config.negative_target!r}.")
    if config.seed is not None and (isinstance(config.seed, bool)
                                    or not isinstance(config.seed, int) or config.seed < 0):
        raise OptionError(f"Expected `mosaics.seed` to be an int >= 0, but got {config.seed!r}.")
    return config


def mosaic_layout(metric: str, config: MosaicsConfig) -> tuple[int, int]:
    """``(n, target_tiles)`` of ``metric``'s mosaics: Focus 2 x 2 with two target tiles, any
    other mosaic metric ``grid x grid`` with one."""
    return (2, 2) if metric == "focus" else (config.grid, 1)


def mosaic_hint(missing: Any) -> str:
    """What to add to the skip reason of a metric that misses ``tiles`` (``""`` otherwise)."""
    return " (a `[mosaics]` section builds mosaics that do)" if MOSAIC_INPUT in missing else ""


def mosaic_metric_variables(ds: Any) -> list[str]:
    """The mosaic metrics of a results Dataset (variables ``(explainer, <m>_mosaic)``,
    :mod:`xaiscore.harness.mosaic_runs`)."""
    return [str(name) for name, var in ds.data_vars.variables.items()
            if var.dims[:2] == ("explainer", f"{name}_mosaic")]


class MosaicDataset:
    """Mosaics as records (see the module docstring); provides ``tiles`` to the runner.

    Attributes:
        mosaics: The :class:`~xaiscore.functional.mosaic.Mosaics` (on the CPU).
        class_names: The base dataset's class names.
        grid: ``n``; target_tiles: target tiles per mosaic.
        tile_source_ids: ``(M, n^2)`` the base samples' ``source_id`` of each tile.
        tile_samples: ``(M, n^2)`` long, the base samples' dataset index of each tile.
        pool: ``(K,)`` long, the usable (confidently classified) images per class.
    """

    inputs = frozenset({MOSAIC_INPUT})

    def __init__(self, mosaics: Mosaics, *, class_names: tuple[str, ...], grid: int,
                 target_tiles: int, tile_source_ids: list[list[str]], tile_samples: Tensor,
                 pool: Tensor) -> None:
        self.mosaics = Mosaics(*(t.cpu() for t in mosaics))
        self.class_names = tuple(class_names)
        self.grid, self.target_tiles = grid, target_tiles
        self.tile_source_ids, self.tile_samples, self.pool = tile_source_ids, tile_samples, pool

    def __len__(self) -> int:
        return int(self.mosaics.x.shape[0])

    def __getitem__(self, i: int) -> Any:
        from xaiscore.harness.data.records import SampleRecord

        if not -len(self) <= i < len(self):
            raise IndexError(f"mosaic {i} out of range ({len(self)} mosaics)")
        m = self.mosaics
        flags = m.tiles[i]
        height, width = (s // self.grid for s in m.x.shape[2:])
        boxes = [[col * width, row * height, (col + 1) * width, (row + 1) * height]
                 for row in range(self.grid) for col in range(self.grid)
                 if bool(flags[row * self.grid + col])]
        name = self.class_names[int(m.target[i])]
        return SampleRecord(
            image=m.x[i].float(), label=int(m.target[i]),
            boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            box_labels=(name,) * len(boxes), mask=m.mask[i], finding=name,
            source_id=f"mosaic{i}:" + "+".join(self.tile_source_ids[i]),
            meta={"tiles": tuple(bool(f) for f in flags),
                  "tile_classes": tuple(int(c) for c in m.tile_classes[i])})

    def batch_inputs(self, data: Any) -> dict[str, Tensor]:
        """The inputs this dataset adds to a collated batch: ``tiles`` ``(B, n^2)`` bool."""
        return {MOSAIC_INPUT: torch.tensor([list(meta["tiles"]) for meta in data.meta],
                                           dtype=torch.bool, device=data.x.device)}


def _base_images(dataset: Any, count: int) -> tuple[Any, list[int]]:
    """The first ``count`` loadable records of ``dataset`` collated, and their indices."""
    from xaiscore.harness.data.errors import DatasetError
    from xaiscore.harness.data.records import collate

    records, indices = [], []
    for index in range(min(count, len(dataset))):
        try:
            records.append(dataset[index])
        except DatasetError:
            if getattr(dataset, "on_error", "raise") != "skip":
                raise
            continue
        indices.append(index)
    if not records:
        raise OptionError("Expected images to build mosaics from, but no record could be loaded.")
    if records[0].image.ndim != 3:
        raise OptionError(
            f"Expected 2-D images (C, H, W) to build mosaics from, but got images of shape "
            f"{tuple(records[0].image.shape)} (mosaics of series or volumes are not defined).")
    return collate(records), indices


def build_mosaic_dataset(dataset: Any, model: Callable[[Tensor], Tensor], config: MosaicsConfig,
                         *, metric: str, seed: int, max_batch_size: int = 64,
                         device: torch.device | str = "cpu") -> MosaicDataset:
    """``metric``'s mosaics from ``dataset`` and ``model`` (see the module docstring).

    Deterministic for a seed (``config.seed``, else ``seed``) and the model's outputs.

    Raises:
        OptionError: 3-D or 1-D images; fewer classes than the layout needs; too few
            confidently classified images (the message gives the counts per class and the
            threshold).
    """
    grid, target_tiles = mosaic_layout(metric, config)
    needed = grid * grid - target_tiles + 1
    class_names = tuple(getattr(dataset, "class_names", ()))
    if len(class_names) < needed:
        raise OptionError(
            f"Expected a dataset with at least {needed} classes for {metric!r} on {grid} x {grid} "
            f"mosaics (each tile a different class, {target_tiles} of the target class), but it "
            f"has {len(class_names)}: {list(class_names)}.")
    from xaiscore.harness.data.records import NEGATIVE_FINDING

    targets = None if config.negative_target or NEGATIVE_FINDING not in class_names else [
        k for k, name in enumerate(class_names) if name != NEGATIVE_FINDING]
    data, indices = _base_images(dataset, config.max_images)
    data = data.to(device)
    draw_seed = derive_seed(seed if config.seed is None else config.seed, "mosaics", metric)
    try:
        with torch.inference_mode():
            mosaics = make_mosaics(
                model, data.x, data.labels, num_mosaics=config.num_mosaics, grid=grid,
                target_tiles=target_tiles, min_confidence=float(config.min_confidence),
                target_classes=targets, seed=draw_seed, max_batch_size=max_batch_size)
    except OptionError as error:
        raise OptionError(
            f"Cannot build the mosaics of {metric!r} from the first {len(indices)} images with "
            f"`mosaics.min_confidence` = {config.min_confidence} ({class_names}): {error} Lower "
            "`min_confidence` or give more images (`max_images`).") from error
    with torch.inference_mode():  # the usable images per class, for the record
        probabilities = chunked_map(len(data), lambda s, e: call_model(model, data.x[s:e]),
                                    max_batch_size=max_batch_size).softmax(dim=1)
    labels = data.labels.to(probabilities.device)
    usable = (probabilities.argmax(dim=1) == labels) & (
        probabilities.gather(1, labels[:, None]).squeeze(1) >= config.min_confidence)
    pool = torch.bincount(labels[usable].cpu(), minlength=len(class_names))
    tile_positions = mosaics.tile_indices.cpu()
    return MosaicDataset(
        mosaics, class_names=class_names, grid=grid, target_tiles=target_tiles,
        tile_source_ids=[[data.source_ids[j] for j in row] for row in tile_positions.tolist()],
        tile_samples=torch.tensor(indices)[tile_positions], pool=pool)
