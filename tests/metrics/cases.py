"""Shared inputs, options and references for the metric-class tests.

One small dataset (float64, 12 x 12 images, 7 samples) that every registered metric can
score, the options that keep each metric fast, and the reference each class must match,
computed by calling the kernel directly (never through the class).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tests.robustness_helpers import make_cnn, mixing_explainer
from xaiscore._engine.random import derive_seed
from xaiscore.specs import MetricSpec

N, SIZE, CLASSES = 7, 12, 4
CALLABLES = ("model", "forward_fn", "explain_fn", "explainer_factory")
INPUTS = ("x", "a", "mask", "target", "segments", "tiles")

#: Options that keep every metric fast on 12 x 12 inputs.
SMALL: dict[str, dict[str, Any]] = {
    "top_k_intersection": {"k": 10},
    "mst_compactness": {"k": 5},
    "pointing_accuracy": {"num_classes": CLASSES},
    "deletion": {"features_per_step": 16},
    "insertion": {"features_per_step": 16},
    "pixel_flipping": {"features_per_step": 16},
    "region_perturbation": {"patch_size": 4, "steps": 4},
    "selectivity": {"patch_size": 4},
    "irof": {"n_segments": 8},
    "faithfulness_estimate": {"features_per_step": 16},
    "monotonicity": {"features_per_step": 16},
    "monotonicity_correlation": {"features_per_step": 16, "n_samples": 3},
    "road": {"percentages": (20, 50)},
    "infidelity": {"n_perturbations": 3},
    "faithfulness_correlation": {"subset_size": 16, "n_runs": 4},
    "sensitivity_n": {"subset_sizes": (8, 32), "n_subsets": 3},
    "non_sensitivity": {"patch_size": 4},
    "max_sensitivity": {"n_samples": 3},
    "avg_sensitivity": {"n_samples": 3},
    "local_lipschitz_estimate": {"n_samples": 3},
    "relative_input_stability": {"n_samples": 3},
    "relative_output_stability": {"n_samples": 3},
    "relative_representation_stability": {"n_samples": 3, "layer": "2"},
    "continuity": {"n_steps": 3},
    "consistency": {"k": 3},
    "smooth_mprt": {"n_samples": 2},
    "random_logit": {"num_classes": CLASSES},
}


def model_explainer(model: torch.nn.Module):
    """A cheap explainer that depends on the model (for the randomization metrics)."""

    def explain(x: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            score = model(x).gather(1, target[:, None])
        return torch.tanh(x * score.reshape(-1, 1, 1, 1))

    return explain


def dataset(seed: int = 0) -> dict[str, Tensor]:
    """Inputs every metric can score: explanations drawn around three prototypes (so that the
    set-level metrics find explanation-mates), masks with one empty, integer targets."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(N, 1, SIZE, SIZE, generator=g, dtype=torch.float64)
    prototypes = torch.zeros(3, SIZE * SIZE, dtype=torch.float64)
    for p in range(3):
        where = torch.randperm(SIZE * SIZE, generator=g)[:3]
        prototypes[p, where] = torch.tensor([5.0, -4.0, 3.0], dtype=torch.float64)
    which = torch.tensor([0, 1, 0, 2, 1, 0, 2])
    scale = 1 + 0.2 * torch.rand(N, 1, generator=g, dtype=torch.float64)
    # one background shared by all samples: no tied maxima, and no feature that separates samples
    background = 0.01 * torch.rand(SIZE * SIZE, generator=g, dtype=torch.float64)
    a = prototypes[which] * scale + background
    mask = torch.zeros(N, 1, SIZE, SIZE, dtype=torch.bool)
    for i in range(N):
        r, c = torch.randint(0, SIZE - 4, (2,), generator=g).tolist()
        mask[i, :, r : r + 5, c : c + 5] = True
    mask[3] = False
    target = torch.tensor([0, 1, 2, 3, 1, 0, 2])
    # target tiles of 2 x 2 mosaics (grid pointing game, focus): one or two per sample
    tiles = torch.zeros(N, 4, dtype=torch.bool)
    tiles[torch.arange(N), torch.arange(N) % 4] = True
    tiles[::2, 3] = True
    return {"x": x, "a": a.reshape(N, 1, SIZE, SIZE), "mask": mask, "target": target,
            "tiles": tiles}


def callables() -> dict[str, Any]:
    model = make_cnn(n_classes=CLASSES)
    return {
        "model": model,
        "forward_fn": model,
        "explain_fn": mixing_explainer,
        "explainer_factory": model_explainer,
    }


