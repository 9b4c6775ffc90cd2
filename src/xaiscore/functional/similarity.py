"""Similarity functions between two batches of maps, vectorized on the device.

Every function takes two tensors ``a`` and ``b`` of the same shape ``(B, ...)``
and returns one value per sample, ``(B,)``, on their device and in their
(promoted) floating dtype. They are the comparison step of the randomization
sanity checks (MPRT, sMPRT, Random Logit) and usable on their own.

========================  ==========================================  ==========================
function                  value                                       NaN when
========================  ==========================================  ==========================
``spearman_correlation``  Pearson correlation of average ranks         a sample is constant
``pearson_correlation``   Pearson correlation                          a sample is constant
``cosine_similarity``     cosine of the angle between the samples      a sample is all zero
``mean_squared_error``    mean of the squared differences              never
``ssim``                  structural similarity (Wang et al. 2004)     both samples equal constants
========================  ==========================================  ==========================

Every feature of a sample counts (channels included); flatten or reduce
channels first if you want otherwise. See ``docs/randomization.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from xaiscore._checks import (
    DTypeError,
    OptionError,
    ShapeError,
    check_attributions,
    check_option,
    check_same_device,
    check_tensor,
)
from xaiscore.functional._common import nan_where, unit_rank_vectors

__all__ = [
    "spearman_correlation",
    "pearson_correlation",
    "cosine_similarity",
    "mean_squared_error",
    "ssim",
    "SIMILARITIES",
    "SimilarityFn",
    "resolve_similarity",
]

SimilarityFn = Callable[[Tensor, Tensor], Tensor]
Window = Literal["uniform", "gaussian"]


def _check_pair(a: object, b: object, *, validate: bool) -> tuple[Tensor, Tensor]:
    """Check two floating ``(B, ...)`` tensors of the same shape and device; promote to one dtype.
    """
    a = check_tensor(a, "a")
    b = check_tensor(b, "b")
    for name, t in (("a", a), ("b", b)):
        if not t.is_floating_point():
            raise DTypeError(
                f"Expected `{name}` to be a floating-point tensor, but got dtype {t.dtype}.")
        if t.ndim < 2:
            raise ShapeError(
                f"Expected `{name}` of shape (B, ...) with at least one feature axis, but got "
                f"{t.ndim} dimension(s) with shape {tuple(t.shape)}. Add a batch axis with "
                f"`{name}.unsqueeze(0)`."
            )
        if t.shape[0] == 0 or t.numel() == 0:
            raise ShapeError(
                f"Expected `{name}` to hold at least one sample and one feature, but got shape "
                f"{tuple(t.shape)}.")
    if a.shape != b.shape:
        raise ShapeError(
            f"Expected `b` to have the shape of `a` {tuple(a.shape)}, but got {tuple(b.shape)}.")
    check_same_device(a, b, reference_name="a", other_name="b")
    if validate:
        check_attributions(a.reshape(a.shape[0], 1, -1), name="a", validate=True)
        check_attributions(b.reshape(b.shape[0], 1, -1), name="b", validate=True)
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)


def _flat(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1)


def _is_constant(flat: Tensor) -> Tensor:
    return (flat == flat[:, :1]).all(dim=1)


def _pearson_flat(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of the rows of two ``(B, N)`` tensors; NaN for a constant row."""
    a_centered = a - a.mean(dim=1, keepdim=True)
    b_centered = b - b.mean(dim=1, keepdim=True)
    # Scale each row by its largest magnitude first so that the sums of squares cannot overflow.
    a_scaled = a_centered / a_centered.abs().amax(dim=1, keepdim=True).clamp_min(
        torch.finfo(a.dtype).tiny)
    b_scaled = b_centered / b_centered.abs().amax(dim=1, keepdim=True).clamp_min(
        torch.finfo(b.dtype).tiny)
    numerator = (a_scaled * b_scaled).sum(dim=1)
    denominator = torch.sqrt((a_scaled * a_scaled).sum(dim=1) * (b_scaled * b_scaled).sum(dim=1))
    undefined = _is_constant(a) | _is_constant(b)
    r = numerator / torch.where(undefined, torch.ones_like(denominator), denominator)
    return nan_where(undefined, r.clamp(-1.0, 1.0))


