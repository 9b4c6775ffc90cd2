"""Loading volumes: NIfTI files (nibabel) and DICOM series (pydicom), with their voxel-to-world
geometry.

Orientation and coordinates (the same for both formats):

* A volume is a tensor ``(1, D, H, W)``. Voxel ``(k, i, j)`` (slice, row, column)
  has the *voxel coordinates* ``x = j``, ``y = i``, ``z = k``: ``x`` runs along the
  last tensor axis ``W``, ``y`` along ``H`` and ``z`` along ``D``. Boxes are
  ``(x0, y0, z0, x1, y1, z1)`` in voxel *edges*, end-exclusive: voxel ``(k, i, j)``
  covers ``[j, j + 1) x [i, i + 1) x [k, k + 1)`` (see :mod:`~xaiscore.harness.data.boxes3d`).
* NIfTI: the stored array ``data[i, j, k]`` becomes ``volume[0, k, j, i]``, so the
  voxel coordinates ``(x, y, z)`` are the file's voxel indices ``(i, j, k)``.
  With ``canonical=True`` (the readers' default) the image is first reoriented by
  :func:`nibabel.as_closest_canonical` (flips and axis swaps only, no resampling) so that
  ``x``, ``y`` and ``z`` increase towards the patient's Right, Anterior and Superior
  (RAS+) as closely as the acquisition allows.
* DICOM series: the slices of a folder are sorted by their position along the slice
  normal (``ImagePositionPatient`` projected on the cross product of the two
  ``ImageOrientationPatient`` directions), ``x`` is the column, ``y`` the row, ``z`` the
  sorted slice index. Spacing comes from ``PixelSpacing`` (row, column) and the distance
  of consecutive slice positions (they must be evenly spaced within 1 %).
* World coordinates are millimetres in RAS+ (DICOM's LPS patient coordinates with the
  first two axes negated). :attr:`Volume.affine` maps voxel *centres* ``(x, y, z)``, at
  integer indices as in NIfTI, to world millimetres; the edge coordinates of boxes are the
  centre indices plus one half (:func:`world_box_to_voxels`).
* :attr:`Volume.spacing` is in the tensor's axis order ``(D, H, W)``: millimetres between
  slices, rows and columns.

Example:
    >>> import numpy as np
    >>> affine = np.diag([2.0, 2.0, 3.0, 1.0])  # 2 mm columns and rows, 3 mm slices
    >>> world_box_to_voxels((-1.0, -1.0, -1.5, 3.0, 1.0, 4.5), affine)
    (0.0, 0.0, 0.0, 2.0, 1.0, 2.0)
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from xaiscore._checks import OptionError
from xaiscore.harness.data.errors import DatasetError

__all__ = [
    "Volume",
    "NIFTI_SUFFIXES",
    "load_nifti",
    "load_label_map",
    "load_dicom_series",
    "scale_intensity",
    "world_box_to_voxels",
    "map_voxel_box",
    "case_id_of",
]

NIFTI_SUFFIXES = (".nii.gz", ".nii")

#: DICOM's LPS patient coordinates to RAS+ world millimetres.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Volume:
    """A loaded volume and its geometry.

    Attributes:
        image: ``(1, D, H, W)`` float32 values as stored (HU for CT), not yet scaled.
        affine: ``(4, 4)`` voxel centre ``(x, y, z, 1)`` -> world RAS+ millimetres.
        spacing: Millimetres between voxels along ``(D, H, W)``.
        original_affine: The file's affine before any reorientation (boxes given in the
            file's voxels are mapped from it).
    """

    image: Tensor
    affine: np.ndarray
    spacing: tuple[float, float, float]
    original_affine: np.ndarray


def case_id_of(path: str | os.PathLike[str]) -> str:
    """The case id of a volume file or series folder: its name without ``.nii``/``.nii.gz``.

    Example:
        >>> case_id_of("data/case_007.nii.gz"), case_id_of("series/case_008")
        ('case_007', 'case_008')
    """
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """``(D, H, W)`` spacing: the lengths of the affine's z, y, x columns."""
    lengths = np.linalg.norm(affine[:3, :3], axis=0)
    return (float(lengths[2]), float(lengths[1]), float(lengths[0]))


