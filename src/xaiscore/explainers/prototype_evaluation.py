r"""The prototype evaluation of Huang et al. (ICCV 2023), adapted to annotated boxes.

Huang, Xue, Huang, Zhai, Chen, Song and Song, "Evaluation and Improvement of Interpretability for
Self-Explainable Part-Prototype Networks", score a part-prototype network by where each
prototype's activation peaks. For prototype ``j`` and test image ``i`` of the prototype's class
the similarity map is upsampled to the image, its first maximum (row-major) is the *peak*, and a
binary vector :math:`o_{ij}` records which annotated regions the peak's surroundings hit
(on CUB: which of 15 part keypoints lie in a 72 x 72 window around the peak).

* **Consistency**: prototype ``j`` is consistent when some region ``r`` is hit in at least a
  share ``threshold`` (0.8 in the paper) of the images of its class that have ``r`` annotated,
  :math:`\max_r \frac{\sum_i o_{ijr}}{\sum_i [r \text{ annotated in } i]} \ge \mu`; the score is
  the share of consistent prototypes.
* **Stability**: prototype ``j``'s stability is the share of its class's images whose hit vector
  is unchanged when the image is perturbed by noise (:func:`stability_noise`: Gaussian with
  standard deviation 0.2 clipped to +-0.25, added to the normalised image in the paper),
  :math:`\frac1{N_j}\sum_i [o_{ij} = \tilde o_{ij}]`; the score is the mean over prototypes.

**Adapted to boxes.** Medical images come with boxes (lesions) rather than part keypoints, so a
prototype *hits* a box when the peak's window (the pixels within ``half_size`` of the peak along
each axis, ``half_size = 0``: the peak pixel alone) shares a pixel with the box; a box holds the
pixels whose centres lie in it, as in :func:`xaiscore.functional.localization.boxes_to_mask`
(``xyxy`` pixel coordinates, end-exclusive, NaN rows are padding). ``regions="union"`` (default)
treats all boxes of an image as one annotated region ("the lesion"); ``regions="each"`` treats
box slot ``r`` as region kind ``r`` in every image (parts, or lesion types), as the paper does
with parts.

Both scores are set-level: they need every image of every class at once. Where the paper's code
counts a prototype whose class has no annotated image as inconsistent, and an image without
annotation as stable, here such prototypes get NaN and are left out of the mean, and images
without any box are left out of stability (neither case arises on CUB, where every image has
parts).

Typical use, with :class:`~xaiscore.explainers.PrototypeExplainer` reading the maps::

    explain = prototype_explainer(model)
    peaks = prototype_peaks(explain.similarity_maps(x), x.shape[2:])
    noisy = prototype_peaks(explain.similarity_maps(stability_noise(x, seed=0)), x.shape[2:])
    classes = model.prototype_class_identity.argmax(1)
    prototype_consistency(peaks, boxes, labels=y, prototype_classes=classes).score
    prototype_stability(peaks, noisy, boxes, labels=y, prototype_classes=classes).score
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from xaiscore._checks import (
    DTypeError,
    OptionError,
    ShapeError,
    check_fraction,
    check_option,
    check_tensor,
)
from xaiscore._engine.explain_fn import format_shape
from xaiscore._engine.random import resolve_generator
from xaiscore.explainers._common import UPSAMPLE_MODES, upsample

__all__ = [
    "PrototypeScores",
    "prototype_peaks",
    "prototype_box_hits",
    "prototype_consistency",
    "prototype_stability",
    "stability_noise",
]

Regions = Literal["union", "each"]


class PrototypeScores(NamedTuple):
    """A set-level prototype score."""

    #: ``()``: the share of consistent prototypes, or the mean stability (NaN if no prototype
    #: is defined).
    score: Tensor
    #: ``(m,)``: 1/0 consistency or the stability of every prototype (NaN where undefined).
    per_prototype: Tensor
    #: ``(m, R)``: consistency only: the share of annotated images of the prototype's class whose
    #: region ``r`` the prototype hits (NaN where none is annotated); stability: ``None``.
    hit_rate: Tensor | None = None


def prototype_peaks(
    similarity_maps: Tensor, size: Sequence[int], *, upsample_mode: str = "bicubic"
) -> Tensor:
    """The peak pixel of every upsampled similarity map: ``(N, m, d)`` long (row, column, ...).

    The maps are resized to ``size`` (bicubic as the paper's code, which uses OpenCV's
    ``INTER_CUBIC``; ``"linear"`` or ``"nearest"`` for any dimension) and the first maximum in
    row-major order is taken.

    Shape:
        - similarity_maps: ``(N, m, *s)``; output: ``(N, m, d)`` with ``d = len(size)``.

    Example:
        >>> maps = torch.zeros(1, 2, 2, 2)
        >>> maps[0, 0, 1, 0] = maps[0, 1, 0, 1] = 1.0
        >>> prototype_peaks(maps, (4, 4), upsample_mode="nearest")[0].tolist()
        [[2, 0], [0, 2]]
    """
    maps = check_tensor(similarity_maps, "similarity_maps")
    size = tuple(int(s) for s in size)
    if maps.ndim != 2 + len(size) or not maps.is_floating_point():
        raise ShapeError(
            "Expected `similarity_maps` (N, m, *s) of a floating dtype with "
            f"{len(size)} spatial dim(s) "
            f"for `size` {format_shape(size)}, but got {format_shape(maps.shape)} of {maps.dtype}."
        )
    check_option(upsample_mode, "upsample_mode", UPSAMPLE_MODES)
    with torch.inference_mode():
        big = upsample(maps, size, upsample_mode)
        flat = big.flatten(2).argmax(2)  # the first maximum
        coordinates = []
        for side in reversed(size):
            coordinates.append(flat % side)
            flat = flat // side
    return torch.stack(coordinates[::-1], dim=-1).clone()


def _check_boxes(boxes: object, n_images: int) -> Tensor:
    boxes = check_tensor(boxes, "boxes")
    if boxes.ndim == 2:
        boxes = boxes.unsqueeze(1)
    if (
        boxes.ndim != 3
        or boxes.shape[0] != n_images
        or boxes.shape[2] != 4
        or not boxes.is_floating_point()
    ):
        raise ShapeError(
            f"Expected `boxes` ({n_images}, R, 4) floating xyxy (NaN rows for padding), but got "
            f"{format_shape(boxes.shape)} of {boxes.dtype}."
        )
    return boxes


def prototype_box_hits(peaks: Tensor, boxes: Tensor, *, half_size: int = 0) -> Tensor:
    """Whether the window of ``half_size`` around each peak shares a pixel with each box.

    Pixel ``(row, col)`` lies in box ``(x0, y0, x1, y1)`` when its centre does
    (``x0 <= col + 0.5 < x1`` and ``y0 <= row + 0.5 < y1``); the window holds rows
    ``row - half_size .. row + half_size`` and the same columns. NaN boxes hit nothing.

    Shape:
        - peaks: ``(N, m, 2)`` long (row, column); boxes: ``(N, R, 4)`` or ``(N, 4)``;
          output: ``(N, m, R)`` bool.

    Example:
        >>> peaks = torch.tensor([[[2, 3], [7, 7]]])
        >>> boxes = torch.tensor([[[1.0, 1.0, 5.0, 5.0]]])
        >>> prototype_box_hits(peaks, boxes)[0, :, 0].tolist()
        [True, False]
        >>> prototype_box_hits(peaks, boxes, half_size=3)[0, :, 0].tolist()
        [True, True]
    """
    peaks = check_tensor(peaks, "peaks")
    if peaks.ndim != 3 or peaks.shape[2] != 2 or peaks.is_floating_point():
        raise ShapeError(
            "Expected `peaks` (N, m, 2) integer (row, column), but got "
            f"{format_shape(peaks.shape)} "
            f"of {peaks.dtype}."
        )
    boxes = _check_boxes(boxes, peaks.shape[0]).to(peaks.device)
    if isinstance(half_size, bool) or not isinstance(half_size, int) or half_size < 0:
        raise OptionError(f"Expected `half_size` to be an int >= 0, but got {half_size!r}.")
    # Pixels of a box: the first and last row/column whose centre lies in it.
    first_col = torch.ceil(boxes[..., 0] - 0.5)
    first_row = torch.ceil(boxes[..., 1] - 0.5)
    last_col = torch.ceil(boxes[..., 2] - 0.5) - 1
    last_row = torch.ceil(boxes[..., 3] - 0.5) - 1
    row = peaks[..., 0].to(boxes.dtype).unsqueeze(2)  # (N, m, 1)
    col = peaks[..., 1].to(boxes.dtype).unsqueeze(2)
    rows_meet = torch.maximum(row - half_size, first_row.unsqueeze(1)) <= torch.minimum(
        row + half_size, last_row.unsqueeze(1)
    )
    cols_meet = torch.maximum(col - half_size, first_col.unsqueeze(1)) <= torch.minimum(
        col + half_size, last_col.unsqueeze(1)
    )
    return rows_meet & cols_meet  # NaN compares False


def _prepare(
    peaks: Tensor,
    boxes: Tensor,
    labels: Tensor | None,
    prototype_classes: Tensor | None,
    regions: str,
    half_size: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Hits ``(N, m, R')``, annotated ``(N, R')``, eligible ``(N, m)`` (the prototype's class)."""
    check_option(regions, "regions", ("union", "each"))
    hits = prototype_box_hits(peaks, boxes, half_size=half_size)
    boxes = _check_boxes(boxes, peaks.shape[0]).to(peaks.device)
    annotated = ~torch.isnan(boxes).any(-1)  # (N, R)
    if regions == "union":
        hits, annotated = hits.any(2, keepdim=True), annotated.any(1, keepdim=True)
    n_images, n_prototypes = peaks.shape[:2]
    if (labels is None) != (prototype_classes is None):
        raise OptionError("Expected both `labels` and `prototype_classes` or neither, but got one.")
    if labels is None:
        eligible = torch.ones(n_images, n_prototypes, dtype=torch.bool, device=peaks.device)
    else:
        for value, name, length in (
            (labels, "labels", n_images),
            (prototype_classes, "prototype_classes", n_prototypes),
        ):
            check_tensor(value, name)
            if value.shape != (length,) or value.is_floating_point() or value.dtype == torch.bool:
                raise ShapeError(
                    f"Expected `{name}` of shape ({length},) with integer classes, but got "
                    f"{format_shape(value.shape)} of {value.dtype}."
                )
        eligible = labels.to(peaks.device).unsqueeze(1) == prototype_classes.to(
            peaks.device
        ).unsqueeze(0)
    return hits, annotated, eligible


