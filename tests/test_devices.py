"""Every public metric on every available device: results stay on the input's device and match CPU.

The parametrisation always holds ``"cpu"`` (so the checks themselves run on every machine) and adds
``"cuda"`` when a GPU is present; no session of this project has had one yet, so on a GPU host
``python -m pytest tests/test_devices.py`` is the first thing to run.

For each metric the same inputs (drawn on CPU) are moved to the device, and:

* every tensor in the result lives on that device;
* metrics without randomness match the CPU result (float32 reductions may differ in the last
  bits, hence a tolerance); the ones that compare model outputs against thresholds or ranks
  (where a last-bit difference may flip a comparison) are checked for shape and finiteness;
* metrics that draw noise or randomize the model are seeded and give the same result twice
  (their random numbers come from generators on the device, so they are not compared with CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from tests.robustness_helpers import make_cnn
from xaiscore import functional as F
from xaiscore.explainers import captum_explainer

pytest.importorskip("captum")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
BATCH, CLASSES, SIZE = 3, 5, 16


@pytest.fixture(autouse=True)
def full_precision_matmul():
    """No TF32 for this module's CUDA runs (cuDNN allows it for convolutions by default on recent
    GPUs, which changes conv outputs in the third decimal and is the user's choice, not ours)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def cpu_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(BATCH, 1, SIZE, SIZE, generator=g)
    a = torch.randn(BATCH, 1, SIZE, SIZE, generator=g)
    mask = torch.zeros(BATCH, 1, SIZE, SIZE, dtype=torch.bool)
    mask[0, :, 2:8, 3:9] = True
    mask[1, :, 8:14, 0:5] = True
    mask[2, :, 4:12, 4:12] = True
    target = torch.tensor([0, 3, 1])
    tiles = torch.tensor([[True, False, False, True], [False, True, False, False],
                          [False, False, True, True]])
    return {"x": x, "a": a, "mask": mask, "target": target, "tiles": tiles}


def result_tensors(result: Any) -> list[torch.Tensor]:
    """The tensors of a metric's result: the tensor itself, or the tensor fields of its NamedTuple.
    """
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, tuple):
        return [value for value in result if isinstance(value, torch.Tensor)]
    raise TypeError(
        f"Expected a tensor or a NamedTuple of tensors, but got {type(result).__name__}.")


def on_device(device: str) -> tuple[dict[str, torch.Tensor], torch.nn.Module]:
    inputs = {name: value.to(device) for name, value in cpu_inputs().items()}
    return inputs, make_cnn(n_classes=CLASSES, dtype=torch.float32).to(device)


def assert_on(tensors: list[torch.Tensor], device: str) -> None:
    assert tensors, "the metric returned no tensor"
    for tensor in tensors:
        assert tensor.device.type == torch.device(device).type


# --- Metrics without randomness: the device result equals the CPU result --------------------------

Run = Callable[[dict[str, torch.Tensor], torch.nn.Module], Any]

DETERMINISTIC: dict[str, Run] = {
    "pointing_game": lambda i, m: F.pointing_game(i["a"], i["mask"]),
    "energy_pointing_game": lambda i, m: F.energy_pointing_game(i["a"], i["mask"]),
    "relevance_mass_accuracy": lambda i, m: F.relevance_mass_accuracy(i["a"], i["mask"]),
    "relevance_rank_accuracy": lambda i, m: F.relevance_rank_accuracy(i["a"], i["mask"]),
    "top_k_intersection": lambda i, m: F.top_k_intersection(i["a"], i["mask"], k=20),
    "attribution_localisation": lambda i, m: F.attribution_localisation(i["a"], i["mask"]),
    "localization_auc": lambda i, m: F.localization_auc(i["a"], i["mask"]),
    "localization_iou": lambda i, m: F.localization_iou(i["a"], i["mask"]),
    "pointing_accuracy": lambda i, m: F.pointing_accuracy(i["a"], i["mask"], i["target"], num_classes=CLASSES),  # noqa: E501
    "sparseness": lambda i, m: F.sparseness(i["a"]),
    "complexity": lambda i, m: F.complexity(i["a"]),
    "effective_complexity": lambda i, m: F.effective_complexity(i["a"]),
    "mst_compactness": lambda i, m: F.mst_compactness(i["a"], k=5),
    "deletion": lambda i, m: F.deletion(m, i["x"], i["a"], i["target"], features_per_step=16),
    "insertion": lambda i, m: F.insertion(m, i["x"], i["a"], i["target"], features_per_step=16),
    "pixel_flipping": lambda i, m: F.pixel_flipping(m, i["x"], i["a"], i["target"], features_per_step=8),  # noqa: E501
    "region_perturbation": lambda i, m: F.region_perturbation(m, i["x"], i["a"], i["target"], patch_size=4,  # noqa: E501
                                                              steps=8, baseline="zeros"),
    "selectivity": lambda i, m: F.selectivity(m, i["x"], i["a"], i["target"], patch_size=4),
    "irof": lambda i, m: F.irof(m, i["x"], i["a"], i["target"], n_segments=8),
    "faithfulness_estimate": lambda i, m: F.faithfulness_estimate(m, i["x"], i["a"], i["target"],
                                                                  features_per_step=8),
    "non_sensitivity": lambda i, m: F.non_sensitivity(m, i["x"], i["a"], i["target"], patch_size=4),
    "mask_to_boxes": lambda i, m: F.mask_to_boxes(i["mask"]),
    "pxap_from_counts": lambda i, m: F.pxap_from_counts(*F.pxap_statistics(i["a"], i["mask"], thresholds=50)[:2]),  # noqa: E501
    "grid_pointing_game": lambda i, m: F.grid_pointing_game(i["a"], i["tiles"]),
    "focus": lambda i, m: F.focus(i["a"], i["tiles"]),
    "tile_index": lambda i, m: F.tile_index((5, 7), 3, device=i["a"].device),
}