def _nifti_image(path: Path, canonical: bool, what: str):
    import nibabel

    if not path.is_file():
        raise DatasetError(f"{what} file not found", file=path)
    try:
        image = nibabel.load(str(path))
        reoriented = nibabel.as_closest_canonical(image) if canonical else image
        data = np.asarray(reoriented.dataobj)
    # nibabel raises many kinds (ImageFileError, OSError, EOFError, zlib)
    except Exception as error:
        raise DatasetError(f"cannot read the NIfTI {what} ({type(error).__name__}: {error})",
                           file=path) from error
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DatasetError(f"expected a 3-D NIfTI {what}, but the data has shape {data.shape}",
                           file=path)
    return data, np.asarray(reoriented.affine, dtype=np.float64), np.asarray(image.affine,
                                                                             dtype=np.float64)


def load_nifti(path: str | os.PathLike[str], *, canonical: bool = True) -> Volume:
    """Read a 3-D NIfTI file (``.nii`` or ``.nii.gz``) as a :class:`Volume`.

    Args:
        path: The file.
        canonical: Reorient to the closest RAS+ voxel order first (see the module docstring).

    Raises:
        DatasetError: a missing or unreadable file, or data that is not 3-D.
    """
    data, affine, original = _nifti_image(Path(path), canonical, "image")
    image = torch.from_numpy(np.ascontiguousarray(data.transpose(2, 1, 0),
                                                  dtype=np.float32)).unsqueeze(0)
    return Volume(image, affine, _spacing_of(affine), original)


def load_label_map(path: str | os.PathLike[str], *, canonical: bool = True,
                   shape: tuple[int, int, int] | None = None) -> Tensor:
    """Read a NIfTI label map as ``(D, H, W)`` int64 (integer labels; 0 is background).

    Raises:
        DatasetError: unreadable, non-integer labels, or a shape other than ``shape``.
    """
    path = Path(path)
    data, _, _ = _nifti_image(path, canonical, "label map")
    labels = np.ascontiguousarray(data.transpose(2, 1, 0))
    if not np.all(np.isfinite(labels)) or not np.array_equal(labels, np.round(labels)):
        raise DatasetError("expected integer labels in the label map", file=path)
    if shape is not None and labels.shape != tuple(shape):
        raise DatasetError(
            f"expected the label map to have the volume's shape (D, H, W) = {tuple(shape)}, but "
            f"got {labels.shape}",
            file=path,
        )
    return torch.from_numpy(labels.astype(np.int64))