def pearson_correlation(a: Tensor, b: Tensor, *, validate: bool = True) -> Tensor:
    r"""Pearson correlation between the flattened samples of ``a`` and ``b``.

    .. math:: r = \frac{\sum_i (a_i - \bar a)(b_i - \bar b)}
                       {\sqrt{\sum_i (a_i - \bar a)^2 \sum_i (b_i - \bar b)^2}}

    Equal to ``scipy.stats.pearsonr(a[i].ravel(), b[i].ravel())[0]`` per sample.

    Args:
        a, b: ``(B, ...)`` floating tensors of the same shape.
        validate: Check that both are finite (reads the data).

    Returns:
        ``(B,)`` in [-1, 1]; NaN where either sample is constant (zero variance).

    Shape:
        - a, b: ``(B, ...)``; output: ``(B,)``

    Example:
        >>> a = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
        >>> b = torch.tensor([[2.0, 4.0, 7.0], [0.0, 1.0, 2.0]])
        >>> [round(v, 4) for v in pearson_correlation(a, b).tolist()[:1]], pearson_correlation(a, b)[1].isnan().item()
        ([0.9934], True)
    """  # noqa: E501
    a, b = _check_pair(a, b, validate=validate)
    return _pearson_flat(_flat(a), _flat(b))


def spearman_correlation(a: Tensor, b: Tensor, *, validate: bool = True) -> Tensor:
    r"""Spearman rank correlation between the flattened samples of ``a`` and ``b``.

    The Pearson correlation of the ranks, tied values sharing their average rank
    (as ``scipy.stats.spearmanr``). Ranks are computed exactly (as doubled
    integers), so ties are recognised exactly.

    Args:
        a, b: ``(B, ...)`` floating tensors of the same shape.
        validate: Check that both are finite (reads the data).

    Returns:
        ``(B,)`` in [-1, 1]; NaN where either sample is constant.

    Shape:
        - a, b: ``(B, ...)``; output: ``(B,)``

    Example:
        >>> a = torch.tensor([[1.0, 5.0, 2.0, 2.0]])
        >>> spearman_correlation(a, a ** 3).tolist(), spearman_correlation(a, -a).tolist()
        ([1.0], [-1.0])
    """
    a, b = _check_pair(a, b, validate=validate)
    # Pearson of the average ranks, from exact centred integer ranks in float64; NaN for a
    # constant sample or one holding NaN (reachable with validate=False).
    return spearman_of_unit_ranks(unit_rank_vectors(_flat(a)),
                                  unit_rank_vectors(_flat(b))).to(a.dtype)


def spearman_of_unit_ranks(u: Tensor, v: Tensor) -> Tensor:
    """Spearman's correlation from two rows of
    :func:`~xaiscore.functional._common.unit_rank_vectors`: ``(B,)`` float64."""
    return torch.linalg.vecdot(u, v).clamp(-1.0, 1.0)


def cosine_similarity(a: Tensor, b: Tensor, *, validate: bool = True) -> Tensor:
    r"""Cosine similarity between the flattened samples of ``a`` and ``b``.

    .. math:: \cos(a, b) = \frac{\sum_i a_i b_i}{\lVert a \rVert_2 \lVert b \rVert_2}

    Quantus' ``cosine`` returns the cosine *distance* ``1 - cos``; this is the
    similarity.

    Returns:
        ``(B,)`` in [-1, 1]; NaN where either sample is all zero.

    Shape:
        - a, b: ``(B, ...)``; output: ``(B,)``

    Example:
        >>> cosine_similarity(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.0, 2.0], [3.0, 3.0]])).tolist()
        [0.0, 1.0]
    """  # noqa: E501
    a, b = _check_pair(a, b, validate=validate)
    a_flat, b_flat = _flat(a), _flat(b)
    a_scaled = a_flat / a_flat.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny)
    b_scaled = b_flat / b_flat.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(b.dtype).tiny)
    norms = torch.sqrt((a_scaled * a_scaled).sum(1) * (b_scaled * b_scaled).sum(1))
    undefined = (a_flat == 0).all(1) | (b_flat == 0).all(1)
    value = (a_scaled * b_scaled).sum(1) / torch.where(undefined, torch.ones_like(norms), norms)
    return nan_where(undefined, value.clamp(-1.0, 1.0))


def mean_squared_error(a: Tensor, b: Tensor, *, validate: bool = True) -> Tensor:
    r"""Mean squared difference between the samples of ``a`` and ``b``.

    .. math:: \mathrm{MSE}(a, b) = \frac{1}{N} \sum_i (a_i - b_i)^2

    A distance, not a similarity: 0 for equal maps, larger is more different.
    Quantus' ``squared_difference`` is the sum, not the mean.

    Shape:
        - a, b: ``(B, ...)``; output: ``(B,)``

    Example:
        >>> mean_squared_error(torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 1.0]])).tolist()
        [1.0]
    """
    a, b = _check_pair(a, b, validate=validate)
    return ((_flat(a) - _flat(b)) ** 2).mean(dim=1)


