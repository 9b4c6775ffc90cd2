"""Helpers that write tiny dataset files (PNG, TIFF, DICOM, CSV) for the data-layer tests.

Everything is written into a test's ``tmp_path``; nothing is downloaded.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write a uint8/uint16 grey (H, W) or colour (H, W, 3|4) array as PNG."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def gradient(height: int, width: int, *, dtype=np.uint8) -> np.ndarray:
    """A deterministic non-constant image (row-major ramp)."""
    top = 255 if dtype == np.uint8 else 65535
    ramp = np.arange(height * width, dtype=np.float64).reshape(height, width)
    return np.round(ramp / ramp.max() * top).astype(dtype)


def write_dicom(path: Path, array: np.ndarray, *, photometric: str = "MONOCHROME2",
                slope: float | None = None, intercept: float | None = None) -> Path:
    """Write a uint16 (H, W) array as a minimal single-frame DICOM file with pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    path.parent.mkdir(parents=True, exist_ok=True)
    instance = "1.2.826.0.1.3680043.8.498." + str(zlib.crc32(path.name.encode()))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = instance
    ds.PatientID = path.stem
    ds.Modality = "CR"
    ds.Rows, ds.Columns = array.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    ds.PixelData = np.ascontiguousarray(array.astype(np.uint16)).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def box_mask(height: int, width: int, boxes) -> torch.Tensor:
    """Reference rasterisation by the pixel-centre rule, one pixel at a time (union of boxes)."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    for x0, y0, x1, y1 in boxes:
        for i in range(height):
            for j in range(width):
                if x0 <= j + 0.5 < x1 and y0 <= i + 0.5 < y1:
                    mask[i, j] = True
    return mask


def bounding_edges(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` end-exclusive pixel bounds of a 2-D mask, ``None`` if empty."""
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    if rows.numel() == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def encode_rle(counts):
    """The COCO compressed-RLE encoder, written from the format description (test side)."""
    out = []
    for i, value in enumerate(counts):
        x = value - counts[i - 2] if i > 2 else value
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if c & 0x10 else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def runs_of(mask: np.ndarray) -> list[int]:
    flat = mask.T.reshape(-1)  # column-major
    runs, current, length = [], False, 0
    for value in flat:
        if value == current:
            length += 1
        else:
            runs.append(length)
            current, length = value, 1
    runs.append(length)
    return runs
