"""Volume readers (NIfTI, DICOM series) on fixture files written here, and resampling of volumes."""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel
import numpy as np
import pytest
import torch

from xaiscore import OptionError, ShapeError
from xaiscore.harness.data import collate, iterate_batches, open_dataset
from xaiscore.harness.data.errors import DatasetError
from xaiscore.harness.data.records import SampleRecord
from xaiscore.harness.data.volume_io import load_dicom_series, load_nifti, world_box_to_voxels
from xaiscore.harness.data.volume_transforms import Resample
from xaiscore.harness.data.volumes import read_dicom_series, read_nifti_volumes

HEADER = "case_id,label,x0,y0,z0,x1,y1,z1\n"


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.Nifti1Image(data, affine).to_filename(str(path))
    return path


def flipped_affine(shape) -> np.ndarray:
    """File voxels: i runs to the patient's left (x flipped), 2 mm columns/rows, 3 mm slices."""
    affine = np.diag([-2.0, 2.0, 3.0, 1.0])
    affine[0, 3] = 2.0 * (shape[0] - 1) + 10.0
    affine[1, 3], affine[2, 3] = -5.0, 7.0
    return affine


def cuboid(shape, lo, hi, dtype=np.float32):
    """File array data[i, j, k] with ones on [lo, hi) per file axis."""
    data = np.zeros(shape, dtype=dtype)
    data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = 1
    return data


def world_edges(affine, lo, hi):
    """World box (x0, y0, z0, x1, y1, z1) of file voxels [lo, hi): corners at index -/+ 1/2, by
    hand."""
    corners = [affine @ np.array([a - 0.5, b - 0.5, c - 0.5, 1.0])
               for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]
    corners = np.array(corners)[:, :3]
    return tuple(corners.min(0)) + tuple(corners.max(0))


@pytest.mark.parametrize("units", ["voxel", "mm"])
@pytest.mark.parametrize("canonical", [True, False])
def test_nifti_boxes_land_on_the_lesion_in_voxels_and_world_mm(tmp_path, units, canonical):
    shape, lo, hi = (7, 6, 5), (1, 2, 0), (4, 5, 2)  # file axes i, j, k
    affine = flipped_affine(shape)
    write_nifti(tmp_path / "img" / "c1.nii.gz", cuboid(shape, lo, hi) * 100.0, affine)
    write_nifti(tmp_path / "img" / "c2.nii.gz", np.zeros(shape, np.float32), affine)
    box = (*lo, *hi) if units == "voxel" else world_edges(affine, lo, hi)
    (tmp_path / "b.csv").write_text(HEADER + "c1,Lesion," + ",".join(f"{v:.6f}" for v in box)
                                    + "\n")
    ds = read_nifti_volumes(tmp_path / "img", boxes=tmp_path / "b.csv", box_units=units,
                            canonical=canonical)
    assert len(ds) == 2 and ds.class_names == ("No Finding", "Lesion")
    lesion, negative = ds[0], ds[1]
    assert lesion.image.shape == (1, 5, 6, 7)  # (D, H, W) = file (k, j, i)
    assert lesion.meta["spacing"] == pytest.approx((3.0, 2.0, 2.0))
    batch = collate([lesion, negative])
    # the box covers exactly the bright voxels
    torch.testing.assert_close(batch.mask[0], lesion.image > 0.5)
    assert not batch.mask[1].any() and negative.finding == "No Finding" and negative.label == 0
    stored = torch.from_numpy(cuboid(shape, lo, hi).transpose(2, 1, 0).copy()).bool()
    if canonical:  # x flipped to run towards the right
        assert torch.equal(lesion.image[0] > 0.5, stored.flip(-1))
        assert lesion.meta["affine"][0][0] == pytest.approx(2.0)
    else:
        assert torch.equal(lesion.image[0] > 0.5, stored)