# Deterministic, but a comparison of model outputs (a threshold, an argmax, a strict increase)
# may flip on a last-bit difference between devices: shape, dtype and device only.
DISCONTINUOUS: dict[str, Run] = {
    "monotonicity": lambda i, m: F.monotonicity(m, i["x"], i["a"], i["target"], features_per_step=8),  # noqa: E501
    "sufficiency": lambda i, m: F.sufficiency(m, i["x"], i["a"]),
    "completeness": lambda i, m: F.completeness(m, i["x"], i["a"], i["target"]),
    "consistency": lambda i, m: F.consistency(m, i["x"], i["a"], k=3),
    # Box protocols threshold the map: a last-bit difference may move a pixel across a threshold.
    "box_accuracy": lambda i, m: F.box_accuracy(i["a"], i["mask"]),
    "max_box_accuracy": lambda i, m: F.max_box_accuracy(i["a"], i["mask"], version=2, thresholds=50),  # noqa: E501
    "max_box_accuracy_statistics": lambda i, m: F.max_box_accuracy_statistics(i["a"], i["mask"], thresholds=50),  # noqa: E501
    "max_box_accuracy_from_statistics": lambda i, m: F.max_box_accuracy_from_statistics(
        *F.max_box_accuracy_statistics(i["a"], i["mask"], thresholds=50)[:2]),
    "pxap": lambda i, m: F.pxap(i["a"], i["mask"], thresholds=50),
    "pxap_statistics": lambda i, m: F.pxap_statistics(i["a"], i["mask"], thresholds=50),
    "tune_threshold": lambda i, m: F.tune_threshold(i["a"], i["mask"]),
}