def _series_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError("DICOM series folder not found", file=folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DatasetError("expected DICOM slices in the series folder, but it is empty",
                           file=folder)
    return files


def _read_slice(path: Path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
        pixels = np.asarray(dataset.pixel_array, dtype=np.float64)
        orientation = np.array([float(v) for v in dataset.ImageOrientationPatient],
                               dtype=np.float64)
        position = np.array([float(v) for v in dataset.ImagePositionPatient], dtype=np.float64)
        spacing = [float(v) for v in dataset.PixelSpacing]
    except (InvalidDicomError, AttributeError, KeyError, ValueError, TypeError, RuntimeError,
            OSError,
            EOFError, NotImplementedError) as error:
        raise DatasetError(f"cannot read a DICOM slice ({type(error).__name__}: {error})",
                           file=path) from error
    if pixels.ndim != 2 or orientation.shape != (6,) or position.shape != (3,) or len(spacing) != 2:
        raise DatasetError(
            f"expected a single-frame 2-D slice with position and orientation, but got pixel "
            f"array {pixels.shape}", file=path)
    slope = float(getattr(dataset, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(dataset, "RescaleIntercept", 0.0) or 0.0)
    return pixels * slope + intercept, orientation, position, spacing


def load_dicom_series(folder: str | os.PathLike[str]) -> Volume:
    """Read the DICOM slices in ``folder`` (one series) as a :class:`Volume`.

    Slices are sorted by their position along the slice normal; values go through
    ``RescaleSlope``/``RescaleIntercept`` (HU for CT).

    Raises:
        DatasetError: an empty folder, an unreadable slice, slices of different size or
            orientation, two slices at one position, or uneven slice spacing.
    """
    folder = Path(folder)
    slices = [(path, *_read_slice(path)) for path in _series_files(folder)]
    first = slices[0]
    row_direction, column_direction = first[2][:3], first[2][3:]
    normal = np.cross(row_direction, column_direction)
    for path, pixels, orientation, _, spacing in slices[1:]:
        if pixels.shape != first[1].shape or not np.allclose(orientation, first[2], atol=1e-4) \
                or not np.allclose(spacing, first[4], rtol=1e-4):
            raise DatasetError(
                f"expected every slice of the series with the size {first[1].shape}, orientation "
                f"and pixel spacing of {first[0].name}, but this one differs", file=path)
    slices.sort(key=lambda item: float(item[3] @ normal))
    depths = np.array([float(item[3] @ normal) for item in slices])
    steps = np.diff(depths)
    if len(slices) > 1:
        if np.min(steps) <= 1e-6:
            raise DatasetError("expected one slice per position, but two slices share a position",
                               file=folder)
        if np.max(steps) - np.min(steps) > 0.01 * np.median(steps):
            raise DatasetError(
                f"expected evenly spaced slices, but the distances range from {np.min(steps):g} to "
                f"{np.max(steps):g} mm", file=folder)
    slice_spacing = float(np.median(steps)) if len(slices) > 1 else 1.0
    row_spacing, column_spacing = first[4]
    lps = np.eye(4)
    lps[:3, 0] = row_direction * column_spacing  # x: along a row (the column index grows)
    lps[:3, 1] = column_direction * row_spacing  # y: down a column (the row index grows)
    lps[:3, 2] = normal * slice_spacing
    lps[:3, 3] = slices[0][3]
    affine = _LPS_TO_RAS @ lps
    array = np.stack([item[1] for item in slices]).astype(np.float32)
    return Volume(torch.from_numpy(array).unsqueeze(0), affine,
                  (slice_spacing, row_spacing, column_spacing), affine)


def scale_intensity(image: Tensor, intensity: str | Sequence[float]) -> Tensor:
    """Map stored values to model inputs: ``"minmax"`` (the volume's range to ``[0, 1]``; a
    constant volume gives zeros), ``"raw"`` (unchanged) or a window ``(low, high)`` (clipped,
    then mapped to ``[0, 1]``; e.g. ``(-1000, 400)`` HU for CT).

    Example:
        >>> scale_intensity(torch.tensor([-2000.0, 0.0, 1000.0]), (-1000, 1000)).tolist()
        [0.0, 0.5, 1.0]
    """
    if isinstance(intensity, str):
        if intensity == "raw":
            return image
        if intensity == "minmax":
            low, high = image.min(), image.max()
            span = high - low
            return (image - low) / span if float(span) > 0 else torch.zeros_like(image)
    elif len(intensity) == 2 and float(intensity[1]) > float(intensity[0]):
        low, high = float(intensity[0]), float(intensity[1])
        return (image.clamp(low, high) - low) / (high - low)
    raise OptionError(
        "Expected `intensity` as 'minmax', 'raw' or a window (low, high) with low < high, but got "
        f"{intensity!r}."
    )


def _corners(box: Sequence[float]) -> np.ndarray:
    """``(8, 4)`` homogeneous corners of a box ``(x0, y0, z0, x1, y1, z1)``."""
    return np.array([[x, y, z, 1.0] for x, y, z in itertools.product(*zip(box[:3], box[3:]))])


def _bounds(points: np.ndarray) -> tuple[float, ...]:
    low, high = points[:, :3].min(axis=0), points[:, :3].max(axis=0)
    # round away float noise from the matrix products (1e-9 voxels)
    return tuple(float(np.round(v, 9)) + 0.0 for v in (*low, *high))


def world_box_to_voxels(box: Sequence[float], affine: np.ndarray) -> tuple[float, ...]:
    """A box of world millimetres ``(x0, y0, z0, x1, y1, z1)`` (RAS+) in voxel edge coordinates.

    The eight corners go through the inverse affine; the result is their bounding box
    (exact for the axis-aligned grids of reoriented volumes; for an oblique volume the
    smallest voxel-aligned box holding the world box).
    """
    voxels = _corners(box) @ np.linalg.inv(affine).T
    voxels[:, :3] += 0.5  # centre indices -> edge coordinates
    return _bounds(voxels)


def map_voxel_box(box: Sequence[float], from_affine: np.ndarray,
                  to_affine: np.ndarray) -> tuple[float, ...]:
    """A voxel box of one grid (e.g. the file as stored) in another grid of the same world
    (reoriented).

    Example:
        >>> flip = np.diag([-1.0, 1.0, 1.0, 1.0]); flip[0, 3] = 9.0  # x reversed on 10 columns
        >>> map_voxel_box((0, 0, 0, 2, 1, 1), np.eye(4), flip)
        (8.0, 0.0, 0.0, 10.0, 1.0, 1.0)
    """
    corners = _corners(box)
    corners[:, :3] -= 0.5
    voxels = corners @ (np.linalg.inv(to_affine) @ from_affine).T
    voxels[:, :3] += 0.5
    return _bounds(voxels)
