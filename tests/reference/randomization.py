"""Slow, per-sample reference implementations of the similarity functions and randomization checks.

Written from the papers and the libraries' definitions with plain loops, sharing
no code with ``xaiscore.functional``: similarities come from scipy and
scikit-image one sample at a time; randomized models are rebuilt from a fresh
copy for every (sample, step) pair from the *set* of layers that step
randomizes, rather than incrementally; explanations are computed one sample
at a time.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import scipy.stats
import torch
from skimage.metrics import structural_similarity
from torch import nn

# --- similarities, one sample (numpy arrays of any shape) ------------------------------------


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(scipy.stats.spearmanr(x, y)[0])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(scipy.stats.pearsonr(x, y)[0])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if not x.any() or not y.any():
        return math.nan
    return float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def ssim(a: np.ndarray, b: np.ndarray, *, window="uniform", win_size=None, sigma=1.5,
         data_range=None,
         k1=0.01, k2=0.03, use_sample_covariance=True, flatten=False) -> float:
    """scikit-image's SSIM: per channel over the spatial axes, or on the flattened sample."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    if data_range is None:
        data_range = float(max(x.max(), y.max()) - min(x.min(), y.min()))
    options = dict(win_size=win_size, data_range=data_range, gaussian_weights=window == "gaussian",
                   sigma=sigma,
                   K1=k1, K2=k2, use_sample_covariance=use_sample_covariance)
    with np.errstate(divide="ignore", invalid="ignore"):
        if flatten:
            return float(structural_similarity(x.ravel(), y.ravel(), **options))
        return float(structural_similarity(x, y, channel_axis=0, **options))


SIMILARITIES = {"spearman": spearman, "pearson": pearson, "cosine": cosine, "mse": mse,
                "ssim": ssim,
                "ssim_flat": lambda a, b, **kw: ssim(a, b, flatten=True, **kw)}


# --- post-processing, one sample ---------------------------------------------------------------


def postprocess(a: np.ndarray, *, abs=True, normalise="max", how=None) -> np.ndarray:
    a = a.astype(np.float64)
    if how == "sum":
        a = a.sum(axis=0, keepdims=True)
    elif how == "mean":
        a = a.mean(axis=0, keepdims=True)
    elif how == "max_abs":
        a = np.abs(a).max(axis=0, keepdims=True)
    if normalise == "max" and np.abs(a).max() > 0:
        a = a / np.abs(a).max()
    elif normalise == "second_moment" and np.sqrt(np.mean(a**2)) > 0:
        a = a / np.sqrt(np.mean(a**2))
    return np.abs(a) if abs else a


# --- histogram entropy, one sample -------------------------------------------------------------


def bins_for(values: np.ndarray, n_bins, min_bins=10, max_bins=200) -> int:
    if isinstance(n_bins, int):
        return n_bins
    n = values.size
    if n_bins == "sqrt":
        k = math.ceil(math.sqrt(n))
    elif n_bins == "sturges":
        k = math.ceil(math.log2(n)) + 1
    elif n_bins == "rice":
        k = math.ceil(2 * n ** (1 / 3))
    else:
        if n_bins == "freedman_diaconis":
            q75, q25 = np.percentile(values, [75, 25])
            width = 2 * (q75 - q25) / n ** (1 / 3)
        else:
            width = 3.5 * np.std(values) / n ** (1 / 3)
        k = math.ceil((values.max() - values.min()) / width) if width > 0 else max_bins
    return int(min(max(k, min_bins), max_bins))


def histogram_entropy(a: np.ndarray, n_bins=100, min_bins=10, max_bins=200) -> float:
    values = a.ravel()
    counts, _ = np.histogram(values, bins=bins_for(values, n_bins, min_bins, max_bins))
    return float(scipy.stats.entropy(counts))


# --- model randomization, from scratch -----------------------------------------------------------


def layer_names(model: nn.Module) -> list[str]:
    """Modules that own parameters directly, in registration (named_modules) order."""
    return [name for name, m in model.named_modules() if len(list(m.parameters(recurse=False))) > 0]


def seeds_for(seed: int, count: int) -> list[int]:
    """The documented seed rule: randint(0, 2**62, (L,)) from a CPU generator seeded with ``seed``.
    """
    return [int(v) for v in torch.randint(0, 2**62, (count,),
                                          generator=torch.Generator().manual_seed(seed))]


def randomize(model: nn.Module, which: list[int], seed: int) -> nn.Module:
    """A fresh copy of ``model`` with the layers at positions ``which`` re-initialised
    (reset_parameters).

    Each layer gets its own seed; reset_parameters runs on a float64 copy of the
    layer (the documented rule), drawing from the global CPU generator, which is
    forked and restored here; the values are then cast to the model's dtype.
    """
    names = layer_names(model)
    seeds = seeds_for(seed, len(names))
    fresh = copy.deepcopy(model)
    modules = dict(fresh.named_modules())
    for position in which:
        layer = modules[names[position]]
        twin = copy.deepcopy(layer).double()
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.random.default_generator.manual_seed(seeds[position])
            twin.reset_parameters()
            for (_, p), (_, q) in zip(layer.named_parameters(), twin.named_parameters()):
                p.copy_(q.to(p.dtype))
            for (_, b), (_, c) in zip(layer.named_buffers(), twin.named_buffers()):
                b.copy_(c.to(b.dtype))
    return fresh