def prototype_consistency(
    peaks: Tensor,
    boxes: Tensor,
    *,
    labels: Tensor | None = None,
    prototype_classes: Tensor | None = None,
    threshold: float = 0.8,
    half_size: int = 0,
    regions: Regions = "union",
) -> PrototypeScores:
    r"""Huang et al.'s consistency score over a set of images (see the module docstring).

    Args:
        peaks: ``(N, m, 2)`` peak pixels (:func:`prototype_peaks`).
        boxes: ``(N, R, 4)`` annotated boxes, ``xyxy`` pixels, NaN rows for padding.
        labels: ``(N,)`` image classes; with ``prototype_classes`` ``(m,)``, prototype ``j`` is
            scored on the images of its class only. Neither: every image counts for every prototype.
        prototype_classes: ``(m,)`` the class of every prototype.
        threshold: The share ``mu`` of images a region must be hit in (0.8 in the paper).
        half_size: Window around the peak (0: the peak pixel; the paper: 36 at 224 x 224).
        regions: ``"union"`` (all boxes of an image form one region) or ``"each"`` (box slot =
            region kind).

    Returns:
        :class:`PrototypeScores`: ``score`` (share of consistent prototypes among those with an
        annotated image of their class; NaN if none), ``per_prototype`` (1.0, 0.0 or NaN) and
        ``hit_rate`` ``(m, R)``.

    Shape:
        - peaks: ``(N, m, 2)``; boxes: ``(N, R, 4)``; output score ``()``, per prototype ``(m,)``.

    Example:
        >>> # 3 images, 2 prototypes
        >>> peaks = torch.tensor([[[1, 1], [6, 6]], [[2, 2], [1, 1]], [[1, 2], [6, 1]]])
        >>> boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0]]).expand(3, 1, 4)
        >>> result = prototype_consistency(peaks, boxes, threshold=0.6)
        >>> result.per_prototype.tolist(), result.score.item()
        ([1.0, 0.0], 0.5)
    """
    threshold = check_fraction(threshold, "threshold")
    hits, annotated, eligible = _prepare(
        peaks, boxes, labels, prototype_classes, regions, half_size
    )
    weights = eligible.to(torch.float64)
    counted = torch.einsum("nj,njr->jr", weights, (hits & annotated.unsqueeze(1)).to(torch.float64))
    available = torch.einsum("nj,nr->jr", weights, annotated.to(torch.float64))
    rate = counted / available  # NaN where no image of the class has the region
    consistent = (rate >= threshold).any(1).to(torch.float64)
    per_prototype = torch.where(
        (available > 0).any(1), consistent, torch.full_like(consistent, math.nan)
    )
    return PrototypeScores(per_prototype.nanmean(), per_prototype, rate)