# --- SSIM ------------------------------------------------------------------------------------


def _reflect_index(size: int, pad: int, device: torch.device) -> Tensor:
    """Indices of a length-``size`` axis padded by ``pad`` on both sides, scipy.ndimage ``reflect``
    rule.

    ``reflect`` mirrors about the edge including the edge sample (``d c b a | a b c d | d c b a``),
    repeating with period ``2 * size`` for pads longer than the axis.
    """
    positions = torch.arange(-pad, size + pad, device=device) % (2 * size)
    return torch.where(positions >= size, 2 * size - 1 - positions, positions)


def _filter_axis(t: Tensor, weights: list[float], dim: int, *, pad: bool) -> Tensor:
    """Correlate ``t`` with the odd-length 1-D ``weights`` along ``dim``.

    With ``pad``, the axis is first extended by ``reflect`` padding (the output keeps its
    length); without, only the positions whose window lies inside the axis are computed (the
    output is ``len(weights) - 1`` shorter, the same values as the interior of the padded one).
    A weighted sum of shifted views, one per window tap (a loop over at most a few dozen offsets):
    on CPUs this is several times faster than a one-channel convolution.
    """
    radius = (len(weights) - 1) // 2
    size = t.shape[dim]
    if pad:
        t = t.index_select(dim, _reflect_index(size, radius, t.device))
    else:
        size -= 2 * radius
    out = t.narrow(dim, 0, size) * weights[0]
    for offset in range(1, len(weights)):
        out.add_(t.narrow(dim, offset, size), alpha=weights[offset])
    return out


def _window_weights(window: str, win_size: int, sigma: float) -> list[float]:
    if window == "uniform":
        return [1.0 / win_size] * win_size
    radius = int(3.5 * sigma + 0.5)  # scipy.ndimage's radius for skimage's truncate=3.5
    weights = [math.exp(-0.5 * offset**2 / sigma**2) for offset in range(-radius, radius + 1)]
    total = math.fsum(weights)
    return [w / total for w in weights]


def _ssim_maps(a: Tensor, b: Tensor, *, spatial_dims: int, weights: list[float], win_size: int,
               data_range: Tensor, k1: float, k2: float, use_sample_covariance: bool) -> Tensor:
    """Mean SSIM over the cropped interior of the last ``spatial_dims`` axes, per leading index."""
    axes = list(range(a.ndim - spatial_dims, a.ndim))
    pad = (win_size - 1) // 2
    # Only positions at least ``pad`` from every border are averaged: when the filter is no wider
    # than that, their windows never reach the padding, so the filters skip it (and the border).
    radius = (len(weights) - 1) // 2
    use_padding = radius > pad

    def smooth(t: Tensor) -> Tensor:
        for axis in axes:
            t = _filter_axis(t, weights, axis, pad=use_padding)
        return t

    n_window = win_size**spatial_dims
    cov_norm = n_window / (n_window - 1) if use_sample_covariance else 1.0
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    # In place on the filtered maps (fresh full-size temporaries cost more in page faults than
    # the arithmetic on them). With m = local means and E = local means of products:
    #   numerator   = (2 m_a m_b + C1) (2 cov_norm (E_ab - m_a m_b) + C2)
    #   denominator = (m_a^2 + m_b^2 + C1) (cov_norm ((E_aa - m_a^2) + (E_bb - m_b^2)) + C2)
    # (Co)variances are shift invariant: computing them on maps centred by their mean keeps
    # E[x^2] - E[x]^2 from cancelling catastrophically on near-constant maps; the means are
    # shifted back for the luminance term.
    shift_a, shift_b = a.mean(dim=axes, keepdim=True), b.mean(dim=axes, keepdim=True)
    a, b = a - shift_a, b - shift_b
    e_aa, e_bb, e_ab = smooth(a * a), smooth(b * b), smooth(a * b)
    mean_a, mean_b = smooth(a), smooth(b)
    centred_ab = mean_a * mean_b
    mean_aa_centred, mean_bb_centred = mean_a.square(), mean_b.square()
    # sum of variances + C2
    e_aa.sub_(mean_aa_centred).add_(e_bb.sub_(mean_bb_centred)).mul_(cov_norm).add_(c2)
    e_ab.sub_(centred_ab).mul_(2 * cov_norm).add_(c2)  # 2 cov + C2
    del centred_ab, mean_aa_centred, mean_bb_centred
    mean_a.add_(shift_a)
    mean_b.add_(shift_b)
    mean_aa = mean_a.square()
    mean_bb = mean_b.square()
    mean_ab = mean_a.mul_(mean_b)
    del mean_a
    numerator = mean_ab.mul_(2).add_(c1).mul_(e_ab)
    denominator = mean_aa.add_(mean_bb).add_(c1).mul_(e_aa)
    s = numerator.div_(denominator)
    trim = pad if use_padding else pad - radius
    for axis in axes:
        s = s.narrow(axis, trim, s.shape[axis] - 2 * trim)
    return s.reshape(s.shape[: a.ndim - spatial_dims] + (-1,)).mean(dim=-1)