def cpu_and_device(run: Run, device: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The result tensors of ``run`` on ``device`` (checked to live there), paired with the CPU
    ones."""
    expected = result_tensors(run(*on_device("cpu")))
    got = result_tensors(run(*on_device(device)))
    assert_on(got, device)
    assert len(got) == len(expected)
    return list(zip(got, expected))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_deterministic_metric_matches_cpu(name: str, device: str) -> None:
    for value, reference in cpu_and_device(DETERMINISTIC[name], device):
        assert value.dtype == reference.dtype
        torch.testing.assert_close(value.cpu(), reference, rtol=1e-4, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(DISCONTINUOUS))
def test_discontinuous_metric_runs_on_device(name: str, device: str) -> None:
    for value, reference in cpu_and_device(DISCONTINUOUS[name], device):
        assert value.shape == reference.shape and value.dtype == reference.dtype
        if value.is_floating_point():
            assert torch.equal(value.isnan().cpu(), reference.isnan())


# --- Metrics that draw random numbers or re-explain: same seed, same result on the device ---------


def seeded(run: Callable[..., Any]) -> Run:
    """``run(inputs, model, generator)`` with a fresh CPU generator seeded with 0 on every call."""
    return lambda i, m: run(i, m, torch.Generator().manual_seed(0))


def saliency(model: torch.nn.Module):
    return captum_explainer(model, "Saliency")


def noisy(i, m, g, metric, **options):
    return metric(i["x"], i["a"], i["target"], explain_fn=saliency(m), n_samples=4, generator=g,
                  **options)


def stability(i, m, g, metric, **options):
    return metric(m, i["x"], i["a"], i["target"], explain_fn=saliency(m), n_samples=4, generator=g,
                  **options)


def _mosaics(i, g):
    """Mosaics of eight 3 x 3 images of four classes (class c: channel c bright) on the inputs'
    device."""
    images = torch.eye(4, device=i["x"].device).repeat_interleave(2, 0)[:, :, None, None].expand(
        8, 4, 3, 3)
    return F.make_mosaics(lambda x: 10.0 * x.mean(dim=(2, 3)), images, num_mosaics=3,
                          target_tiles=2,
                          min_confidence=0.9, generator=g)


RANDOM: dict[str, Run] = {
    "make_mosaics": seeded(lambda i, m, g: _mosaics(i, g)),
    "region_perturbation_uniform": seeded(lambda i, m, g: F.region_perturbation(
        m, i["x"], i["a"], i["target"], patch_size=4, steps=8, generator=g)),
    "monotonicity_correlation": seeded(lambda i, m, g: F.monotonicity_correlation(
        m, i["x"], i["a"], i["target"], features_per_step=16, n_samples=3, generator=g)),
    "road": seeded(lambda i, m, g: F.road(m, i["x"], i["a"], i["target"], percentages=(20, 50), generator=g)),  # noqa: E501
    "infidelity": seeded(lambda i, m, g: F.infidelity(m, i["x"], i["a"], i["target"], n_perturbations=4,  # noqa: E501
                                                      generator=g)),
    "faithfulness_correlation": seeded(lambda i, m, g: F.faithfulness_correlation(
        m, i["x"], i["a"], i["target"], subset_size=16, n_runs=5, generator=g)),
    "sensitivity_n": seeded(lambda i, m, g: F.sensitivity_n(
        m, i["x"], i["a"], i["target"], subset_sizes=(8, 32), n_subsets=4, generator=g)),
    "max_sensitivity": seeded(lambda i, m, g: noisy(i, m, g, F.max_sensitivity)),
    "avg_sensitivity": seeded(lambda i, m, g: noisy(i, m, g, F.avg_sensitivity)),
    "local_lipschitz_estimate": seeded(lambda i, m, g: noisy(i, m, g, F.local_lipschitz_estimate)),
    "continuity": seeded(lambda i, m, g: F.continuity(i["x"], i["a"], i["target"], explain_fn=saliency(m),  # noqa: E501
                                                      n_steps=4)),
    "relative_input_stability": seeded(lambda i, m, g: stability(i, m, g, F.relative_input_stability)),  # noqa: E501
    "relative_output_stability": seeded(lambda i, m, g: stability(i, m, g, F.relative_output_stability)),  # noqa: E501
    "relative_representation_stability": seeded(lambda i, m, g: F.relative_representation_stability(
        m, i["x"], i["a"], i["target"], explain_fn=saliency(m), layer="2", n_samples=4,
        generator=g)),
    "mprt": seeded(lambda i, m, g: F.mprt(m, i["x"], i["target"], explainer_factory=saliency, generator=g)),  # noqa: E501
    "smooth_mprt": seeded(lambda i, m, g: F.smooth_mprt(m, i["x"], i["target"], explainer_factory=saliency,  # noqa: E501
                                                        n_samples=3, generator=g)),
    "efficient_mprt": seeded(lambda i, m, g: F.efficient_mprt(m, i["x"], i["target"], explainer_factory=saliency,  # noqa: E501
                                                              generator=g)),
    "random_logit": seeded(lambda i, m, g: F.random_logit(m, i["x"], i["target"], explainer_factory=saliency,  # noqa: E501
                                                          num_classes=CLASSES, generator=g)),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_metric_is_seeded_on_device(name: str, device: str) -> None:
    inputs, model = on_device(device)
    before = [p.detach().clone() for p in model.parameters()]
    first = result_tensors(RANDOM[name](inputs, model))
    second = result_tensors(RANDOM[name](inputs, model))
    reference = result_tensors(RANDOM[name](*on_device("cpu")))
    assert_on(first, device)
    for one, two, cpu in zip(first, second, reference):
        assert one.shape == cpu.shape and one.dtype == cpu.dtype
        # Same seed, same draws; a GPU's gradient kernels may sum in another order, hence the
        # tolerance.
        torch.testing.assert_close(one, two, rtol=1e-5, atol=1e-6, equal_nan=True)
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q), "the metric modified the user's model"
    if device == "cpu":
        for one, cpu in zip(first, reference):
            torch.testing.assert_close(one, cpu, rtol=0, atol=0, equal_nan=True)


def test_every_public_metric_is_covered() -> None:
    covered = set(DETERMINISTIC) | set(DISCONTINUOUS) | {name.removesuffix("_uniform")
                                                         for name in RANDOM}
    helpers = {"boxes_to_mask"}
    assert set(F.__all__) - helpers <= covered, sorted(set(F.__all__) - helpers - covered)
