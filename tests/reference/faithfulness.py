"""Slow, per-sample reference implementations of the ranking-based faithfulness metrics.

Written from the papers with numpy loops and one model call per perturbed
image; no code is shared with ``xaiscore._engine.perturbation`` or the kernels. Each
function takes the model (a callable on a torch batch), one sample ``x``
(``(C, *S)`` numpy float64), its attribution ``a`` (``(1|C, *S)``) and the
target class, and returns the score (and curve where the metric has one).

Conventions the kernels document and these references follow:

* Features are positions (all channels together; the attribution of a
  position is its channel reduction) or, with ``how=None``, single elements
  (a one-channel ``a`` is repeated over the channels of ``x``).
* Ties in attribution go to the lower feature index first (MoRF and LeRF).
* Patches: each axis is padded to a multiple of the patch size, the smaller
  half of the padding before the image; cells numbered row-major.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import scipy.ndimage
import scipy.stats
import torch

from tests.reference.localization import reduce_map

# --- model, features, orders ---------------------------------------------------------------


def model_score(model, image: np.ndarray, target: int, softmax: bool) -> float:
    """The target score of one image (a fresh model call)."""
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(image)[None]))[0].double().numpy()
    if softmax:
        shifted = np.exp(logits - logits.max())
        return float(shifted[target] / shifted.sum())
    return float(logits[target])


def pixel_features(x: np.ndarray, a: np.ndarray, how: str | None):
    """``(members, values)``: the element index tuples of each feature and its attribution."""
    channels, spatial = x.shape[0], x.shape[1:]
    members, values = [], []
    if how is None:
        full = np.broadcast_to(a, x.shape)
        for index in itertools.product(range(channels), *[range(n) for n in spatial]):
            members.append([index])
            values.append(float(full[index]))
        return members, np.array(values)
    reduced = reduce_map(a, how)[0]
    for position in itertools.product(*[range(n) for n in spatial]):
        members.append([(c,) + position for c in range(channels)])
        values.append(float(reduced[position]))
    return members, np.array(values)


def grid_labels(spatial: tuple[int, ...], patch: int) -> np.ndarray:
    """Cell label of each position for a centred grid of ``patch``-sided cells."""
    cells_per_axis, before = [], []
    for n in spatial:
        pad = (patch - n % patch) % patch
        before.append(pad // 2)
        cells_per_axis.append((n + pad) // patch)
    labels = np.zeros(spatial, dtype=np.int64)
    for position in itertools.product(*[range(n) for n in spatial]):
        cell = tuple((p + b) // patch for p, b in zip(position, before))
        labels[position] = np.ravel_multi_index(cell, cells_per_axis)
    return labels


def segment_features(x: np.ndarray, a: np.ndarray, labels: np.ndarray, how: str, aggregate: str):
    """Features = distinct labels in increasing order; value = sum or mean of the reduced map over
    the segment."""
    reduced = reduce_map(a, how if how is not None else "sum")[0]
    members, values = [], []
    for label in np.unique(labels):
        positions = [tuple(p) for p in np.argwhere(labels == label)]
        members.append([(c,) + p for p in positions for c in range(x.shape[0])])
        chosen = np.array([reduced[p] for p in positions])
        values.append(float(chosen.sum() if aggregate == "sum" else chosen.mean()))
    return members, np.array(values)


def ordering(values: np.ndarray, order: str, permutation=None) -> list[int]:
    """Feature indices in perturbation order; ties to the lower index."""
    if order == "random":
        return list(permutation)
    if order == "morf":
        return sorted(range(len(values)), key=lambda f: (-values[f], f))
    return sorted(range(len(values)), key=lambda f: (values[f], f))


def substrate(x: np.ndarray, baseline, noise=None) -> np.ndarray:
    """The replacement values for one sample (``noise``: a given uniform [0, 1) array for
    "uniform")."""
    if isinstance(baseline, (int, float)):
        return np.full(x.shape, float(baseline))
    if baseline == "zeros":
        return np.zeros(x.shape)
    if baseline == "min":
        return np.full(x.shape, x.min())
    if baseline == "mean":
        return np.stack([np.full(x.shape[1:], x[c].mean()) for c in range(x.shape[0])])
    if baseline == "uniform":
        return x.min() + noise * (x.max() - x.min())
    if baseline == "blur":
        return rise_blur(x)
    raise ValueError(baseline)


def rise_blur(x: np.ndarray, klen: int = 11, sigma: float = 5.0) -> np.ndarray:
    """RISE's ``gkern`` (a Gaussian-filtered unit impulse) applied per channel with zero padding."""
    impulse = np.zeros((klen,) * (x.ndim - 1))
    impulse[(klen // 2,) * (x.ndim - 1)] = 1.0
    kernel = scipy.ndimage.gaussian_filter(impulse, sigma)
    return np.stack([scipy.ndimage.correlate(x[c], kernel, mode="constant", cval=0.0)
                     for c in range(x.shape[0])])


def replaced(x: np.ndarray, fill: np.ndarray, members, features) -> np.ndarray:
    out = x.copy()
    for f in features:
        for index in members[f]:
            out[index] = fill[index]
    return out


def trapezoid(curve, positions) -> float:
    return float(np.trapezoid(np.asarray(curve, dtype=np.float64),
                              np.asarray(positions, dtype=np.float64)))


# --- ranking curves --------------------------------------------------------------------------


def deletion(model, x, a, target, *, per_step, baseline="zeros", softmax=True, how="sum",
             order="morf",
             permutation=None, noise=None):
    """Petsiuk et al.: cumulative deletion, curve from the intact image to all deleted; AUC on
    [0, 1]."""
    members, values = pixel_features(x, a, how)
    ranked = ordering(values, order, permutation)
    fill = substrate(x, baseline, noise)
    n = len(ranked)
    counts = list(range(0, n, per_step)) + [n]
    curve = [model_score(model, replaced(x, fill, members, ranked[:k]), target, softmax)
             for k in counts]
    positions = [k / n for k in counts]
    return trapezoid(curve, positions), curve, positions


def insertion(model, x, a, target, *, per_step, baseline="blur", softmax=True, how="sum"):
    """Petsiuk et al.: start from the substrate, put back the most relevant pixels first; AUC on
    [0, 1]."""
    members, values = pixel_features(x, a, how)
    ranked = ordering(values, "morf")
    start = substrate(x, baseline)
    n = len(ranked)
    counts = list(range(0, n, per_step)) + [n]
    curve = [model_score(model, replaced(start, x, members, ranked[:k]), target, softmax)
             for k in counts]
    positions = [k / n for k in counts]
    return trapezoid(curve, positions), curve, positions


def region_perturbation(model, x, a, target, *, patch, steps, order="morf", baseline="zeros",
                        softmax=False,
                        how="sum", permutation=None, noise=None):
    """Samek et al.: drop of the score after perturbing 0..L patches; AOPC = mean over the L + 1
    points."""
    labels = grid_labels(x.shape[1:], patch)
    members, values = segment_features(x, a, labels, how, "sum")
    ranked = ordering(values, order, permutation)
    fill = substrate(x, baseline, noise)
    original = model_score(model, x, target, softmax)
    length = min(steps, len(ranked))
    curve = [original - model_score(model, replaced(x, fill, members, ranked[:k]), target, softmax)
             for k in range(length + 1)]
    return float(np.mean(curve)), curve


def selectivity(model, x, a, target, *, patch, baseline="zeros", softmax=False, how="sum"):
    """Montavon et al.: remove all patches most relevant first; AUC over the removed fraction."""
    labels = grid_labels(x.shape[1:], patch)
    members, values = segment_features(x, a, labels, how, "sum")
    ranked = ordering(values, "morf")
    fill = substrate(x, baseline)
    p = len(ranked)
    curve = [model_score(model, replaced(x, fill, members, ranked[:k]), target, softmax)
             for k in range(p + 1)]
    return trapezoid(curve, [k / p for k in range(p + 1)]), curve


def irof(model, x, a, target, *, labels, baseline="mean", softmax=True, how="sum"):
    """Rieger and Hansen: remove segments by mean relevance; 1 - AUC of the relative score over
    [0, 1]."""
    members, values = segment_features(x, a, labels, how, "mean")
    ranked = ordering(values, "morf")
    fill = substrate(x, baseline)
    original = model_score(model, x, target, softmax)
    if original == 0:
        return math.nan, None
    n = len(ranked)
    curve = [model_score(model, replaced(x, fill, members, ranked[:k]), target, softmax) / original
             for k in range(n + 1)]
    return 1.0 - trapezoid(curve, [k / n for k in range(n + 1)]), curve


# --- feature-removal scores ----------------------------------------------------------------


def _pearson(u, v) -> float:
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if len(u) < 2 or np.ptp(u) == 0 or np.ptp(v) == 0:
        return math.nan
    return float(np.corrcoef(u, v)[0, 1])


def faithfulness_estimate(model, x, a, target, *, per_step, baseline="zeros", softmax=False,
                          how="sum"):
    """Alvarez-Melis and Jaakkola: Pearson of group attribution sums vs. the score drop of removing
    the group."""
    members, values = pixel_features(x, a, how)
    ranked = ordering(values, "morf")
    fill = substrate(x, baseline)
    original = model_score(model, x, target, softmax)
    sums, drops = [], []
    for start in range(0, len(ranked), per_step):
        group = ranked[start:start + per_step]
        sums.append(sum(values[f] for f in group))
        drops.append(original - model_score(model, replaced(x, fill, members, group), target,
                                            softmax))
    return _pearson(sums, drops)


def monotonicity(model, x, a, target, *, per_step, baseline="zeros", softmax=True, how="sum"):
    """Arya et al. (AIX360): insert features by increasing attribution into the baseline; 1 if never
    decreasing.

    A step whose image equals the previous one counts as non-decreasing.
    """
    members, values = pixel_features(x, a, how)
    ranked = ordering(values, "lerf")
    image = substrate(x, baseline)
    previous_image, previous_score, ok = None, None, True
    for start in range(0, len(ranked), per_step):
        image = replaced(image, x, members, ranked[start:start + per_step])
        score = model_score(model, image, target, softmax)
        if (previous_score is not None and not np.array_equal(image, previous_image)
            and score < previous_score):
            ok = False
        previous_image, previous_score = image.copy(), score
    return float(ok)


def monotonicity_correlation(model, x, a, target, *, per_step, n_samples, baseline="uniform",
                             noise=None,
                             absolute=True, softmax=True, how="sum"):
    """Nguyen and Martinez: Spearman of |a| group sums vs. the mean squared score change under
    noise.

    ``noise(r)`` gives the uniform [0, 1) array of draw ``r`` for this sample (shape of ``x``).
    """
    members, values = pixel_features(x, np.abs(a) if absolute else a, how)
    ranked = ordering(values, "lerf")
    original = model_score(model, x, target, softmax)
    sums, variances = [], []
    for start in range(0, len(ranked), per_step):
        group = ranked[start:start + per_step]
        sums.append(sum(values[f] for f in group))
        changes = []
        for r in range(n_samples):
            fill = substrate(x, baseline, None if noise is None else noise(r))
            changes.append((original - model_score(model, replaced(x, fill, members, group), target,
                                                   softmax)) ** 2)
        variances.append(np.mean(changes))
    if len(sums) < 2 or np.ptp(sums) == 0 or np.ptp(variances) == 0:
        return math.nan
    return float(scipy.stats.spearmanr(sums, variances)[0])