def test_nifti_label_maps_give_one_sample_per_class_with_component_boxes(tmp_path):
    shape = (8, 6, 5)
    labels = np.zeros(shape, np.int16)
    labels[1:3, 1:3, 1:2] = 1
    labels[5:7, 4:6, 3:5] = 1  # a second component of class 1
    labels[4, 0, 0] = 2
    for case in ("a", "b"):
        write_nifti(tmp_path / "img" / f"{case}.nii.gz",
                    np.random.default_rng(0).random(shape, np.float32),
                    np.eye(4))
    write_nifti(tmp_path / "lab" / "a.nii.gz", labels, np.eye(4))
    write_nifti(tmp_path / "lab" / "b.nii", np.zeros(shape, np.int16), np.eye(4))
    ds = read_nifti_volumes(tmp_path / "img", masks=tmp_path / "lab",
                            classes={1: "Nodule", 2: "Cyst"},
                            intensity=(0.0, 0.5))
    assert ds.class_names == ("No Finding", "Nodule", "Cyst")
    records = [ds[i] for i in range(len(ds))]
    assert [(r.source_id, r.finding, r.label) for r in records] == [
        ("a/Nodule", "Nodule", 1), ("a/Cyst", "Cyst", 2), ("b", "No Finding", 0)]
    assert records[0].boxes.tolist() == [[1.0, 1.0, 1.0, 3.0, 3.0, 2.0], [5.0, 4.0, 3.0, 7.0, 6.0,
                                                                          5.0]]
    assert torch.equal(records[0].mask[0], torch.from_numpy(labels.transpose(2, 1, 0) == 1))
    assert records[1].boxes.tolist() == [[4.0, 0.0, 0.0, 5.0, 1.0, 1.0]]
    assert not records[2].mask.any() and records[2].boxes.shape == (0, 6)
    assert float(records[0].image.max()) == 1.0  # the window (0, 0.5) clips


def test_nifti_reader_errors(tmp_path):
    shape = (4, 4, 4)
    write_nifti(tmp_path / "img" / "c1.nii.gz", np.zeros(shape, np.float32), np.eye(4))
    write_nifti(tmp_path / "img" / "c2.nii.gz", np.zeros(shape, np.float32), np.eye(4))
    csv = tmp_path / "b.csv"
    csv.write_text(HEADER + "c1,Lesion,0,0,0,2,2,9\nc2,Lesion,0,0,0,x,1,1\nc3,Lesion,0,0,0,1,1,1\n")
    with pytest.raises(OptionError, match="exactly one"):
        read_nifti_volumes(tmp_path / "img")
    with pytest.raises(DatasetError, match="column 'x1'"):
        read_nifti_volumes(tmp_path / "img", boxes=csv)
    ds = read_nifti_volumes(tmp_path / "img", boxes=csv, on_error="skip")
    assert [s.row for s in ds.skipped] == [3, 4]  # the bad number, then the case without a volume
    assert len(ds) == 1
    with pytest.raises(DatasetError, match="outside the volume"):
        ds[0]
    assert list(iterate_batches(ds, 2, on_error="skip")) == [] and ds.skipped[-1].row == 2
    assert read_nifti_volumes(tmp_path / "img", boxes=csv, on_error="skip",
                              clip_boxes=True)[0].boxes.tolist() \
        == [[0.0, 0.0, 0.0, 2.0, 2.0, 4.0]]
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(DatasetError, match="cannot read the NIfTI"):
        load_nifti(tmp_path / "bad.nii.gz")
    write_nifti(tmp_path / "lab" / "c1.nii.gz", np.full(shape, 3, np.int16), np.eye(4))
    with pytest.raises(DatasetError, match=r"label values \[3\]"):
        read_nifti_volumes(tmp_path / "img", masks=tmp_path / "lab")
    with pytest.raises(OptionError, match="intensity"):
        read_nifti_volumes(tmp_path / "img", boxes=csv, intensity=(1, 0))


# --- DICOM series ---------------------------------------------------------------------------------