def randomized_sets(n_layers: int, order: str) -> list[list[int]]:
    """The layer positions randomized at each step of each order (Hedström et al. 2023)."""
    if order == "bottom_up":
        return [list(range(0, k + 1)) for k in range(n_layers)]
    if order == "top_down":
        return [list(range(n_layers - 1 - k, n_layers)) for k in range(n_layers)]
    return [[k] for k in range(n_layers)]


def explain_one(factory, model, x_i: torch.Tensor, t_i: int) -> np.ndarray:
    out = factory(model)(x_i.unsqueeze(0), torch.tensor([t_i]))
    return out.detach()[0].numpy()


def mprt(model, x, target, factory, *, order="bottom_up", seed=0, similarity="spearman", abs=True,
         normalise="max", how=None, summary="mean") -> tuple[np.ndarray, np.ndarray]:
    """Per-sample MPRT: returns (scores (B,), curves (B, L)); every model rebuilt per sample and
    step."""
    n_layers = len(layer_names(model))
    sim = SIMILARITIES[similarity]
    curves = np.zeros((x.shape[0], n_layers))
    for i in range(x.shape[0]):
        original = postprocess(explain_one(factory, copy.deepcopy(model), x[i], int(target[i])),
                               abs=abs, normalise=normalise, how=how)
        for step, which in enumerate(randomized_sets(n_layers, order)):
            random_model = randomize(model, which, seed)
            e = postprocess(explain_one(factory, random_model, x[i], int(target[i])),
                            abs=abs, normalise=normalise, how=how)
            curves[i, step] = sim(original, e)
    scores = curves.mean(axis=1) if summary == "mean" else curves[:, -1]
    return scores, curves


def smooth_explanation(factory, model, noisy_inputs: list[torch.Tensor], t_i: int) -> np.ndarray:
    """The mean of the explanations of the given noisy copies of one sample (explained one by one).
    """
    return np.mean([explain_one(factory, model, xn, t_i) for xn in noisy_inputs], axis=0)


def smooth_mprt(model, noisy, target, factory, *, order="bottom_up", seed=0, similarity="spearman",
                abs=True,
                normalise="second_moment", summary="mean") -> tuple[np.ndarray, np.ndarray]:
    """sMPRT given each sample's noisy copies ``noisy[i]`` (a list of N inputs)."""
    n_layers = len(layer_names(model))
    sim = SIMILARITIES[similarity]
    curves = np.zeros((len(noisy), n_layers))
    for i, copies in enumerate(noisy):
        original = postprocess(smooth_explanation(factory, copy.deepcopy(model), copies,
                                                  int(target[i])),
                               abs=abs, normalise=normalise)
        for step, which in enumerate(randomized_sets(n_layers, order)):
            e = smooth_explanation(factory, randomize(model, which, seed), copies, int(target[i]))
            curves[i, step] = sim(original, postprocess(e, abs=abs, normalise=normalise))
    scores = curves.mean(axis=1) if summary == "mean" else curves[:, -1]
    return scores, curves


def efficient_mprt(model, x, target, factory, *, order="bottom_up", seed=0, n_bins=100, abs=False,
                   normalise=None) -> np.ndarray:
    """Per-sample eMPRT: (H(random) - H(original)) / H(original), NaN for H(original) = 0."""
    n_layers = len(layer_names(model))
    full = randomize(model, list(range(n_layers)), seed)
    scores = np.zeros(x.shape[0])
    for i in range(x.shape[0]):
        h0 = histogram_entropy(postprocess(explain_one(factory, copy.deepcopy(model), x[i],
                                                       int(target[i])),
                                           abs=abs, normalise=normalise), n_bins)
        h1 = histogram_entropy(postprocess(explain_one(factory, full, x[i], int(target[i])),
                                           abs=abs, normalise=normalise), n_bins)
        scores[i] = math.nan if h0 == 0 else (h1 - h0) / h0
    return scores


def random_logit(model, x, target, off_target, factory, *, similarity="ssim", abs=False,
                 normalise="max") -> np.ndarray:
    """Per-sample Random Logit given the drawn other classes."""
    sim = SIMILARITIES[similarity]
    out = np.zeros(x.shape[0])
    for i in range(x.shape[0]):
        e = postprocess(explain_one(factory, model, x[i], int(target[i])), abs=abs,
                        normalise=normalise)
        e_off = postprocess(explain_one(factory, model, x[i], int(off_target[i])), abs=abs,
                            normalise=normalise)
        out[i] = sim(e, e_off)
    return out