def construct(cls: type, spec: MetricSpec, tools: dict[str, Any], **overrides: Any) -> Any:
    """``cls`` built with the callables its constructor takes and the small options."""
    parameters = inspect.signature(cls).parameters
    kwargs = {
        name: tools[name]
        for name in CALLABLES
        if name in parameters and parameters[name].default is inspect.Parameter.empty
    }
    return cls(**kwargs, **SMALL.get(spec.name, {}), **overrides)


def update_names(metric: Any) -> list[str]:
    return [n for n in metric.update_signature.parameters if n != "sample_index"]


def feed(
    metric: Any,
    data: dict[str, Tensor],
    bounds: list[tuple[int, int]],
    *,
    index: Tensor | None = None,
) -> None:
    """Update ``metric`` batch by batch (``[start, stop)`` bounds), by keyword."""
    names = [n for n in update_names(metric) if n in data]
    for start, stop in bounds:
        batch = {n: data[n][start:stop] for n in names}
        if index is not None:
            batch["sample_index"] = index[start:stop]
        metric.update(**batch)


def random_bounds(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """A random split of ``range(n)`` into consecutive batches of random sizes."""
    cuts = sorted(rng.choice(np.arange(1, n), size=rng.integers(1, n), replace=False).tolist())
    edges = [0, *cuts, n]
    return list(zip(edges[:-1], edges[1:]))


def kernel_call(
    spec: MetricSpec,
    tools: dict[str, Any],
    data: dict[str, Tensor],
    rows: slice | Tensor,
    **random: Any,
) -> Any:
    """The kernel on ``rows`` of the data, with the small options and ``random`` arguments."""
    parameters = inspect.signature(spec.fn).parameters
    kwargs = {name: tools[name] for name in CALLABLES if name in spec.needs}
    kwargs.update(
        {
            name: data[name][rows]
            for name in INPUTS
            if name in parameters and name in data and (name in spec.needs or name == "a")
        }
    )
    return spec.fn(**kwargs, **SMALL.get(spec.name, {}), **random)


def random_arguments(
    spec: MetricSpec, seed: int | None, sample_seed: int | None = None
) -> dict[str, Any]:
    """What the class passes for randomness: a generator (seeded ``seed`` for the stream, the
    sample's derived seed per sample) and, for the MPRT family, ``seed`` itself."""
    parameters = inspect.signature(spec.fn).parameters
    if "generator" not in parameters:
        return {}
    start = seed if sample_seed is None else sample_seed
    out: dict[str, Any] = {"generator": torch.Generator().manual_seed(start)}
    if "seed" in parameters and parameters["seed"].default is not None:
        out["seed"] = seed
    return out


def scores_of(result: Any) -> tuple[Tensor, Tensor | None]:
    if isinstance(result, Tensor):
        return result, None
    return result.score, getattr(result, "curve", None)


def reference(
    spec: MetricSpec,
    tools: dict[str, Any],
    data: dict[str, Tensor],
    seeding: str | None,
    *,
    seed: int = 0,
    keys: list[int] | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Per-sample scores (and curves) the class must reproduce.

    ``seeding="stream"``: one kernel call on the whole set with a generator seeded ``seed``;
    ``"per_sample"``: one call per sample with a generator seeded ``derive_seed(seed, key)``,
    ``key`` the sample's index; ``None``: one deterministic call.
    """
    if seeding != "per_sample":
        extra = random_arguments(spec, seed) if seeding == "stream" else {}
        return scores_of(kernel_call(spec, tools, data, slice(None), **extra))
    keys = list(range(N)) if keys is None else keys
    parts = [
        scores_of(
            kernel_call(
                spec,
                tools,
                data,
                slice(i, i + 1),
                **random_arguments(spec, seed, derive_seed(seed, keys[i])),
            )
        )
        for i in range(N)
    ]
    curves = None if parts[0][1] is None else torch.cat([p[1] for p in parts])
    return torch.cat([p[0] for p in parts]), curves


def nan_equal(got: Tensor, expected: Tensor, *, exact: bool = False) -> None:
    got, expected = got.detach().cpu(), expected.detach().cpu()
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert torch.equal(torch.isnan(got), torch.isnan(expected)), (got, expected)
    if exact:
        assert torch.equal(got.nan_to_num(0.0), expected.nan_to_num(0.0)), (got, expected)
    else:
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12, equal_nan=True)


def nan_mean(t: Tensor) -> float:
    defined = t[~torch.isnan(t)]
    return math.nan if defined.numel() == 0 else float(defined.mean())