def prototype_stability(
    peaks: Tensor,
    noisy_peaks: Tensor,
    boxes: Tensor,
    *,
    labels: Tensor | None = None,
    prototype_classes: Tensor | None = None,
    half_size: int = 0,
    regions: Regions = "union",
) -> PrototypeScores:
    r"""Huang et al.'s stability score: the share of images whose hit vector survives input noise.

    Args:
        peaks: ``(N, m, 2)`` peaks on the clean images.
        noisy_peaks: ``(N, m, 2)`` peaks on the perturbed images (:func:`stability_noise`).
        boxes, labels, prototype_classes, half_size, regions: As in :func:`prototype_consistency`.

    Returns:
        :class:`PrototypeScores`: ``score`` (mean over prototypes with an annotated image of their
        class; NaN if none) and ``per_prototype`` (NaN where no such image).

    Shape:
        - peaks, noisy_peaks: ``(N, m, 2)``; boxes: ``(N, R, 4)``; output score ``()``, per
          prototype ``(m,)``.

    Example:
        >>> peaks = torch.tensor([[[1, 1]], [[1, 1]]])
        >>> noisy = torch.tensor([[[2, 2]], [[6, 6]]])  # the second image's peak leaves the box
        >>> boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0]]).expand(2, 1, 4)
        >>> prototype_stability(peaks, noisy, boxes).score.item()
        0.5
    """
    noisy_peaks = check_tensor(noisy_peaks, "noisy_peaks")
    if noisy_peaks.shape != check_tensor(peaks, "peaks").shape:
        raise ShapeError(
            f"Expected `noisy_peaks` of the shape of `peaks` {format_shape(peaks.shape)}, but got "
            f"{format_shape(noisy_peaks.shape)}."
        )
    hits, annotated, eligible = _prepare(
        peaks, boxes, labels, prototype_classes, regions, half_size
    )
    noisy_hits, _, _ = _prepare(noisy_peaks, boxes, labels, prototype_classes, regions, half_size)
    same = (hits == noisy_hits).all(2).to(torch.float64)  # (N, m)
    weights = (eligible & annotated.any(1, keepdim=True)).to(torch.float64)
    per_prototype = (weights * same).sum(0) / weights.sum(0)
    return PrototypeScores(per_prototype.nanmean(), per_prototype, None)


def stability_noise(
    x: Tensor,
    *,
    std: float = 0.2,
    bound: float = 0.25,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> Tensor:
    """``x`` plus Gaussian noise of ``std`` clipped to ``[-bound, bound]`` (the paper's noise).

    Drawn on the CPU from ``generator`` (or ``seed``) in float64, so the noise does not depend on
    the device, then cast to the dtype of ``x``.

    Shape:
        - x: any; output: as ``x``.

    Example:
        >>> x = torch.zeros(2, 1, 4, 4)
        >>> noisy = stability_noise(x, seed=0)
        >>> bool((noisy.abs() <= 0.25).all()), torch.equal(noisy, stability_noise(x, seed=0))
        (True, True)
    """
    x = check_tensor(x, "x")
    if not x.is_floating_point():
        raise DTypeError(f"Expected `x` to be a floating-point tensor, but got dtype {x.dtype}.")
    std = check_fraction(std, "std", high=math.inf)
    bound = check_fraction(bound, "bound", high=math.inf)
    generator = resolve_generator(generator, seed)
    noise = (
        torch.randn(x.shape, generator=generator, dtype=torch.float64, device=generator.device)
        * std
    )
    return x + noise.clamp_(-bound, bound).to(device=x.device, dtype=x.dtype)
