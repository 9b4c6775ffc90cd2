"""Slow, per-sample references for RISE, attention rollout, Chefer's relevance, prototype maps,
feature ablation / Shapley values and the prototype evaluation of Huang et al. (2023).

Written from the papers with numpy and plain loops, sharing no code with ``xaiscore.explainers``:
resizing is a loop-based linear interpolation with half-pixel centres (the convention of
``torch.nn.functional.interpolate(align_corners=False)``); the vision transformer is re-implemented
in numpy from its weights (patches, class token, pre-norm blocks, exact GELU) so the attention comes
from our own forward pass, not from hooks; its attention gradients come from central differences.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.special import erf

# --- resizing -----------------------------------------------------------------------------------


def _linear_axis(a: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    in_size = a.shape[axis]
    moved = np.moveaxis(a, axis, 0)
    out = np.zeros((out_size,) + moved.shape[1:])
    for j in range(out_size):
        source = (j + 0.5) * in_size / out_size - 0.5
        source = max(source, 0.0)
        low = min(int(math.floor(source)), in_size - 1)
        high = min(low + 1, in_size - 1)
        weight = source - low
        out[j] = (1 - weight) * moved[low] + weight * moved[high]
    return np.moveaxis(out, 0, axis)


def linear_resize(a: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """(Bi/tri)linear resize of ``a`` (spatial dims only), half-pixel centres, clamped edges."""
    out = np.asarray(a, dtype=np.float64)
    for axis, side in enumerate(size):
        if out.shape[axis] != side:
            out = _linear_axis(out, axis, side)
    return out


# --- RISE ---------------------------------------------------------------------------------------


def rise_masks(grids: np.ndarray, shifts: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
    """Petsiuk et al.: upsample each s x s grid to (s + 1) * cell pixels, crop at its shift."""
    masks = []
    for grid, shift in zip(grids, shifts):
        cells = grid.shape
        cell = [math.ceil(side / s) for side, s in zip(spatial, cells)]
        up = linear_resize(grid, tuple((s + 1) * c for s, c in zip(cells, cell)))
        window = tuple(slice(int(o), int(o) + side) for o, side in zip(shift, spatial))
        masks.append(up[window])
    return np.stack(masks)


def rise_saliency(
    probability, x_i: np.ndarray, target: int, masks: np.ndarray, p: float, baseline: float = 0.0
) -> np.ndarray:
    """S = sum_i f_c(x * M_i) M_i / (N p), one mask at a time."""
    total = np.zeros(masks.shape[1:])
    for mask in masks:
        masked = baseline + mask[None] * (x_i - baseline)
        total += probability(masked)[target] * mask
    return total / (len(masks) * p)


# --- vision transformer in numpy ------------------------------------------------------------------


def _layer_norm(
    t: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5
) -> np.ndarray:
    mean = t.mean(-1, keepdims=True)
    var = ((t - mean) ** 2).mean(-1, keepdims=True)
    return (t - mean) / np.sqrt(var + eps) * weight + bias


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def vit_forward(
    w: dict[str, np.ndarray],
    x_i: np.ndarray,
    *,
    patch: int,
    heads: int,
    depth: int,
    mean: float,
    std: float,
    override: dict[int, np.ndarray] | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits (K,) and the attention (heads, T, T) of every block for one image ``x_i`` (C, H, W).

    ``override[l]`` replaces block ``l``'s attention probabilities (to differentiate by them).
    """
    x = (x_i - mean) / std
    channels, height, width = x.shape
    kernel = w["embedding.projection.weight"]  # (D, C, p, p)
    # Patches in row-major order, each flattened as (channel, row, column), like the kernel.
    pieces = x.reshape(channels, height // patch, patch, width // patch, patch).transpose(
        1, 3, 0, 2, 4
    )
    tokens = pieces.reshape(-1, channels * patch * patch) @ kernel.reshape(kernel.shape[0], -1).T
    tokens = tokens + w["embedding.projection.bias"]
    t = np.concatenate([w["embedding.class_token"][0], tokens], 0) + w["embedding.position"][0]
    dim = t.shape[1]
    head_dim = dim // heads
    attentions = []
    for layer in range(depth):
        pre = f"blocks.{layer}."
        h = _layer_norm(t, w[pre + "norm1.weight"], w[pre + "norm1.bias"])
        qkv = h @ w[pre + "attn.qkv.weight"].T + w[pre + "attn.qkv.bias"]
        q, k, v = qkv[:, :dim], qkv[:, dim : 2 * dim], qkv[:, 2 * dim :]
        outs, probs = [], []
        for head in range(heads):
            cols = slice(head * head_dim, (head + 1) * head_dim)
            a = _softmax(q[:, cols] @ k[:, cols].T / math.sqrt(head_dim))
            if override is not None and layer in override:
                a = override[layer][head]
            probs.append(a)
            outs.append(a @ v[:, cols])
        attentions.append(np.stack(probs))
        t = t + np.concatenate(outs, 1) @ w[pre + "attn.proj.weight"].T + w[pre + "attn.proj.bias"]
        h = _layer_norm(t, w[pre + "norm2.weight"], w[pre + "norm2.bias"])
        hidden = h @ w[pre + "mlp.0.weight"].T + w[pre + "mlp.0.bias"]
        hidden = 0.5 * hidden * (1 + erf(hidden / math.sqrt(2)))
        t = t + hidden @ w[pre + "mlp.2.weight"].T + w[pre + "mlp.2.bias"]
    t = _layer_norm(t, w["norm.weight"], w["norm.bias"])
    return t[0] @ w["head.weight"].T + w["head.bias"], attentions