def write_slice(path: Path, pixels: np.ndarray, position, *, orientation=(1, 0, 0, 0, 1, 0),
                spacing=(0.5, 0.8),
                slope=1.0, intercept=-1024.0) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    path.parent.mkdir(parents=True, exist_ok=True)
    instance = "1.2.826.0.1.3680043.8.498." + str(zlib.crc32(str(path).encode()))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, instance, "CT"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in spacing]
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = np.ascontiguousarray(pixels.astype(np.uint16)).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_series(folder: Path, depth=5, rows=4, columns=6, *, step=2.5, lesion=None) -> None:
    """Slice k holds 1024 + 10 k (HU 10 k) and 3000 on the lesion voxels; files written in shuffled
    order."""
    for n, k in enumerate([3, 0, 4, 1, 2][:depth] if depth == 5 else range(depth)):
        pixels = np.full((rows, columns), 1024 + 10 * k)
        if lesion is not None and lesion[2] <= k < lesion[5]:
            pixels[lesion[1]:lesion[4], lesion[0]:lesion[3]] = 3000
        write_slice(folder / f"im{n:03d}.dcm", pixels, (-20.0, 30.0, -100.0 + step * k))


def test_dicom_series_is_sorted_by_position_with_spacing_and_hu(tmp_path):
    write_series(tmp_path / "case1")
    volume = load_dicom_series(tmp_path / "case1")
    assert volume.image.shape == (1, 5, 4, 6)
    # HU, sorted along z
    np.testing.assert_allclose(volume.image[0, :, 0, 0].numpy(), [0, 10, 20, 30, 40])
    assert volume.spacing == pytest.approx((2.5, 0.5, 0.8))  # (slices, rows, columns)
    # voxel centre (x, y, z) = (column, row, slice) -> RAS mm: LPS (-20 + 0.8 x, 30 + 0.5 y, -100 +
    # 2.5 z), x, y negated
    np.testing.assert_allclose(volume.affine @ np.array([2.0, 3.0, 4.0, 1.0]),
                               [20 - 1.6, -30 - 1.5, -90.0, 1.0])


@pytest.mark.parametrize("units", ["voxel", "mm"])
def test_dicom_boxes_in_voxels_and_world_mm_land_on_the_lesion(tmp_path, units):
    lesion = (1, 1, 2, 4, 3, 4)  # x0, y0, z0, x1, y1, z1 (column, row, slice)
    write_series(tmp_path / "s" / "case1", lesion=lesion)
    write_series(tmp_path / "s" / "case2")
    if units == "voxel":
        box = lesion
    # edges by hand: LPS x = -20 + 0.8 (c - 1/2), y = 30 + 0.5 (r - 1/2), z = -100 + 2.5 (k - 1/2)
    else:
        xs = [-(-20 + 0.8 * (c - 0.5)) for c in (lesion[0], lesion[3])]
        ys = [-(30 + 0.5 * (r - 0.5)) for r in (lesion[1], lesion[4])]
        zs = [-100 + 2.5 * (k - 0.5) for k in (lesion[2], lesion[5])]
        box = (min(xs), min(ys), min(zs), max(xs), max(ys), max(zs))
    (tmp_path / "b.csv").write_text(HEADER + "case1,Nodule," + ",".join(f"{v:.6f}" for v in box)
                                    + "\n")
    ds = read_dicom_series(tmp_path / "s", boxes=tmp_path / "b.csv", box_units=units,
                           intensity=(-100, 2000))
    records = [ds[0], ds[1]]
    assert [r.source_id for r in records] == ["case1", "case2"]
    assert records[0].boxes.tolist() == [[float(v) for v in lesion]]
    batch = collate(records)
    assert torch.equal(batch.mask[0], records[0].image > 0.9)  # lesion: 1976 HU -> 0.989
    assert records[0].meta["spacing"] == pytest.approx((2.5, 0.5, 0.8))


def test_dicom_series_errors(tmp_path):
    write_series(tmp_path / "uneven", depth=3)
    write_slice(tmp_path / "uneven" / "extra.dcm", np.zeros((4, 6)), (-20.0, 30.0, -80.0))
    with pytest.raises(DatasetError, match="evenly spaced"):
        load_dicom_series(tmp_path / "uneven")
    write_series(tmp_path / "twice", depth=2)
    write_slice(tmp_path / "twice" / "copy.dcm", np.zeros((4, 6)), (-20.0, 30.0, -100.0))
    with pytest.raises(DatasetError, match="share a position"):
        load_dicom_series(tmp_path / "twice")
    write_series(tmp_path / "sizes", depth=2)
    write_slice(tmp_path / "sizes" / "big.dcm", np.zeros((5, 6)), (-20.0, 30.0, -95.0))
    with pytest.raises(DatasetError, match="differs"):
        load_dicom_series(tmp_path / "sizes")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        load_dicom_series(tmp_path / "empty")
    (tmp_path / "junk" / "a.dcm").parent.mkdir()
    (tmp_path / "junk" / "a.dcm").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="cannot read a DICOM slice"):
        load_dicom_series(tmp_path / "junk")


