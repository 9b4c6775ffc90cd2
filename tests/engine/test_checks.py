"""Every input error, one by one: type, message, and that it reaches the user through a kernel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xaiscore
from xaiscore import _checks
from xaiscore._engine.reduction import normalise_by_max, reduce_channels
from xaiscore.functional import localization_auc, pointing_game, relevance_mass_accuracy, sparseness

A = torch.rand(2, 1, 4, 4)
MASK = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
MASK[:, :, :2, :2] = True


def test_every_error_subclasses_the_builtin_and_our_base():
    for error, builtin in [
        (xaiscore.ShapeError, ValueError),
        (xaiscore.DTypeError, TypeError),
        (xaiscore.NonFiniteError, ValueError),
        (xaiscore.MaskError, ValueError),
        (xaiscore.DeviceError, ValueError),
        (xaiscore.OptionError, ValueError),
    ]:
        assert issubclass(error, builtin)
        assert issubclass(error, xaiscore.XaiscoreError)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_attributions(bad):
    a = A.clone()
    a[1, 0, 2, 3] = bad
    with pytest.raises(xaiscore.NonFiniteError, match="Expected `a` to be finite, but got"):
        pointing_game(a, MASK)
    with pytest.raises(xaiscore.NonFiniteError):
        sparseness(a)


def test_validate_false_skips_the_data_checks_only():
    a = A.clone()
    a[0, 0, 0, 0] = float("nan")
    out = relevance_mass_accuracy(a, MASK, validate=False)  # no error; NaN propagates
    assert torch.isnan(out[0])
    with pytest.raises(xaiscore.ShapeError):  # structural checks always run
        relevance_mass_accuracy(A[:, :, :2], MASK, validate=False)


def test_spatial_shape_mismatch_names_both_shapes():
    with pytest.raises(
        xaiscore.ShapeError,
        match=r"Expected `mask` to have the spatial shape of `a` \(4, 4\), but got \(4, 3\)\.",
    ):
        pointing_game(A, MASK[..., :3])


def test_batch_size_mismatch():
    with pytest.raises(xaiscore.ShapeError, match=r"batch size of `a` \(2\), but got 1"):
        pointing_game(A, MASK[:1])


def test_mask_channel_mismatch():
    a = torch.rand(2, 3, 4, 4)
    with pytest.raises(xaiscore.ShapeError, match="1 channel or the 3 channel"):
        pointing_game(a, torch.ones(2, 2, 4, 4, dtype=torch.bool))


def test_mask_rank_mismatch():
    with pytest.raises(xaiscore.ShapeError, match=r"\(B, 1\|C, \*S\)"):
        pointing_game(A, MASK[:, 0])


def test_non_binary_mask():
    mask = MASK.float()
    mask[0, 0, 3, 3] = 0.5
    with pytest.raises(xaiscore.MaskError, match="binary.*0.5"):
        localization_auc(A, mask)


def test_zero_one_numeric_masks_are_accepted():
    for dtype in (torch.uint8, torch.int64, torch.float32):
        torch.testing.assert_close(pointing_game(A, MASK.to(dtype)), pointing_game(A, MASK))


def test_empty_batch():
    with pytest.raises(xaiscore.ShapeError, match="empty batch"):
        sparseness(torch.zeros(0, 1, 4, 4))


def test_empty_spatial_axis():
    with pytest.raises(xaiscore.ShapeError, match="non-empty"):
        sparseness(torch.zeros(2, 1, 0, 4))


@pytest.mark.parametrize("shape", [(4,), (2, 4), (1, 1, 2, 2, 2, 2)])
def test_unsupported_number_of_dims(shape):
    with pytest.raises(xaiscore.ShapeError, match="1 to 3 spatial dimension"):
        sparseness(torch.rand(shape))


def test_missing_channel_axis_gets_a_hint():
    with pytest.raises(xaiscore.ShapeError, match="unsqueeze"):
        sparseness(torch.rand(2, 4))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8])
def test_integer_attributions(dtype):
    with pytest.raises(xaiscore.DTypeError, match=f"floating-point tensor, but got dtype {dtype}"):
        pointing_game(torch.ones(2, 1, 4, 4, dtype=dtype), MASK)


def test_numpy_attributions_are_refused_with_a_hint():
    with pytest.raises(xaiscore.DTypeError, match="torch.as_tensor"):
        sparseness(np.ones((2, 1, 4, 4)))


def test_mask_on_another_device():
    # The meta device stands in for a second device on a CPU-only machine.
    from xaiscore._checks import check_same_device

    with pytest.raises(xaiscore.DeviceError,
                       match=r"Expected `mask` on the device of `a` \(cpu\), but got meta"):
        check_same_device(A, MASK.to("meta"), reference_name="a", other_name="mask")


def test_meta_mask_is_refused_before_any_data_is_read():
    with pytest.raises(xaiscore.DeviceError,
                       match=r"Expected `mask` to hold data, but got a tensor on the 'meta'"):
        pointing_game(A, MASK.to("meta"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: pointing_game(A, MASK, ties="random"), "`ties` to be one of"),
        (lambda: pointing_game(A, MASK, tolerance=-1.0), "`tolerance` in"),
        (lambda: pointing_game(A, MASK, reduce_channels="median"),
         "`reduce_channels` to be one of"),
        (lambda: relevance_mass_accuracy(A, MASK, relevance="neg"), "`relevance` to be one of"),
        (lambda: normalise_by_max(A, "global"), "`normalise` to be one of"),
    ],
)
def test_bad_options(call, message):
    with pytest.raises(xaiscore.OptionError, match=message):
        call()


def test_check_target():
    target = torch.tensor([0, 2])
    assert _checks.check_target(target, 2, num_classes=3).dtype == torch.long
    with pytest.raises(xaiscore.DTypeError, match="integer class indices"):
        _checks.check_target(target.float(), 2)
    with pytest.raises(xaiscore.ShapeError, match=r"of shape \(3,\)"):
        _checks.check_target(target, 3)
    with pytest.raises(xaiscore.OptionError, match=r"in \[0, 2\).*but got 2"):
        _checks.check_target(target, 2, num_classes=2)


def test_check_inputs_like():
    x = torch.rand(2, 3, 4, 4)
    assert _checks.check_inputs_like(x, torch.rand(2, 1, 4, 4)) is x
    with pytest.raises(xaiscore.ShapeError, match="matching `a`"):
        _checks.check_inputs_like(x[:, :, :3], torch.rand(2, 1, 4, 4))
    with pytest.raises(xaiscore.ShapeError, match="1 channel or the 3"):
        _checks.check_inputs_like(x, torch.rand(2, 2, 4, 4))


def test_reduce_channels_keeps_device_and_dtype():
    a = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    for how in ("sum", "mean", "max_abs"):
        out = reduce_channels(a, how)
        assert out.shape == (2, 1, 4, 4) and out.dtype == torch.float64


def test_sample_normalisation_is_independent_of_batch_mates():
    a = torch.rand(3, 1, 4, 4)
    alone = normalise_by_max(a[:1])
    together = normalise_by_max(torch.cat([a[:1], 100 * a[1:]]))[:1]
    torch.testing.assert_close(alone, together)
    batch = normalise_by_max(torch.cat([a[:1], 100 * a[1:]]), "batch")[:1]
    assert not torch.allclose(alone, batch)
    assert torch.equal(normalise_by_max(torch.zeros(2, 1, 3)), torch.zeros(2, 1, 3))
