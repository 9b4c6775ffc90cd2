"""Slow, per-sample references for ROAD, infidelity, sufficiency, faithfulness correlation,
sensitivity-n and the axiomatic checks (completeness, non-sensitivity).

Written from the papers with numpy/scipy loops and one model call per perturbed
image; no code is shared with the kernels or ``xaiscore._engine.perturbation``. Random
draws (noise, subsets, patches) are passed in by the tests, which regenerate
them with the kernels' documented draw functions, so kernel and reference see
the same randomness.

Conventions the kernels document and these references follow:

* A sample is ``x`` ``(C, *S)`` numpy float64 with attribution ``a``
  ``(1|C, *S)`` and an int target; the model is a callable on a torch batch.
* Pixel features are positions with all their channels; their attribution is
  the channel reduction of ``a``. With ``how=None`` every channel value is a
  feature and a one-channel ``a`` is repeated over the channels of ``x``.
* MoRF ranks by decreasing attribution, LeRF by increasing, ties to the lower
  feature index (a stable sort).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import scipy.spatial.distance
import torch

from tests.reference.faithfulness import pixel_features as features
from tests.reference.localization import reduce_map

# --- model ----------------------------------------------------------------------------------------


def logits_of(model, image: np.ndarray) -> np.ndarray:
    """Logits of one image ``(C, *S)`` (a fresh model call), float64."""
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(image)[None]))[0].double().numpy()


def score_of(logits: np.ndarray, target: int, softmax: bool) -> float:
    if softmax:
        shifted = np.exp(logits - logits.max())
        return float(shifted[target] / shifted.sum())
    return float(logits[target])


def baseline_image(x: np.ndarray, baseline) -> np.ndarray:
    """The substrate of one sample: ``"zeros"``, ``"min"`` (its minimum), ``"mean"`` (per channel)
    or a number."""
    if baseline == "zeros":
        return np.zeros_like(x)
    if baseline == "min":
        return np.full_like(x, x.min())
    if baseline == "mean":
        return np.broadcast_to(x.reshape(x.shape[0], -1).mean(1).reshape((-1,) + (1,) * (
            x.ndim - 1)), x.shape).copy()
    return np.full_like(x, float(baseline))


# --- ROAD -----------------------------------------------------------------------------------------


def road_weights(spatial_dims: int) -> dict[tuple[int, ...], float]:
    """Rong et al.: 1/6 for direct and 1/12 for diagonal neighbours (1-D: 1/2 each).

    3-D, the 26-neighbourhood built the same way (the ``[1, 2, 1]`` tensor product without the
    centre, normalised): 1/14 per face, 1/28 per edge, 1/56 per corner neighbour.
    """
    if spatial_dims == 1:
        return {(-1,): 0.5, (1,): 0.5}
    if spatial_dims == 3:
        weights = {}
        for dz in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    moved = abs(dz) + abs(dy) + abs(dx)
                    if moved:
                        weights[(dz, dy, dx)] = {1: 1 / 14, 2: 1 / 28, 3: 1 / 56}[moved]
        return weights
    return {(dy, dx): (1 / 12 if dy and dx else 1 / 6) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
            if (dy, dx) != (0, 0)}


def linear_imputation(x: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """ROAD's linear imputation of one image ``(C, *S)`` at the ``removed`` positions ``S`` with
    ``spsolve``.

    One equation per removed pixel: (sum of in-image neighbour weights) * u_i
    - sum over removed in-image neighbours w * u_j = sum over kept in-image
    neighbours w * x_j. Every pixel removed: the imputation is 0.
    """
    spatial = x.shape[1:]
    positions = [tuple(int(v) for v in p) for p in np.argwhere(removed)]
    out = x.copy()
    if not positions:
        return out
    if len(positions) == int(np.prod(spatial)):
        for p in positions:
            out[(slice(None),) + p] = 0.0
        return out
    variable = {p: k for k, p in enumerate(positions)}
    matrix = scipy.sparse.lil_matrix((len(positions), len(positions)))
    rhs = np.zeros((len(positions), x.shape[0]))
    for k, p in enumerate(positions):
        total = 0.0
        for offset, weight in road_weights(len(spatial)).items():
            q = tuple(pi + oi for pi, oi in zip(p, offset))
            if not all(0 <= qi < si for qi, si in zip(q, spatial)):
                continue
            total += weight
            if removed[q]:
                matrix[k, variable[q]] -= weight
            else:
                rhs[k] += weight * x[(slice(None),) + q]
        matrix[k, k] += total
    solution = scipy.sparse.linalg.spsolve(scipy.sparse.csc_matrix(matrix),
                                           rhs).reshape(len(positions), -1)
    for k, p in enumerate(positions):
        out[(slice(None),) + p] = solution[k]
    return out


def road(model, x, a, target, *, percentages, order, noise_draws, noise, measure, how="sum"):
    """ROAD curve of one sample: ``noise_draws`` ``(T, C, *S)`` standard normal draws per
    percentage."""
    spatial = x.shape[1:]
    values = reduce_map(a, how)[0].ravel()
    n = values.size
    ranking = np.argsort(-values if order == "morf" else values, kind="stable")
    curve = []
    for t, p in enumerate(percentages):
        k = int(n * p / 100)
        removed = np.zeros(n, dtype=bool)
        removed[ranking[:k]] = True
        removed = removed.reshape(spatial)
        image = linear_imputation(x, removed)
        image = image + noise * noise_draws[t] * removed[None]
        logits = logits_of(model, image)
        if measure == "accuracy":
            curve.append(float(np.argmax(logits) == target))
        else:
            curve.append(score_of(logits, target, measure == "probability"))
    return float(np.mean(curve)), np.array(curve)


# --- infidelity (Yeh et al. 2019) -----------------------------------------------------------------


def infidelity(model, x, a, target, *, perturbed_images, baseline_image_, normalize,
               multiply_by_inputs, softmax):
    """Infidelity of one sample from its perturbed images ``x_j`` (``I_j = x - x_j``), straight from
    the formula."""
    full_a = np.broadcast_to(a, x.shape)
    f_x = score_of(logits_of(model, x), target, softmax)
    projections, deltas = [], []
    for image in perturbed_images:
        change = x - image
        if multiply_by_inputs:
            scale = x - baseline_image_
            change = np.where(scale != 0, change / np.where(scale != 0, scale, 1.0), change)
        projections.append(float((change * full_a).sum()))
        deltas.append(f_x - score_of(logits_of(model, image), target, softmax))
    s, d = np.array(projections), np.array(deltas)
    beta = 1.0
    if normalize:
        beta = float((s * d).sum() / (s * s).sum()) if (s * s).sum() != 0 else 0.0
    return float(np.mean((beta * s - d) ** 2))


# --- random-subset correlations (Bhatt et al. 2020; Ancona et al. 2018) ---------------------------


def pearson(u, v) -> float:
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if len(u) < 2 or np.all(u == u[0]) or np.all(v == v[0]):
        return math.nan
    du, dv = u - u.mean(), v - v.mean()
    denominator = math.sqrt((du * du).sum() * (dv * dv).sum())
    return float(np.clip((du * dv).sum() / denominator, -1, 1)) if denominator > 0 else math.nan


def subset_drops(model, x, a, target, subsets, *, baseline, how, softmax):
    """``(attribution sums, output drops)`` over the given feature subsets
    (lists of feature indices)."""
    members, values = features(x, a, how)
    substrate = baseline_image(x, baseline)
    f_x = score_of(logits_of(model, x), target, softmax)
    sums, drops = [], []
    for subset in subsets:
        image = x.copy()
        for feature in subset:
            for element in members[feature]:
                image[element] = substrate[element]
        sums.append(float(sum(values[f] for f in subset)))
        drops.append(f_x - score_of(logits_of(model, image), target, softmax))
    return sums, drops


def faithfulness_correlation(model, x, a, target, *, subsets, baseline, how, softmax):
    return pearson(*subset_drops(model, x, a, target, subsets, baseline=baseline, how=how,
                                 softmax=softmax))


def sensitivity_n(model, x, a, target, *, subsets_per_size, baseline, how, softmax):
    """Curve over sizes: ``subsets_per_size[t]`` are the subsets of the ``t``-th size."""
    curve = np.array([
        pearson(*subset_drops(model, x, a, target, subsets, baseline=baseline, how=how,
                              softmax=softmax))
        for subsets in subsets_per_size
    ])
    score = float(np.nanmean(curve)) if not np.all(np.isnan(curve)) else math.nan
    return score, curve


# --- completeness (Sundararajan et al. 2017) and non-sensitivity (Nguyen and Martinez 2020) -------


def completeness(model, x, a, target, *, baseline, rtol, atol, softmax) -> float:
    difference = score_of(logits_of(model, x), target, softmax) - score_of(
        logits_of(model, baseline_image(x, baseline)), target, softmax)
    return float(abs(float(a.sum()) - difference) <= atol + rtol * abs(difference))


def patch_labels(spatial: tuple[int, ...], patch: int) -> np.ndarray:
    """Cell of every position on a grid of ``patch``-sided cells, each axis padded evenly
    (smaller half first)."""
    before, cells = [], []
    for n in spatial:
        pad = (patch - n % patch) % patch
        before.append(pad // 2)
        cells.append((n + pad) // patch)
    labels = np.zeros(spatial, dtype=np.int64)
    for position in itertools.product(*[range(n) for n in spatial]):
        labels[position] = np.ravel_multi_index(tuple((p + b) // patch
                                                      for p, b in zip(position, before)), cells)
    return labels


def attribution_magnitudes(x, a, *, how, patch):
    """``(members, magnitudes)``: features (element index lists) and the reduction of ``|a|`` summed
    over each."""
    if patch is None:
        members, values = features(x, np.abs(a), how)
        return members, values
    reduced = reduce_map(np.abs(a), how if how is not None else "sum")[0]
    labels = patch_labels(x.shape[1:], patch)
    members, values = [], []
    for cell in range(int(labels.max()) + 1):
        positions = [tuple(p) for p in np.argwhere(labels == cell)]
        members.append([(c,) + p for p in positions for c in range(x.shape[0])])
        values.append(float(sum(reduced[p] for p in positions)))
    return members, np.array(values)


def non_sensitivity(model, x, a, target, *, eps, baseline, how, patch, scale, softmax) -> float:
    """``|Z_f sym-diff Z_a|`` for one sample; ``scale`` divides the magnitudes (1 for none)."""
    members, magnitudes = attribution_magnitudes(x, a, how=how, patch=patch)
    substrate = baseline_image(x, baseline)
    f_x = score_of(logits_of(model, x), target, softmax)
    count = 0
    for feature, elements in enumerate(members):
        image = x.copy()
        for element in elements:
            image[element] = substrate[element]
        ignored = abs(score_of(logits_of(model, image), target, softmax) - f_x) < eps
        unattributed = magnitudes[feature] / scale < eps
        count += int(ignored != unattributed)
    return float(count)


# --- sufficiency (Dasgupta et al. 2022) -----------------------------------------------------------


def sufficiency(model, x, a, *, threshold, distance, normalise_distances, absolute,
                normalise) -> np.ndarray:
    """The whole batch at once (the batch is the reference set): ``x`` ``(B, C, *S)``, ``a``
    ``(B, ...)``."""
    b = len(x)
    e = a.reshape(b, -1).astype(np.float64)
    if absolute:
        e = np.abs(e)
    if normalise == "sample":
        peak = np.abs(e).max(axis=1, keepdims=True)
        e = e / np.where(peak > 0, peak, 1.0)
    elif normalise == "batch" and np.abs(e).max() > 0:
        e = e / np.abs(e).max()
    if distance == "seuclidean" and b > 1:
        variance = e.var(axis=0, ddof=1)
        keep = variance > 0
        d = scipy.spatial.distance.cdist(e[:, keep], e[:, keep], "seuclidean", V=variance[keep])
    else:
        d = scipy.spatial.distance.cdist(e, e, "euclidean")
    if normalise_distances and d.max() > 0:
        d = d / d.max()
    prediction = [int(np.argmax(logits_of(model, x[i]))) for i in range(b)]
    out = np.full(b, math.nan)
    for i in range(b):
        neighbours = [j for j in range(b) if j != i and d[i, j] <= threshold]
        if neighbours:
            out[i] = sum(prediction[j] == prediction[i] for j in neighbours) / len(neighbours)
    return out