# --- resampling -----------------------------------------------------------------------------------


def volume_record(shape=(10, 8, 12), box=(2.0, 2.0, 0.0, 6.0, 4.0, 5.0), meta=None):
    mask = torch.zeros(1, *shape, dtype=torch.bool)
    x0, y0, z0, x1, y1, z1 = (int(v) for v in box)
    mask[0, z0:z1, y0:y1, x0:x1] = True
    return SampleRecord(torch.rand(1, *shape, generator=torch.Generator().manual_seed(0)), 1,
                        torch.tensor([box]), ("Lesion",), mask, "v", "Lesion", meta=meta or {},
                        extra_masks={"shortcut": mask.clone()})


@pytest.mark.parametrize("target", [(20, 4, 6), (5, 16, 24), (10, 8, 12), (7, 5, 9)])
def test_resample_moves_boxes_and_masks_with_the_volume(target):
    record = volume_record()
    out = Resample(target)(record)
    assert out.image.shape == (1, *target)
    box = out.boxes[0].tolist()
    scale = [target[2] / 12, target[1] / 8, target[0] / 10] * 2
    assert box == pytest.approx([v * s for v, s in zip(record.boxes[0].tolist(), scale)])
    rasterised = collate([out.with_updates(mask=None)]).mask[0]
    # grid-aligned: the resized mask equals the rasterised box
    if all(float(v).is_integer() for v in box):
        assert torch.equal(out.mask, rasterised)
    else:  # within one voxel of each other on each border
        assert (out.mask ^ rasterised).sum() <= (out.mask | rasterised).sum()
    assert torch.equal(out.extra_masks["shortcut"], out.mask)


def test_resample_to_spacing_keeps_world_coordinates():
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    affine[:3, 3] = (-5.0, 2.0, 10.0)
    meta = {"spacing": (3.0, 1.0, 1.0), "affine": tuple(map(tuple, affine))}
    record = volume_record(meta=meta)
    world = (-5.5 + 2, 1.5 + 2, 8.5, -5.5 + 6, 1.5 + 4, 8.5 + 15)  # the box's edges in mm
    assert world_box_to_voxels(world, affine) == pytest.approx(tuple(record.boxes[0].tolist()))
    out = Resample(spacing=(1.5, 2.0, 2.0))(record)
    assert out.image.shape == (1, 20, 4, 6) and out.meta["spacing"] == (1.5, 2.0, 2.0)
    new_affine = np.asarray(out.meta["affine"])
    assert world_box_to_voxels(world, new_affine) == pytest.approx(tuple(out.boxes[0].tolist()))
    assert out.meta["transforms"] == ("resample(10x8x12->20x4x6)",)


def test_resample_errors():
    with pytest.raises(OptionError, match="exactly one"):
        Resample()
    with pytest.raises(OptionError, match="spacing"):
        Resample(spacing=(1, 0, 1))
    with pytest.raises(OptionError, match=r"meta\['spacing'\]"):
        Resample(spacing=1.0)(volume_record())
    flat = SampleRecord(torch.zeros(1, 4, 4), 0, torch.zeros(0, 4), (), None, "f", "No Finding")
    with pytest.raises(ShapeError, match="volume"):
        Resample(4)(flat)


def test_open_dataset_knows_the_volume_readers(tmp_path):
    write_nifti(tmp_path / "img" / "c1.nii.gz", np.zeros((4, 4, 4), np.float32), np.eye(4))
    (tmp_path / "b.csv").write_text(HEADER)
    ds = open_dataset("nifti", images=str(tmp_path / "img"), boxes=str(tmp_path / "b.csv"),
                      transform=Resample(2))
    assert ds[0].image.shape == (1, 2, 2, 2) and ds[0].finding == "No Finding"
