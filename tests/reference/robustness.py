"""Slow, per-sample reference implementations of the robustness metrics (from the papers).

Plain numpy loops over samples and perturbations, sharing no code with
``xaiscore.functional.robustness``. The perturbations are inputs: each
function takes one sample and the list of its perturbed copies (or noise
vectors), calls the explainer on **one input at a time**, and returns a float
(NaN where undefined).

``explain(x_i, t_i)`` takes and returns numpy arrays of one sample
(``(C, *S)`` and an int); ``predict(x_i)`` returns the predicted class.
"""

from __future__ import annotations

import math

import numpy as np


def _prep(e: np.ndarray, abs_: bool, normalise: bool) -> np.ndarray:
    e = e.astype(np.float64)
    if normalise:
        peak = np.max(np.abs(e))
        if peak > 0:
            e = e / peak
    return np.abs(e) if abs_ else e


def _norm(v: np.ndarray, p: float) -> float:
    v = np.ravel(v)
    if p == math.inf:
        return float(np.max(np.abs(v)))
    return float(np.sum(np.abs(v) ** p) ** (1.0 / p))


def _keep(values: list[float], changed: list[bool], mode: str) -> list[float]:
    """Apply the prediction-change rule; returns the values that count
    (NaN list for 'nan' mode hits)."""
    if mode == "nan" and any(changed):
        return [math.nan]
    if mode == "exclude":
        return [v for v, c in zip(values, changed) if not c]
    return values


