"""File access shared by the readers: images, DICOM, masks, CSV rows, file lookup.

Every failure becomes a :class:`~xaiscore.harness.data.errors.DatasetError`
naming the file (and the row where there is one), chained to the original
exception. Pillow and pydicom are imported on first use.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from xaiscore.harness.data.errors import DatasetError, DataWarning

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageLocator",
    "load_image",
    "load_dicom",
    "load_any_image",
    "load_mask_image",
    "read_csv_rows",
    "parse_number",
    "is_blank",
]

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom")
_LUMA = np.array([0.299, 0.587, 0.114])


def _to_channels(array: np.ndarray, channels: int | None, path: Path) -> Tensor:
    """``(H, W)`` or ``(H, W, K)`` float array -> ``(C, H, W)`` float32 tensor."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise DatasetError(f"expected a 2-D image, but the pixel array has shape {array.shape}",
                           file=path)
    if array.shape[2] in (2, 4):  # grey + alpha, RGB + alpha: drop alpha
        array = array[:, :, :-1]
    have = array.shape[2]
    if channels is not None and channels != have:
        if channels == 1 and have == 3:
            array = (array @ _LUMA)[:, :, None]
        elif have == 1:
            array = np.repeat(array, channels, axis=2)
        else:
            raise DatasetError(f"cannot turn a {have}-channel image into {channels} channel(s)",
                               file=path)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).to(torch.float32)


def _pil_array(path: Path, what: str) -> tuple[np.ndarray, str]:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DatasetError(f"{what} file not found", file=path)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                mode = image.mode
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"cannot read {what} ({type(error).__name__}: {error})",
                           file=path) from error
    return array, mode


def _scaled(array: np.ndarray, mode: str) -> np.ndarray:
    """Pixel values as float64: 8-bit / 255, 16-bit / 65535, 1-bit as 0/1, float as stored."""
    if array.dtype == np.bool_:
        return array.astype(np.float64)
    if mode.startswith("I;16") or array.dtype == np.uint16:
        return array.astype(np.float64) / 65535.0
    if mode == "I":
        values = array.astype(np.float64)
        in_range = values.max(initial=0) <= 65535 and values.min(initial=0) >= 0
        return values / 65535.0 if in_range else values
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float64)
    return array.astype(np.float64) / 255.0


def load_image(path: str | os.PathLike[str], *, channels: int | None = None) -> Tensor:
    """Read a PNG/JPEG/TIFF/BMP image as ``(C, H, W)`` float32 in ``[0, 1]``.

    8-bit images are divided by 255, 16-bit ones by 65535, 1-bit ones are 0/1;
    32-bit float images are returned as stored. Alpha channels are dropped.
    ``channels=1`` turns colour into grey (ITU-R 601 luma), ``channels=3``
    repeats a grey image; ``None`` keeps the file's channels.

    Raises:
        DatasetError: missing or unreadable file (naming it).
    """
    path = Path(path)
    array, mode = _pil_array(path, "image")
    return _to_channels(_scaled(array, mode), channels, path)


