"""The offline demo: synthetic radiographs, a CNN and a ViT trained on the spot, their methods.

:func:`demo_config` is the configuration ``xaiscore demo`` runs (print it with
``xaiscore demo --print-config`` and save it as a starting point for your own
``xaiscore run``); :func:`run_demo` runs it. Nothing is downloaded.

Two models are trained (deterministically) and compared: the small CNN
(:class:`~xaiscore.harness.models.SmallCNN`), explained with Saliency,
Integrated Gradients and Grad-CAM, and a tiny vision transformer
(:class:`~xaiscore.explainers.tiny_models.TinyViT`), explained with attention
rollout, Chefer et al.'s relevance and RISE; both with the random baseline.
Their results share one ``results.nc`` (explainers ``"cnn/GradCAM"``,
``"vit/rollout"``, ..., see :mod:`xaiscore.harness.multimodel`) and one report.

The method options and the per-metric options below keep the whole demo
(training included) within a few minutes on two CPU cores: fewer noise samples
for the robustness metrics, fewer perturbation steps for the curves, no extra
random-map baseline inside the randomization metrics (the ``random`` method
is that baseline). For a real evaluation, raise them. The ViT's RISE uses 32
masks (one forward pass per mask, in every re-explaining metric too); it and the
MPRT family over the ViT's 18 layers are most of the ViT's share of the time.

Example:
    >>> config = demo_config(out="runs/demo", n=16)
    >>> [m.name for m in config.methods][:3], config.dataset.options["n"]
    (['Saliency', 'IntegratedGradients', 'GradCAM'], 16)
"""

from __future__ import annotations

import os
from typing import Any

from xaiscore.harness.config import RunConfig, parse_config

__all__ = ["demo_config", "demo_raw_config", "run_demo"]

#: Options the demo passes to metrics that take them (only where a registered kernel accepts the
#: key).
_DEMO_METRIC_OPTIONS: dict[str, dict[str, Any]] = {
    # localization: the default k = 1000 features (Quantus') is most of a 32x32 image
    "top_k_intersection": {"k": 0.02},
    # faithfulness: 16 steps for the deletion/insertion curves, 8 elsewhere, few random draws
    "deletion": {"features_per_step": 0.0625},
    "insertion": {"features_per_step": 0.0625},
    "pixel_flipping": {"features_per_step": 0.125},
    "faithfulness_estimate": {"features_per_step": 0.125},
    "monotonicity": {"features_per_step": 0.125},
    "monotonicity_correlation": {"n_samples": 2, "features_per_step": 0.125},
    "faithfulness_correlation": {"n_runs": 8},
    "region_perturbation": {"steps": 8},
    "irof": {"n_segments": 16},
    "sensitivity_n": {"n_subsets": 4, "subset_sizes": [0.05, 0.2, 0.5]},
    "road": {"percentages": [30, 70]},
    "infidelity": {"n_perturbations": 4},
    # robustness: 4 noisy copies per sample
    "max_sensitivity": {"n_samples": 4},
    "avg_sensitivity": {"n_samples": 4},
    "local_lipschitz_estimate": {"n_samples": 4},
    "relative_input_stability": {"n_samples": 4},
    "relative_output_stability": {"n_samples": 4},
    "relative_representation_stability": {"n_samples": 4},
    "continuity": {"n_steps": 4},
    # randomization: the `random` method is the random-map baseline
    "mprt": {"random_baseline": False},
    "smooth_mprt": {"n_samples": 2, "random_baseline": False},
    "efficient_mprt": {"random_baseline": False},
    "random_logit": {"random_baseline": False},
}


def _metric_options() -> dict[str, dict[str, Any]]:
    """The demo options of the registered metrics whose kernels take them."""
    import inspect

    from xaiscore.specs import list_metrics

    options = {}
    for spec in list_metrics():
        wanted = _DEMO_METRIC_OPTIONS.get(spec.name)
        if not wanted:
            continue
        try:
            parameters = inspect.signature(spec.fn).parameters
        except (ImportError, AttributeError):
            continue
        accepted = {k: v for k, v in wanted.items() if k in parameters}
        if accepted:
            options[spec.name] = accepted
    return options


