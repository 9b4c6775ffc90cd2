"""Slow reference implementations of the meta-evaluation (Hedström et al. 2023), written from the
paper.

Loops over tests, iterations, perturbations, methods and samples, sharing no
code with ``xaiscore.meta``: Wilcoxon p-values come from ``scipy.stats.wilcoxon``
(``zero_method="zsplit"``, no continuity correction, the method chosen by the
documented rule), ranks from ``scipy.stats.rankdata``, Kendall's tau from
``scipy.stats.kendalltau``; perturbed models are rebuilt from a fresh deep copy
of the original for every perturbation; explanations and scores are computed
one sample at a time.

The perturbation protocol (documented in ``xaiscore.meta.perturbation``) is
re-implemented from its description: one seed per (test, iteration,
perturbation) from ``torch.randint(0, 2**62, (T, I, K), generator=...)``; input
noise ``(2 u - 1) * delta`` with ``u = torch.rand(x.shape, float64)`` from a
generator seeded with the seed, clipped to ``[x.min(), x.max()]``; model noise
``1 + sigma * torch.randn(p.shape, float64)`` per parameter in
``named_parameters()`` order, multiplied in.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import scipy.stats
import torch

TESTS = ("model_resilience", "model_adversary", "input_resilience", "input_adversary")
MAGNITUDES = {"model_resilience": 0.001, "model_adversary": 2.0, "input_resilience": 0.001,
              "input_adversary": 5.0}


# --- statistics -------------------------------------------------------------------------------


def wilcoxon_p(x, y, alternative: str = "two-sided") -> float:
    """Wilcoxon signed-rank p-value over the finite pairs: exact if n <= 50 without zeros or ties,
    else normal."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d = x - y
    keep = np.isfinite(d)
    x, y, d = x[keep], y[keep], d[keep]
    if len(d) == 0:
        return math.nan
    magnitudes = np.abs(d)
    has_ties = len(np.unique(magnitudes)) < len(magnitudes)
    exact = len(d) <= 50 and not np.any(d == 0) and not has_ties
    result = scipy.stats.wilcoxon(x, y, zero_method="zsplit", correction=False,
                                  alternative=alternative,
                                  method="exact" if exact else "asymptotic")
    return float(result.pvalue)