def _max(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    if not finite or (len(values) == 1 and math.isnan(values[0])):
        return math.nan
    return max(finite)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return (float(np.mean(finite)) if finite and not (len(values) == 1 and math.isnan(values[0]))
            else math.nan)


def _changed(predict, x, perturbed, mode):
    if mode == "keep":
        return [False] * len(perturbed)
    before = predict(x)
    return [predict(xp) != before for xp in perturbed]


def sensitivity(explain, x, a, t, noises, *, how="max", p=2.0, relative=True, abs_=False,
                normalise=False,
                predict=None, mode="keep"):
    """Yeh et al. 2019: max (or mean) over j of ||Phi(x + d_j) - Phi(x)|| (/ ||Phi(x)||)."""
    base = _prep(a, abs_, normalise)
    scale = _norm(base, p)
    perturbed = [x + d for d in noises]
    values = []
    for xp in perturbed:
        diff = _norm(_prep(explain(xp, t), abs_, normalise) - base, p)
        if relative:
            diff = diff / scale if scale > 0 else math.nan
        values.append(diff)
    values = _keep(values, _changed(predict, x, perturbed, mode), mode)
    return _max(values) if how == "max" else _mean(values)


def local_lipschitz(explain, x, a, t, noises, *, p=2.0, abs_=False, normalise=True, predict=None,
                    mode="keep"):
    """Alvarez-Melis and Jaakkola 2018: max over x' != x of ||Phi(x) - Phi(x')|| / ||x - x'||."""
    base = _prep(a, abs_, normalise)
    perturbed = [x + d for d in noises]
    values = []
    for xp in perturbed:
        distance = _norm(x - xp, p)
        if distance == 0:
            values.append(math.nan)  # x' = x is not a distinct point
            continue
        values.append(_norm(base - _prep(explain(xp, t), abs_, normalise), p) / distance)
    return _max(_keep(values, _changed(predict, x, perturbed, mode), mode))


def _percent_change(before: np.ndarray, after: np.ndarray, eps: float) -> np.ndarray:
    before = before.astype(np.float64)
    safe = np.where(before == 0, eps, before)
    return (before - after) / safe


def relative_stability(explain, x, a, t, noises, *, kind, predict=None, logits=None,
                       representation=None,
                       p=2.0, eps_min=1e-6, abs_=False, normalise=False, mode="exclude"):
    """Agarwal et al. 2022, RIS / ROS / RRS: max over x' of ||(e_x - e_x')/e_x|| /
    max(||denominator||, eps_min)."""
    base = _prep(a, abs_, normalise)
    perturbed = [x + d for d in noises]
    values = []
    for xp in perturbed:
        numerator = _norm(_percent_change(base, _prep(explain(xp, t), abs_, normalise), eps_min), p)
        if kind == "input":
            denominator = _norm(_percent_change(x, xp, eps_min), p)
        elif kind == "output":
            denominator = _norm(logits(x) - logits(xp), p)
        else:
            denominator = _norm(_percent_change(representation(x), representation(xp), eps_min), p)
        values.append(numerator / max(denominator, eps_min))
    return _max(_keep(values, _changed(predict, x, perturbed, mode), mode))


def translate(x: np.ndarray, shift: int, fill: float, axis: int) -> np.ndarray:
    """Shift one sample ``(C, *S)`` by ``shift`` pixels along ``axis`` (of the sample), filling with
    ``fill``."""
    out = np.full_like(x, fill)
    width = x.shape[axis]
    for w in range(width):
        source = w - shift
        if 0 <= source < width:
            target_index = [slice(None)] * x.ndim
            source_index = [slice(None)] * x.ndim
            target_index[axis] = w
            source_index[axis] = source
            out[tuple(target_index)] = x[tuple(source_index)]
    return out


def quantus_shifts(width: int, n_steps: int) -> list[int]:
    step = (2 * width + 1) // n_steps
    return [-width + step * k for k in range(1, n_steps + 1)]


def continuity(explain, x, a, t, shifts, *, axis=-1, fill="black", p_explanation=1.0, p_input=2.0,
               abs_=True,
               normalise=True, predict=None, mode="keep"):
    """Montavon et al. 2018: max over translations of ||R(x) - R(x')||_1 / ||x - x'||_2 (x' != x).
    """
    value = ({"black": np.min, "white": np.max, "mean": np.mean}[fill](x) if isinstance(fill, str)
             else fill)
    base = _prep(a, abs_, normalise)
    axis = axis % (x.ndim + 1) - 1  # an axis of the batch -> an axis of the sample
    perturbed = [translate(x, s, value, axis) for s in shifts]
    values = []
    for xp in perturbed:
        distance = _norm(x - xp, p_input)
        if distance == 0:
            values.append(math.nan)
            continue
        values.append(_norm(base - _prep(explain(xp, t), abs_, normalise), p_explanation)
                      / distance)
    return _max(_keep(values, _changed(predict, x, perturbed, mode), mode))


def discretise(a: np.ndarray, kind: str, k: int, how: str | None) -> tuple:
    """A hashable discretised explanation of one sample."""
    if how == "sum":
        a = a.sum(axis=0)
    elif how == "mean":
        a = a.mean(axis=0)
    elif how == "max_abs":
        a = np.abs(a).max(axis=0)
    flat = np.ravel(a)
    if kind == "sign":
        return tuple(np.sign(flat).tolist())
    magnitude = np.abs(flat)
    # The k largest |a|, ties to the lower index: sort by (-|a|, index).
    order = sorted(range(len(flat)), key=lambda i: (-magnitude[i], i))[:k]
    members = sorted(order)
    if kind == "top_k":
        return tuple(members)
    return tuple(members) + tuple(np.sign(flat[i]) for i in members)


def consistency(predictions: list[int], a: np.ndarray, *, kind="top_k_sign", k=5,
                how="sum") -> list[float]:
    """Dasgupta et al. 2022: Pr[f(x') = f(x) | e(x') = e(x)] over the other samples."""
    keys = [discretise(a[i], kind, k, how) for i in range(len(predictions))]
    scores = []
    for i in range(len(predictions)):
        mates = [j for j in range(len(predictions)) if j != i and keys[j] == keys[i]]
        if not mates:
            scores.append(math.nan)
        else:
            scores.append(sum(predictions[j] == predictions[i] for j in mates) / len(mates))
    return scores