def attention_gradients(
    forward, attentions: list[np.ndarray], target: int, step: float = 1e-5
) -> list[np.ndarray]:
    """d logit_target / d A^(l) by central differences, entry by entry.

    ``forward(override) -> logits``.
    """
    gradients = []
    for layer, attention in enumerate(attentions):
        gradient = np.zeros_like(attention)
        for index in np.ndindex(attention.shape):
            plus, minus = attention.copy(), attention.copy()
            plus[index] += step
            minus[index] -= step
            gradient[index] = (forward({layer: plus})[target] - forward({layer: minus})[target]) / (
                2 * step
            )
        gradients.append(gradient)
    return gradients


def rollout(
    attentions: list[np.ndarray], *, fusion: str = "mean", discard_ratio: float = 0.0
) -> np.ndarray:
    """Abnar and Zuidema: product over layers of rows(0.5 fuse(A) + 0.5 I), first layer first."""
    tokens = attentions[0].shape[-1]
    result = np.eye(tokens)
    for attention in attentions:
        fused = {"mean": attention.mean(0), "max": attention.max(0), "min": attention.min(0)}[
            fusion
        ]
        k = int(discard_ratio * tokens * tokens)
        if k:
            flat = fused.ravel().copy()
            order = sorted(range(flat.size), key=lambda i: (flat[i], i))
            for i in order[:k]:
                flat[i] = 0.0
            fused = flat.reshape(fused.shape)
        mixed = 0.5 * fused + 0.5 * np.eye(tokens)
        mixed = mixed / mixed.sum(1, keepdims=True)
        result = mixed @ result
    return result


def chefer(attentions: list[np.ndarray], gradients: list[np.ndarray]) -> np.ndarray:
    """Chefer et al. (gradient-weighted rollout): R = I; R += E_h[(grad * A)^+] R per layer."""
    tokens = attentions[0].shape[-1]
    relevance = np.eye(tokens)
    for attention, gradient in zip(attentions, gradients):
        weighted = np.clip(gradient * attention, 0, None).mean(0)
        relevance = relevance + weighted @ relevance
    return relevance


def patch_map(
    row: np.ndarray, grid: tuple[int, ...], size: tuple[int, ...], prefix: int = 1
) -> np.ndarray:
    return linear_resize(row[prefix:].reshape(grid), size)


# --- prototype maps -------------------------------------------------------------------------------


def prototype_map(
    maps: np.ndarray,
    weights: np.ndarray,
    target: int,
    *,
    top_k: int | None,
    candidates: str,
    size: tuple[int, ...],
) -> np.ndarray:
    """Sum of w_cj up(g_j) over the top-k prototypes by w_cj max g_j (ties: lower index)."""
    m = maps.shape[0]
    w = weights[target]
    pool = [j for j in range(m) if candidates == "all" or w[j] > 0]
    pool.sort(key=lambda j: (-(w[j] * maps[j].max()), j))
    chosen = pool if top_k is None else pool[:top_k]
    total = np.zeros(size)
    for j in chosen:
        total += w[j] * linear_resize(maps[j], size)
    return total


# --- feature groups -------------------------------------------------------------------------------


