"""The meta-evaluation's results as an ``xarray.Dataset`` (netCDF-safe), and NaN-aware summaries.

:func:`build_dataset` lays out what :func:`xaiscore.meta.meta_evaluate` computed;
the variables and their dims are listed in its docstring and in ``docs/meta.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from xaiscore.dispatch import PlannedMetric
from xaiscore.meta.agreement import random_baseline_separation
from xaiscore.meta.perturbation import PerturbationTest

__all__ = ["import_xarray", "nan_stats", "build_dataset"]


def import_xarray() -> Any:
    try:
        import xarray
    except ImportError as error:  # pragma: no cover - xarray is in the harness and test extras
        raise ImportError(
            "meta_evaluate returns an xarray.Dataset; install xarray with `pip install "
            "xaiscore[harness]`."
        ) from error
    return xarray


def nan_stats(values: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """NaN-ignoring mean and population standard deviation along ``dim``."""
    finite = ~torch.isnan(values)
    count = finite.sum(dim)
    zeros = torch.zeros_like(values)
    mean = torch.where(finite, values, zeros).sum(dim) / count.clamp(min=1)
    centred = torch.where(finite, values - mean.unsqueeze(dim), zeros)
    std = (centred.pow(2).sum(dim) / count.clamp(min=1)).sqrt()
    nan = torch.full_like(mean, math.nan)
    return torch.where(count > 0, mean, nan), torch.where(count > 0, std, nan)


def _direction_code(direction: bool | None) -> int:
    return -1 if direction is None else int(direction)


def build_dataset(
    xr: Any,
    *,
    planned: list[PlannedMetric],
    method_names: list[str],
    suite: Sequence[PerturbationTest],
    spaces: list[str],
    iterations: int,
    perturbations: int,
    q: Tensor,
    q_hat: Tensor,
    kept: Tensor,
    iac: Tensor,
    iec: Tensor,
    iac_method: Tensor,
    mc: Tensor,
    mc_mean: Tensor,
    mc_std: Tensor,
    agreement: Tensor,
    agreement_per_sample: Tensor,
    split_half: Tensor,
    baseline: Tensor | None,
    directions: list[bool | None],
    alpha: float,
    prediction: Tensor,
    target: Tensor,
) -> Any:
    def np64(t: Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float64).numpy()

    names = [p.name for p in planned]
    b = q.shape[-1]
    iac_mean, _ = nan_stats(iac, -1)
    iec_mean, _ = nan_stats(iec, -1)
    split_mean, _ = nan_stats(split_half, -1)
    agreement_mean, _ = nan_stats(agreement_per_sample, -1)
    variables: dict[str, Any] = {
        "score": (("metric", "explainer", "sample"), np64(q)),
        "score_perturbed": (
            ("metric", "test", "iteration", "perturbation", "explainer", "sample"),
            np64(q_hat),
        ),
        "kept": (
            ("test", "iteration", "perturbation", "sample"),
            kept.cpu().numpy().astype(np.int8),
        ),
        "kept_fraction": (("test", "iteration"), np64(kept.to(torch.float64).mean((-2, -1)))),
        "iac": (("metric", "test", "iteration"), np64(iac)),
        "iec": (("metric", "test", "iteration"), np64(iec)),
        "iac_per_method": (("metric", "test", "iteration", "explainer"), np64(iac_method)),
        "iac_mean": (("metric", "test"), np64(iac_mean)),
        "iec_mean": (("metric", "test"), np64(iec_mean)),
        "mc": (("metric", "space", "iteration"), np64(mc)),
        "mc_mean": (("metric", "space"), np64(mc_mean)),
        "mc_std": (("metric", "space"), np64(mc_std)),
        "mc_overall": (
            ("metric",),
            np64(mc_mean.mean(-1)) if spaces else np.full(len(names), np.nan),
        ),
        "agreement": (("metric", "metric_other"), np64(agreement)),
        "agreement_per_sample": (("metric", "metric_other", "sample"), np64(agreement_per_sample)),
        "agreement_per_sample_mean": (("metric", "metric_other"), np64(agreement_mean)),
        "split_half": (("metric", "split"), np64(split_half)),
        "split_half_mean": (("metric",), np64(split_mean)),
    }
    if baseline is not None:
        win_rate, p_value = random_baseline_separation(q, baseline, directions)
        beats = (win_rate > 0.5) & (p_value < alpha)
        variables.update(
            {
                "baseline_score": (("metric", "sample"), np64(baseline)),
                "win_rate_vs_random": (("metric", "explainer"), np64(win_rate)),
                "p_vs_random": (("metric", "explainer"), np64(p_value)),
                "beats_random": (("metric", "explainer"), beats.cpu().numpy().astype(np.int8)),
                "separates_random": (("metric",), beats.all(-1).cpu().numpy().astype(np.int8)),
            }
        )
    coords = {
        "metric": names,
        "explainer": list(method_names),
        "test": [t.name for t in suite],
        "space": list(spaces),
        "iteration": np.arange(iterations),
        "perturbation": np.arange(perturbations),
        "sample": np.arange(b),
        "metric_other": names,
        "split": np.arange(split_half.shape[-1]),
        "family": ("metric", [p.spec.family for p in planned]),
        "higher_is_better": (
            "metric",
            np.array([_direction_code(d) for d in directions], dtype=np.int8),
        ),
        "test_space": ("test", [t.space for t in suite]),
        "test_kind": ("test", [t.kind for t in suite]),
        "test_magnitude": ("test", np.array([t.magnitude for t in suite], dtype=np.float64)),
        "prediction": ("sample", prediction.cpu().numpy().astype(np.int64)),
        "target": ("sample", target.cpu().numpy().astype(np.int64)),
    }
    ds = xr.Dataset(variables, coords=coords)
    descriptions = {
        "score": "unperturbed score per metric, method and sample",
        "score_perturbed": "score after each perturbation (NaN where the metric is undefined)",
        "kept": (
            "1 where the sample is kept: prediction unchanged (resilience) or changed (adversary)"
        ),
        "iac": (
            "intra-consistency: mean Wilcoxon p (resilience) or 1 - p (adversary) over methods and "
            "perturbations"
        ),
        "iec": (
            "inter-consistency: share of unchanged method ranks (resilience) or of scores that got "
            "worse in the metric's direction (adversary)"
        ),
        "mc": "meta-consistency: mean of IAC_NR, IAC_AR, IEC_NR, IEC_AR of a space, per iteration",
        "mc_mean": "MC averaged over iterations",
        "mc_std": "population std of MC over iterations",
        "agreement": "Kendall tau-b between two metrics' method rankings by mean score",
        "split_half": (
            "Kendall tau-b between the method rankings of two random halves of the samples"
        ),
    }
    for name, text in descriptions.items():
        ds[name].attrs["description"] = text
    return ds