#: The demo ViT: :class:`~xaiscore.explainers.tiny_models.TinyViT` with a convolutional stem.
#: On the four classes it needs 512 training images (256: about 60 % accuracy after 30 epochs) and
#: stops at 90 % running accuracy (about 80 % on held-out images, in a few epochs).
DEMO_VIT_TRAIN: dict[str, Any] = {"n": 512, "epochs": 30, "lr": 2e-3, "stop_at_accuracy": 0.9}

#: The demo's classes: every lesion kind of the synthetic dataset, so that 2 x 2 mosaics can show
#: four different classes (the grid pointing game) and Focus's three.
DEMO_CLASSES: tuple[str, ...] = ("No Finding", "Nodule", "Mass", "Opacity")

#: The demo's mosaics (``[mosaics]``): few, and "confident" at 0.9 (the demo models reach 0.99 on
#: too few images of some classes; Rao et al. use 0.99 with ImageNet models).
DEMO_MOSAICS: dict[str, Any] = {"grid": 2, "num_mosaics": 8, "min_confidence": 0.9}

#: RISE in the demo: few, coarse masks (the paper uses 4000 masks on a 7 x 7 grid).
DEMO_RISE: dict[str, Any] = {"n_masks": 32, "grid_size": 4, "p": 0.5, "max_batch_size": 256}


def demo_raw_config(*, out: str | os.PathLike[str] = "xaiscore-demo", n: int = 32, size: int = 32,
                    device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """The demo configuration as plain values (what a TOML/YAML file would hold).

    Two models (a ``[models]`` table): the CNN, explained with gradient methods and Grad-CAM,
    and a tiny vision transformer, explained with attention rollout, Chefer et al.'s relevance
    and RISE (few masks: it costs a forward pass per mask in every re-explaining metric); both
    with the random baseline, the CNN also with the constant one.
    """
    return {
        "out": os.fspath(out),
        "seed": seed,
        "device": device,
        "batch_size": 16,
        "max_batch_size": 128,
        "target": "label",
        "on_error": "record",
        "dataset": {"kind": "synthetic", "n": n, "size": [size, size], "seed": seed,
                    "classes": list(DEMO_CLASSES)},
        "mosaics": dict(DEMO_MOSAICS),
        "models": {
            "cnn": {"kind": "demo", "train": {"n": 256, "epochs": 20, "stop_at_accuracy": 0.98}},
            "vit": {"kind": "demo", "architecture": "vit", "train": dict(DEMO_VIT_TRAIN),
                    # the attention modules rollout and Chefer read (this is also their default)
                    "explainer_options": {"attention_modules": "blocks.*.attn.attn_drop"}},
        },
        "methods": [
            {"method": "Saliency", "models": ["cnn"]},
            {"method": "IntegratedGradients", "n_steps": 8, "models": ["cnn"]},
            {"method": "LayerGradCam", "name": "GradCAM", "layer": "features.6", "models": ["cnn"]},
            {"method": "AttentionRollout", "name": "rollout", "head_fusion": "mean",
             "discard_ratio": 0.0, "models": ["vit"]},
            {"method": "CheferRelevance", "name": "chefer", "models": ["vit"]},
            {"method": "RISE", **DEMO_RISE, "models": ["vit"]},
            "random",
            {"method": "constant", "models": ["cnn"]},
        ],
        "metrics": {"include": "all", "options": _metric_options()},
    }


def demo_config(*, out: str | os.PathLike[str] = "xaiscore-demo", n: int = 32, size: int = 32,
                device: str = "cpu", seed: int = 0) -> RunConfig:
    """The :class:`RunConfig` of ``xaiscore demo``."""
    return parse_config(demo_raw_config(out=out, n=n, size=size, device=device, seed=seed),
                        source="<demo>")


def run_demo(*, out: str | os.PathLike[str] = "xaiscore-demo", n: int = 32, size: int = 32,
             device: str = "cpu",
             seed: int = 0, progress: bool = False, resume: bool = True) -> Any:
    """Run the demo: train, explain, score, write ``out/results.nc`` and ``out/report.html``.

    Returns:
        The results Dataset.
    """
    from xaiscore.harness.runner import run_config

    return run_config(demo_config(out=out, n=n, size=size, device=device, seed=seed),
                      progress=progress,
                      resume=resume)