def kendall_tau(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(scipy.stats.kendalltau(x, y).statistic)


def _nanmean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


# --- criteria of one test iteration: q (L, B), q_hat (K, L, B), kept (K, B) -----------------------


def iac_values(q, q_hat, kept, adversary: bool) -> np.ndarray:
    """(K, L) p-values (or 1 - p) over the kept samples."""
    k_count, n_methods, _ = q_hat.shape
    out = np.full((k_count, n_methods), np.nan)
    for k in range(k_count):
        for l in range(n_methods):
            rows = np.flatnonzero(kept[k])
            p = wilcoxon_p(q[l, rows], q_hat[k, l, rows])
            out[k, l] = 1.0 - p if adversary else p
    return out


def iac(q, q_hat, kept, adversary: bool) -> float:
    return _nanmean(iac_values(q, q_hat, kept, adversary).ravel())


def iec_resilience(q, q_hat, kept) -> float:
    per_k = []
    for k in range(q_hat.shape[0]):
        agree, count = 0, 0
        for i in range(q.shape[1]):
            if not kept[k, i] or not np.all(np.isfinite(q[:, i])) or not np.all(
                    np.isfinite(q_hat[k, :, i])):
                continue
            before = scipy.stats.rankdata(q[:, i])
            after = scipy.stats.rankdata(q_hat[k, :, i])
            agree += int(np.sum(before == after))
            count += q.shape[0]
        per_k.append(agree / count if count else math.nan)
    return _nanmean(per_k)


def iec_adversary(q, q_hat, kept, higher_is_better) -> float:
    if higher_is_better is None:
        return math.nan
    per_k = []
    for k in range(q_hat.shape[0]):
        worse, count = 0, 0
        for l in range(q.shape[0]):
            for i in range(q.shape[1]):
                before, after = q[l, i], q_hat[k, l, i]
                if not kept[k, i] or not (np.isfinite(before) and np.isfinite(after)):
                    continue
                count += 1
                worse += int(after < before) if higher_is_better else int(after > before)
        per_k.append(worse / count if count else math.nan)
    return _nanmean(per_k)


# --- the whole procedure ------------------------------------------------------------------------


def _perturbed_input(x: torch.Tensor, delta: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    u = torch.rand(x.shape, generator=generator, dtype=torch.float64)
    noisy = x + ((2 * u - 1) * delta).to(x.dtype)
    return torch.minimum(torch.maximum(noisy, x.min()), x.max())


def _perturbed_model(model: torch.nn.Module, sigma: float, seed: int) -> torch.nn.Module:
    fresh = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, parameter in fresh.named_parameters():
            noise = 1.0 + sigma * torch.randn(parameter.shape, generator=generator,
                                              dtype=torch.float64)
            parameter.mul_(noise.to(parameter.dtype))
    return fresh


def _prediction(model, x_row) -> int:
    with torch.no_grad():
        return int(model(x_row).argmax(1)[0])


def reference_meta_evaluation(model, x, factories: dict, metrics: dict, *, iterations: int,
                              perturbations: int,
                              seed: int, tests=TESTS):
    """The meta-evaluation with loops.

    Args:
        factories: method -> ``factory(model) -> explain_fn``.
        metrics: name ->
            ``(score_one(model, x_row, a_row, target_row, factory) -> float, higher_is_better)``,
            scoring a single sample (``x_row`` of shape ``(1, C, *S)``).

    Returns:
        dict with ``score`` (M, L, B), ``score_perturbed`` (M, T, I, K, L, B), ``kept``
        (T, I, K, B), ``iac``/``iec`` (M, T, I) and ``mc`` (M, spaces, I) as numpy arrays.
    """
    generator = torch.Generator().manual_seed(seed)
    seeds = torch.randint(0, 2**62, (len(tests), iterations, perturbations),
                          generator=generator).tolist()
    b = x.shape[0]
    methods = list(factories)
    names = list(metrics)
    prediction = [_prediction(model, x[i:i + 1]) for i in range(b)]
    target = torch.tensor(prediction)

    def scores_for(network, inputs):
        out = np.zeros((len(names), len(methods), b))
        for l, method in enumerate(methods):
            explainer = factories[method](network)
            for i in range(b):
                a_row = explainer(inputs[i:i + 1], target[i:i + 1]).detach()
                for m, name in enumerate(names):
                    score_one, _ = metrics[name]
                    out[m, l, i] = score_one(network, inputs[i:i + 1], a_row, target[i:i + 1],
                                             factories[method])
        return out

    q = scores_for(model, x)
    q_hat = np.zeros((len(names), len(tests), iterations, perturbations, len(methods), b))
    kept = np.zeros((len(tests), iterations, perturbations, b), dtype=bool)
    for t, test in enumerate(tests):
        for it in range(iterations):
            for k in range(perturbations):
                s = seeds[t][it][k]
                if test.startswith("input"):
                    network, inputs = model, _perturbed_input(x, MAGNITUDES[test], s)
                else:
                    network, inputs = _perturbed_model(model, MAGNITUDES[test], s), x
                for i in range(b):
                    same = _prediction(network, inputs[i:i + 1]) == prediction[i]
                    kept[t, it, k, i] = (not same) if test.endswith("adversary") else same
                q_hat[:, t, it, k] = scores_for(network, inputs)
    iac_out = np.zeros((len(names), len(tests), iterations))
    iec_out = np.zeros_like(iac_out)
    for m, name in enumerate(names):
        direction = metrics[name][1]
        for t, test in enumerate(tests):
            adversary = test.endswith("adversary")
            for it in range(iterations):
                iac_out[m, t, it] = iac(q[m], q_hat[m, t, it], kept[t, it], adversary)
                iec_out[m, t, it] = (iec_adversary(q[m], q_hat[m, t, it], kept[t, it], direction)
                                     if adversary
                                     else iec_resilience(q[m], q_hat[m, t, it], kept[t, it]))
    spaces = [s for s in ("input", "model") if f"{s}_resilience" in tests
              and f"{s}_adversary" in tests]
    mc = np.zeros((len(names), len(spaces), iterations))
    for m in range(len(names)):
        for j, space in enumerate(spaces):
            parts = [tests.index(f"{space}_{kind}") for kind in ("resilience", "adversary")]
            for it in range(iterations):
                mc[m, j, it] = (iac_out[m, parts[0], it] + iac_out[m, parts[1], it]
                                + iec_out[m, parts[0], it] + iec_out[m, parts[1], it]) / 4
    return {"score": q, "score_perturbed": q_hat, "kept": kept, "iac": iac_out, "iec": iec_out,
            "mc": mc,
            "spaces": spaces}


# --- beyond MetaQuantus --------------------------------------------------------------------------


def oriented(values, higher_is_better):
    if higher_is_better is None:
        return np.full_like(np.asarray(values, np.float64), np.nan)
    return np.asarray(values, np.float64) * (1.0 if higher_is_better else -1.0)


def agreement(q, directions):
    """(overall (M, M), per_sample (M, M, B)) Kendall tau-b of oriented method rankings."""
    m_count, _, b = q.shape
    overall = np.full((m_count, m_count), np.nan)
    per_sample = np.full((m_count, m_count, b), np.nan)
    o = [oriented(q[m], directions[m]) for m in range(m_count)]
    for m1 in range(m_count):
        for m2 in range(m_count):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the mean of an all-NaN row is NaN
                overall[m1, m2] = kendall_tau(np.nanmean(o[m1], axis=1), np.nanmean(o[m2], axis=1))
            for i in range(b):
                per_sample[m1, m2, i] = kendall_tau(o[m1][:, i], o[m2][:, i])
    return overall, per_sample


def split_half(q, order):
    """(M, S) tau between the method means of the first floor(B/2) positions of each order row and
    the rest."""
    m_count, _, b = q.shape
    out = np.full((m_count, order.shape[0]), np.nan)
    for m in range(m_count):
        for s, row in enumerate(order):
            first, second = row[: b // 2], row[b // 2:]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out[m, s] = kendall_tau(np.nanmean(q[m][:, first], axis=1),
                                        np.nanmean(q[m][:, second], axis=1))
    return out


def random_separation(q, baseline, directions):
    m_count, n_methods, b = q.shape
    win = np.full((m_count, n_methods), np.nan)
    p = np.full((m_count, n_methods), np.nan)
    for m in range(m_count):
        if directions[m] is None:
            continue
        base = oriented(baseline[m], directions[m])
        for l in range(n_methods):
            values = oriented(q[m, l], directions[m])
            keep = np.isfinite(values) & np.isfinite(base)
            if keep.sum() == 0:
                continue
            win[m, l] = np.mean((values[keep] > base[keep]) + 0.5 * (values[keep] == base[keep]))
            p[m, l] = wilcoxon_p(values[keep], base[keep], alternative="greater")
    return win, p