def feature_ablation(score, x_i: np.ndarray, mask: np.ndarray, baseline: float = 0.0) -> np.ndarray:
    """a(element) = f(x) - f(x with the element's feature set to the baseline)."""
    full = score(x_i)
    out = np.zeros_like(x_i, dtype=np.float64)
    mask = np.broadcast_to(mask, x_i.shape)
    for feature in np.unique(mask):
        ablated = np.where(mask == feature, baseline, x_i)
        out[mask == feature] = full - score(ablated)
    return out


def shapley_values(score, x_i: np.ndarray, mask: np.ndarray, baseline: float = 0.0) -> np.ndarray:
    """Exact Shapley values of the features (absent ones at the baseline), on their elements."""
    mask = np.broadcast_to(mask, x_i.shape)
    features = list(np.unique(mask))
    n = len(features)

    def value(coalition):
        keep = np.isin(mask, list(coalition))
        return score(np.where(keep, x_i, baseline))

    out = np.zeros_like(x_i, dtype=np.float64)
    for feature in features:
        others = [f for f in features if f != feature]
        phi = 0.0
        for size in range(n):
            for coalition in itertools.combinations(others, size):
                weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                phi += weight * (value(coalition + (feature,)) - value(coalition))
        out[mask == feature] = phi
    return out


# --- prototype evaluation (Huang et al. 2023, boxes) -------------------------------------------


def _box_pixels(box: np.ndarray, height: int, width: int) -> set[tuple[int, int]]:
    if np.isnan(box).any():
        return set()
    x0, y0, x1, y1 = box
    return {
        (r, c)
        for r in range(height)
        for c in range(width)
        if y0 <= r + 0.5 < y1 and x0 <= c + 0.5 < x1
    }


def hit_vectors(
    peaks: np.ndarray, boxes: np.ndarray, size: tuple[int, int], half_size: int, regions: str
) -> tuple[np.ndarray, np.ndarray]:
    """Hits (N, m, R') and annotated (N, R') by pixel sets."""
    n_images, n_prototypes = peaks.shape[:2]
    height, width = size
    pixel_sets = [[_box_pixels(box, height, width) for box in image_boxes] for image_boxes in boxes]
    annotated = np.array(
        [[not np.isnan(box).any() for box in image_boxes] for image_boxes in boxes]
    )
    hits = np.zeros((n_images, n_prototypes, boxes.shape[1]), dtype=bool)
    for i in range(n_images):
        for j in range(n_prototypes):
            r, c = peaks[i, j]
            window = {
                (rr, cc)
                for rr in range(r - half_size, r + half_size + 1)
                for cc in range(c - half_size, c + half_size + 1)
            }
            for k, pixels in enumerate(pixel_sets[i]):
                hits[i, j, k] = bool(window & pixels)
    if regions == "union":
        return hits.any(2, keepdims=True), annotated.any(1, keepdims=True)
    return hits, annotated


def consistency(
    peaks, boxes, labels, classes, size, *, threshold: float, half_size: int, regions: str
):
    hits, annotated = hit_vectors(peaks, boxes, size, half_size, regions)
    per_prototype = []
    for j in range(peaks.shape[1]):
        images = [i for i in range(peaks.shape[0]) if labels is None or labels[i] == classes[j]]
        rates = []
        for r in range(hits.shape[2]):
            with_region = [i for i in images if annotated[i, r]]
            if with_region:
                rates.append(sum(hits[i, j, r] for i in with_region) / len(with_region))
        per_prototype.append(math.nan if not rates else float(max(rates) >= threshold))
    defined = [v for v in per_prototype if not math.isnan(v)]
    return (sum(defined) / len(defined) if defined else math.nan), per_prototype


def stability(peaks, noisy, boxes, labels, classes, size, *, half_size: int, regions: str):
    hits, annotated = hit_vectors(peaks, boxes, size, half_size, regions)
    noisy_hits, _ = hit_vectors(noisy, boxes, size, half_size, regions)
    per_prototype = []
    for j in range(peaks.shape[1]):
        images = [
            i
            for i in range(peaks.shape[0])
            if (labels is None or labels[i] == classes[j]) and annotated[i].any()
        ]
        if not images:
            per_prototype.append(math.nan)
            continue
        per_prototype.append(
            sum(bool((hits[i, j] == noisy_hits[i, j]).all()) for i in images) / len(images)
        )
    defined = [v for v in per_prototype if not math.isnan(v)]
    return (sum(defined) / len(defined) if defined else math.nan), per_prototype