def ssim(
    a: Tensor,
    b: Tensor,
    *,
    window: Window = "uniform",
    win_size: int | None = None,
    sigma: float = 1.5,
    data_range: float | Tensor | None = None,
    k1: float = 0.01,
    k2: float = 0.03,
    use_sample_covariance: bool = True,
    flatten: bool = False,
    validate: bool = True,
) -> Tensor:
    r"""Structural similarity (Wang et al. 2004), as ``skimage.metrics.structural_similarity``.

    Local means :math:`\mu`, variances :math:`\sigma^2` and covariance
    :math:`\sigma_{ab}` are taken in a sliding window, and

    .. math:: \mathrm{SSIM} = \frac{(2\mu_a\mu_b + C_1)(2\sigma_{ab} + C_2)}
                                   {(\mu_a^2 + \mu_b^2 + C_1)(\sigma_a^2 + \sigma_b^2 + C_2)},
              \quad C_1 = (K_1 R)^2,\; C_2 = (K_2 R)^2

    is averaged over the positions at least ``(win_size - 1) / 2`` away from the
    border (the image is extended by reflection for the filtering), exactly as
    scikit-image does.

    Two modes:
        * ``flatten=False`` (default): ``a`` and ``b`` are ``(B, C, *S)`` maps
          with 1 to 3 spatial axes; the window slides over the spatial axes,
          one SSIM per channel, averaged over channels (scikit-image with
          ``channel_axis=0``).
        * ``flatten=True``: each sample is flattened to a 1-D signal of all its
          values and compared with a 1-D window, as Quantus' ``ssim`` does
          (``(B, ...)`` input of any shape).

    Args:
        a, b: The maps, same shape.
        window: ``"uniform"`` (scikit-image's default) or ``"gaussian"``
            (``gaussian_weights=True``: weights with standard deviation
            ``sigma``, truncated at 3.5 sigma).
        win_size: Odd side length of the window; default 7 for ``"uniform"``
            and ``2 * int(3.5 * sigma + 0.5) + 1`` (11) for ``"gaussian"``, as
            scikit-image. Every spatial axis must be at least this long.
        sigma: Standard deviation of the Gaussian window.
        data_range: ``R``, the dynamic range of the values: a number, a
            ``(B,)`` tensor, or ``None`` for each sample's own range
            ``max(a_i, b_i) - min(a_i, b_i)`` (Quantus' choice; scikit-image
            has no default for floating-point images).
        k1, k2: The constants :math:`K_1, K_2` (scikit-image's defaults).
        use_sample_covariance: Normalise (co)variances by ``n - 1`` rather
            than ``n`` (scikit-image's default); ``n = win_size ** d``.
        flatten: See above.
        validate: Check that both are finite (reads the data).

    Returns:
        ``(B,)`` in [-1, 1]; NaN where the data range is 0 (both samples
        are the same constant), like scikit-image.

    Raises:
        OptionError: even ``win_size``, or an axis shorter than it.

    Shape:
        - a, b: ``(B, C, *S)`` (or ``(B, ...)`` with ``flatten=True``); output: ``(B,)``

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a = torch.rand(2, 1, 8, 8, generator=g, dtype=torch.float64)
        >>> ssim(a, a).tolist()
        [1.0, 1.0]
        >>> bool(ssim(a, a.flip(-1))[0] < 1), ssim(a, a, flatten=True).tolist()
        (True, [1.0, 1.0])
    """
    check_option(window, "window", ("uniform", "gaussian"))
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise OptionError(f"Expected `sigma` to be a positive number, but got {sigma!r}.")
    a_maps, b_maps = _ssim_inputs(a, b, flatten=flatten, validate=validate)
    spatial_dims = a_maps.ndim - 2
    win_size = _ssim_window_size(win_size, window, sigma, use_sample_covariance)
    spatial = tuple(a_maps.shape[2:])
    if min(spatial) < win_size:
        what = "flattened length" if flatten else "spatial shape"
        raise OptionError(
            f"Expected every spatial axis to be at least `win_size` = {win_size} long, but got the "
            f"{what} {spatial}. Pass a smaller odd `win_size`, or `flatten=True` to compare "
            "flattened maps."
        )
    a_flat, b_flat = _flat(a_maps), _flat(b_maps)
    span = torch.maximum(a_flat.amax(dim=1), b_flat.amax(dim=1)) - torch.minimum(a_flat.amin(dim=1),
                                                                                 b_flat.amin(dim=1))
    data_range_t = _ssim_data_range(data_range, span, a_maps)
    weights = _window_weights(window, win_size, float(sigma))
    per_channel = _ssim_maps(a_maps, b_maps, spatial_dims=spatial_dims, weights=weights,
                             win_size=win_size,
                             data_range=data_range_t, k1=k1, k2=k2,
                             use_sample_covariance=use_sample_covariance)  # (B, C)
    # Equal constants with a zero data range are 0/0 in every window (scikit-image gives NaN too);
    # rounding in the filters must not turn that into a number.
    return nan_where((span == 0) & (data_range_t.reshape(-1) == 0), per_channel.mean(dim=1))