def load_dicom(path: str | os.PathLike[str], *, channels: int | None = 1) -> Tensor:
    """Read a single-frame DICOM image as ``(C, H, W)`` float32 in ``[0, 1]``.

    The stored values are mapped through ``RescaleSlope``/``RescaleIntercept``,
    scaled to ``[0, 1]`` by the image's own minimum and maximum (a constant
    image gives zeros) and inverted for ``MONOCHROME1`` (bright = dense, as in
    ``MONOCHROME2``).

    Raises:
        DatasetError: missing file, not a DICOM file, no or undecodable pixel
            data, or a multi-frame image.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise DatasetError("DICOM file not found", file=path)
    try:
        dataset = pydicom.dcmread(path)
        array = np.asarray(dataset.pixel_array, dtype=np.float64)
    except (InvalidDicomError, AttributeError, KeyError, ValueError, TypeError, RuntimeError,
            OSError,
            EOFError, NotImplementedError) as error:
        raise DatasetError(f"cannot read DICOM pixel data ({type(error).__name__}: {error})",
                           file=path) from error
    samples = int(getattr(dataset, "SamplesPerPixel", 1) or 1)
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    if frames > 1 or array.ndim - (samples > 1) != 2:
        raise DatasetError(
            "expected a single-frame 2-D DICOM image, but got pixel array "
            f"{array.shape}", file=path)
    slope = float(getattr(dataset, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(dataset, "RescaleIntercept", 0.0) or 0.0)
    array = array * slope + intercept
    low, high = float(array.min()), float(array.max())
    array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    if str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        array = 1.0 - array
    return _to_channels(array, channels, path)


def load_any_image(path: str | os.PathLike[str], *, channels: int | None) -> Tensor:
    """:func:`load_dicom` for ``.dcm``/``.dicom`` files, :func:`load_image` otherwise."""
    if Path(path).suffix.lower() in DICOM_SUFFIXES:
        return load_dicom(path, channels=channels)
    return load_image(path, channels=channels)


def load_mask_image(path: str | os.PathLike[str], *, threshold: float = 0.5) -> Tensor:
    """Read a mask image (PNG/TIFF...) as ``(1, H, W)`` bool.

    Values are scaled as in :func:`load_image` (colour masks: the maximum over
    channels) and a pixel is in the mask when its value is ``>= threshold``
    (so 0/255 and 0/1 masks both work with the default 0.5).

    Raises:
        DatasetError: missing or unreadable file.
    """
    path = Path(path)
    array, mode = _pil_array(path, "mask")
    values = _scaled(array, mode)
    if values.ndim == 3:
        if values.shape[2] in (2, 4):  # drop alpha
            values = values[:, :, :-1]
        values = values.max(axis=2)
    if mode in ("I", "F") and values.max(initial=0) > 1.0:
        values = values / values.max()
    return torch.from_numpy(values >= threshold).unsqueeze(0)


def is_blank(value: str | None) -> bool:
    """``True`` for a missing or whitespace-only CSV field (and ``"nan"``, as pandas writes it)."""
    return value is None or value.strip() == "" or value.strip().lower() == "nan"


def parse_number(value: str | None, *, column: str, file: str | os.PathLike[str],
                 row: int) -> float:
    """Parse a finite float from a CSV field, or raise :class:`DatasetError` naming file, row and
    column."""
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        raise DatasetError(f"expected a number in column {column!r}, but got {value!r}", file=file,
                           row=row) from None
    if not math.isfinite(number):
        raise DatasetError(f"expected a finite number in column {column!r}, but got {value!r}",
                           file=file, row=row)
    return number


def read_csv_rows(
    path: str | os.PathLike[str], *, required: Sequence[str], optional: Sequence[str] = ()
) -> Iterator[tuple[int, dict[str, str | None]]]:
    """Yield ``(line, {column: value})`` for every non-empty data row of a CSV file.

    Column names are matched after stripping whitespace (and a UTF-8 BOM);
    ``line`` is the 1-based line number as an editor shows it (header = 1).
    Columns missing from a short row are ``None``.

    Warns:
        DataWarning: the file's last line has no line break: tables written by a program end
            with one, so the file was probably cut short and its last row may be incomplete
            (a number ``154.0338`` cut to ``15`` still parses).

    Raises:
        DatasetError: missing file, empty file, or missing required columns
            (row 1, naming the columns found).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError("annotation file not found", file=path)
    _warn_if_cut_short(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DatasetError("expected a CSV header, but the file is empty", file=path,
                               row=1) from None
        except csv.Error as error:
            raise DatasetError(f"cannot parse CSV ({error})", file=path, row=1) from error
        names = [name.strip() for name in header]
        missing = [c for c in required if c not in names]
        if missing:
            shown = ", ".join(repr(n) for n in names if n)
            raise DatasetError(f"expected columns {missing} in the header, but found {shown}",
                               file=path, row=1)
        index = {c: names.index(c) for c in (*required, *optional) if c in names}
        try:
            for fields in reader:
                if not fields or all(not f.strip() for f in fields):
                    continue
                yield reader.line_num, {c: (fields[i] if i < len(fields) else None)
                                        for c, i in index.items()}
        except csv.Error as error:
            raise DatasetError(f"cannot parse CSV ({error})", file=path,
                               row=reader.line_num) from error


def _warn_if_cut_short(path: Path) -> None:
    """Warn when a non-empty text file does not end with a line break (:func:`read_csv_rows`)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)
    if last not in (b"\n", b"\r"):
        warnings.warn(
            DataWarning(
                f"{path}: the last line has no line break at its end; the file may have been cut "
                "short, so check its last row (a value such as 154.0338 cut to 15 still reads as "
                "a number)."
            ),
            stacklevel=3,
        )


class ImageLocator:
    """Find image files by name under one or more folders.

    A name is looked up directly in each folder first (with each of
    ``suffixes`` appended when it has no suffix of its own); failing that, in
    an index of every file below the folders, built once on first need (real
    datasets spread images over sub-folders such as ``images_001/images``).

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "sub").mkdir()
        >>> _ = (root / "sub" / "a.png").write_bytes(b"")
        >>> ImageLocator([root], (".png",)).find("a").name
        'a.png'
    """

    def __init__(self, folders: Sequence[str | os.PathLike[str]], suffixes: Sequence[str]) -> None:
        self.folders = tuple(Path(f) for f in folders)
        self.suffixes = tuple(suffixes)
        self._index: dict[str, Path] | None = None

    def _names(self, name: str) -> list[str]:
        if Path(name).suffix.lower() in (*self.suffixes, *IMAGE_SUFFIXES, *DICOM_SUFFIXES):
            return [name]
        return [name + s for s in self.suffixes]

    def find(self, name: str) -> Path | None:
        """The path of ``name``, or ``None`` when no folder holds it."""
        candidates = self._names(name)
        for folder in self.folders:
            for candidate in candidates:
                path = folder / candidate
                if path.is_file():
                    return path
        index = self._file_index()
        for candidate in candidates:
            if Path(candidate).name in index:
                return index[Path(candidate).name]
        return None

    def _file_index(self) -> dict[str, Path]:
        """File name -> the first file of that name below the folders (sorted), built on first use.
        """
        if self._index is None:
            self._index = {}
            for folder in self.folders:
                if folder.is_dir():
                    for path in sorted(folder.rglob("*")):
                        if path.is_file():
                            self._index.setdefault(path.name, path)
        return self._index

    def describe(self) -> str:
        """The folders searched, for error messages."""
        return ", ".join(str(f) for f in self.folders)
