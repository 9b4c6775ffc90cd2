"""Readers by name, and :func:`open_dataset` for configs (plain values only).

Example:
    >>> ds = open_dataset("synthetic", n=4, size=[16, 16], resize=[8, 8])
    >>> ds[0].image.shape, sorted(READERS)[:3]
    (torch.Size([1, 8, 8]), ['coco', 'dicom_series', 'mask_folder'])
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from xaiscore._checks import OptionError
from xaiscore.harness.data.records import RecordDataset, SampleRecord

__all__ = ["READERS", "VOLUME_READERS", "get_reader", "open_dataset"]

#: Reader name -> ``"module:function"``; modules are imported on first use.
READERS: dict[str, str] = {
    "synthetic": "xaiscore.harness.data.synthetic:make_synthetic_dataset",
    "nih": "xaiscore.harness.data.nih:read_nih_chestxray14",
    "rsna": "xaiscore.harness.data.rsna:read_rsna_pneumonia",
    "vindr": "xaiscore.harness.data.vindr:read_vindr_cxr",
    "coco": "xaiscore.harness.data.coco:read_coco",
    "voc": "xaiscore.harness.data.voc:read_voc",
    "mask_folder": "xaiscore.harness.data.masks:read_mask_folder",
    "mvtec": "xaiscore.harness.data.masks:read_mvtec",
    "nifti": "xaiscore.harness.data.volumes:read_nifti_volumes",
    "dicom_series": "xaiscore.harness.data.volumes:read_dicom_series",
    "synthetic3d": "xaiscore.harness.data.synthetic3d:make_synthetic_volumes",
}

#: The readers of volumes ``(C, D, H, W)``: their geometry option is ``resample``, not ``resize``.
VOLUME_READERS: frozenset[str] = frozenset({"nifti", "dicom_series", "synthetic3d"})


def get_reader(kind: str) -> Callable[..., RecordDataset]:
    """The reader function registered under ``kind``.

    Raises:
        OptionError: an unknown ``kind`` (with the closest name).
    """
    if kind not in READERS:
        close = difflib.get_close_matches(str(kind), READERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise OptionError(
            f"Expected a dataset kind among {sorted(READERS)}, but got {kind!r}.{hint}")
    module, name = READERS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def open_dataset(
    kind: str,
    *,
    resize: int | Sequence[int] | None = None,
    letterbox: bool = False,
    mask_rule: str = "nearest",
    normalize: tuple[float | Sequence[float], float | Sequence[float]] | None = None,
    verify: bool = False,
    transform: Callable[[SampleRecord], SampleRecord] | None = None,
    resample: int | Sequence[int] | None = None,
    resample_spacing: float | Sequence[float] | None = None,
    resample_mode: str = "trilinear",
    **options: Any,
) -> RecordDataset:
    """Open a dataset by reader name with geometry given as plain values (for config files).

    Args:
        kind: A key of :data:`READERS`.
        resize: Resize every image to ``(H, W)`` (or a square) with
            :class:`~xaiscore.harness.data.transforms.Resize` (per axis), or
            :class:`~xaiscore.harness.data.transforms.Letterbox` when ``letterbox``.
        letterbox: Keep the aspect ratio and pad instead of stretching.
        mask_rule: ``"nearest"`` or ``"area"`` for resizing masks.
        normalize: ``(mean, std)`` applied after resizing.
        verify: Load every sample once and apply ``on_error`` up front
            (readers of files only; see ``AnnotatedDataset.verify``).
        transform: A further transform applied last.
        resample: Volumes only: resample every volume to ``(D, H, W)`` (or a cube) with
            :class:`~xaiscore.harness.data.volume_transforms.Resample`; boxes and masks
            (by ``mask_rule``) move with it.
        resample_spacing: Volumes only: resample to this spacing in mm along ``D, H, W`` (or
            one number for all three) instead of a shape.
        resample_mode: ``"trilinear"`` (default) or ``"nearest"`` for the volume itself.
        **options: The reader's own keyword arguments (paths, ``class_names``, ``on_error`` ...).

    Raises:
        OptionError: an unknown kind or option; ``resample``, ``resample_spacing`` or
            ``resample_mode`` for a kind that does not read volumes, both ``resample`` and
            ``resample_spacing``, or ``resize``/``letterbox`` for one that does; a shape or
            spacing that is not positive; an unknown ``resample_mode``.
        DTypeError: ``resample`` that is not one int or three ints, ``resample_spacing`` that
            is not one number or three.
        ShapeError: ``resample`` with other than three sizes.

    Example:
        >>> ds = open_dataset("synthetic3d", n=2, size=[12, 12, 12], resample=[6, 8, 8])
        >>> ds[0].image.shape, ds[0].meta["spacing"]
        (torch.Size([1, 6, 8, 8]), (2.0, 1.5, 1.5))
    """
    from xaiscore.harness.data import transforms as T

    reader = get_reader(kind)
    steps: list[Callable[[SampleRecord], SampleRecord]] = []
    resampler = _resampler(kind, resample, resample_spacing, resample_mode, mask_rule,
                           resize=resize, letterbox=letterbox)
    if resampler is not None:
        steps.append(resampler)
    if resize is not None:
        size = tuple(resize) if isinstance(resize, Sequence) else resize
        steps.append(T.Letterbox(size, mask_rule=mask_rule) if letterbox
                     else T.Resize(size, mask_rule=mask_rule))
    if normalize is not None:
        steps.append(T.Normalize(*normalize))
    if transform is not None:
        steps.append(transform)
    if steps:
        options["transform"] = steps[0] if len(steps) == 1 else T.Compose(steps)
    parameters = inspect.signature(reader).parameters
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        accepted = sorted(set(parameters)
                          | {"resize", "letterbox", "mask_rule", "normalize", "verify"}
                          | ({"resample", "resample_spacing", "resample_mode"}
                             if kind in VOLUME_READERS else set()))
        raise OptionError(
            f"Unknown option(s) {unknown} for dataset kind {kind!r}; it accepts {accepted}.")
    dataset = reader(**options)
    if verify:
        if not hasattr(dataset, "verify"):
            raise OptionError(f"Dataset kind {kind!r} has nothing to verify (verify=True).")
        dataset.verify()  # type: ignore[attr-defined]
    return dataset


def _resampler(kind: str, shape: int | Sequence[int] | None,
               spacing: float | Sequence[float] | None, mode: str, mask_rule: str, *,
               resize: object, letterbox: bool) -> Callable[[SampleRecord], SampleRecord] | None:
    """The :class:`Resample` a volume config asks for, with errors that name the config keys."""
    from xaiscore._checks import check_option
    from xaiscore.harness.data.volume_transforms import Resample, _positive_triple
    from xaiscore.harness.data.volume_transforms import _check_size as check_size

    check_option(mode, "resample_mode", ("trilinear", "nearest"))
    if kind not in VOLUME_READERS:
        if shape is not None or spacing is not None or mode != "trilinear":
            given = ("resample" if shape is not None else "resample_spacing"
                     if spacing is not None else "resample_mode")
            raise OptionError(
                f"Expected `{given}` only for a volume dataset kind {sorted(VOLUME_READERS)}, but "
                f"got kind {kind!r} (images are resized with `resize`).")
        return None
    if resize is not None or letterbox:
        raise OptionError(
            f"Expected `resample = [D, H, W]` or `resample_spacing` for the volume dataset kind "
            f"{kind!r}, but got `{'resize' if resize is not None else 'letterbox'}` (2-D only).")
    if shape is not None and spacing is not None:
        raise OptionError(
            f"Expected at most one of `resample` (a shape) and `resample_spacing` (mm), but got "
            f"both: {shape!r} and {spacing!r}.")
    if shape is None and spacing is None:
        return None
    if shape is not None:
        return Resample(check_size(shape, "resample", 3), mode=mode,
                        mask_rule=mask_rule)  # type: ignore[arg-type]
    return Resample(spacing=_positive_triple(spacing, "resample_spacing"), mode=mode,
                    mask_rule=mask_rule)  # type: ignore[arg-type]