def _ssim_inputs(a: Tensor, b: Tensor, *, flatten: bool, validate: bool) -> tuple[Tensor, Tensor]:
    """The checked pair as ``(B, C, *S)`` maps of one dtype (``(B, 1, N)`` with ``flatten``)."""
    if flatten:
        a, b = _check_pair(a, b, validate=validate)
        return _flat(a).unsqueeze(1), _flat(b).unsqueeze(1)
    a = check_attributions(a, validate=validate)
    b = check_attributions(b, name="b", validate=validate)
    if a.shape != b.shape:
        raise ShapeError(
            f"Expected `b` to have the shape of `a` {tuple(a.shape)}, but got {tuple(b.shape)}.")
    check_same_device(a, b, reference_name="a", other_name="b")
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)


def _ssim_window_size(win_size: int | None, window: str, sigma: float,
                      use_sample_covariance: bool) -> int:
    """The checked odd window size (scikit-image's default for ``window`` when ``None``)."""
    if win_size is None:
        win_size = 7 if window == "uniform" else 2 * int(3.5 * sigma + 0.5) + 1
    if (isinstance(win_size, bool) or not isinstance(win_size, int) or win_size < 1
        or win_size % 2 == 0):
        raise OptionError(f"Expected `win_size` to be an odd positive int, but got {win_size!r}.")
    if use_sample_covariance and win_size == 1:
        raise OptionError(
            "Expected `win_size` >= 3 with `use_sample_covariance=True` (a one-value window has no "
            "sample covariance), but got 1.")
    return win_size


def _ssim_data_range(data_range: float | Tensor | None, span: Tensor, a_maps: Tensor) -> Tensor:
    """``data_range`` as a per-sample tensor shaped to broadcast over ``a_maps``
    (the span if ``None``)."""
    dtype, device = a_maps.dtype, a_maps.device
    batch = a_maps.shape[0]
    if data_range is None:
        data_range_t = span
    elif isinstance(data_range, Tensor):
        data_range_t = data_range.to(dtype=dtype, device=device).reshape(-1).expand(batch)
    elif isinstance(data_range, (int, float)) and not isinstance(data_range, bool):
        if not math.isfinite(data_range) or data_range < 0:
            raise OptionError(
                f"Expected `data_range` to be a finite number >= 0, but got {data_range!r}.")
        data_range_t = torch.full((batch,), float(data_range), dtype=dtype, device=device)
    else:
        raise DTypeError(f"Expected `data_range` to be a number, a (B,) tensor or None, but got "
                         f"{type(data_range).__name__}.")
    return data_range_t.reshape((batch,) + (1,) * (a_maps.ndim - 1))


#: Similarity functions by name, as accepted by the randomization metrics' ``similarity`` option.
SIMILARITIES: dict[str, SimilarityFn] = {
    "spearman": spearman_correlation,
    "pearson": pearson_correlation,
    "cosine": cosine_similarity,
    "ssim": ssim,
    "ssim_flat": lambda a, b, **kwargs: ssim(a, b, flatten=True, **kwargs),
    "mse": mean_squared_error,
}


def resolve_similarity(similarity: str | SimilarityFn, name: str = "similarity") -> SimilarityFn:
    """Return the function named ``similarity`` in :data:`SIMILARITIES`, or ``similarity`` if
    callable."""
    if callable(similarity):
        return similarity
    check_option(similarity, name, tuple(SIMILARITIES))
    return SIMILARITIES[similarity]
