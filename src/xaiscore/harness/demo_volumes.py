"""The volume demo: the synthetic 3-D phantom, a small 3-D CNN trained on the spot, 3-D methods,
every metric.

``xaiscore demo --volumes`` runs :func:`volume_demo_config` (``--print-config`` prints it):
the same harness as the 2-D demo on volumes ``(1, D, H, W)`` of
:func:`~xaiscore.harness.data.synthetic3d.make_synthetic_volumes`, with Saliency, Integrated
Gradients, 3-D Grad-CAM (on the last convolution) and the random and constant baselines. Every
registered metric that runs on volumes is scored (``spec.volumes is None``; the mosaic protocols
and MST-C are 2-D only and left out). The options keep the whole run (training included) within
about three minutes on two CPU cores; the report shows three orthogonal slices through each
example's lesion centre (:mod:`~xaiscore.harness.report_slices`).

Example:
    >>> config = volume_demo_config(out="runs/demo3d", n=8)
    >>> config.dataset.kind, config.dataset.options["size"], [m.name for m in config.methods][2]
    ('synthetic3d', [24, 24, 24], 'GradCAM')
"""

from __future__ import annotations

import os
from typing import Any

from xaiscore.harness.config import RunConfig, parse_config

__all__ = ["volume_demo_config", "volume_demo_raw_config", "run_volume_demo"]

#: Per-metric options on volumes: fewer steps and draws than the 2-D demo
#: (each model call is a volume).
_VOLUME_METRIC_OPTIONS: dict[str, dict[str, Any]] = {
    "top_k_intersection": {"k": 0.02},
    "max_box_accuracy": {"thresholds": 100},
    "pxap": {"thresholds": 100},
    "deletion": {"features_per_step": 0.125},
    "insertion": {"features_per_step": 0.125},
    "pixel_flipping": {"features_per_step": 0.125},
    "faithfulness_estimate": {"features_per_step": 0.125},
    "monotonicity": {"features_per_step": 0.125},
    "monotonicity_correlation": {"n_samples": 2, "features_per_step": 0.25},
    "faithfulness_correlation": {"n_runs": 4},
    "region_perturbation": {"steps": 4},
    "irof": {"n_segments": 8},
    "sensitivity_n": {"n_subsets": 2, "subset_sizes": [0.05, 0.5]},
    "road": {"percentages": [30, 70]},
    "infidelity": {"n_perturbations": 2},
    "max_sensitivity": {"n_samples": 2},
    "avg_sensitivity": {"n_samples": 2},
    "local_lipschitz_estimate": {"n_samples": 2},
    "relative_input_stability": {"n_samples": 2},
    "relative_output_stability": {"n_samples": 2},
    "relative_representation_stability": {"n_samples": 2},
    "continuity": {"n_steps": 2},
    "mprt": {"random_baseline": False},
    "smooth_mprt": {"n_samples": 2, "random_baseline": False},
    "efficient_mprt": {"random_baseline": False},
    "random_logit": {"random_baseline": False},
}


def _volume_metrics() -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The registered metrics that run on volumes, and the demo options their kernels take."""
    import inspect

    from xaiscore.specs import list_metrics

    names, options = [], {}
    for spec in list_metrics():
        if spec.volumes is not None:
            continue
        names.append(spec.name)
        wanted = _VOLUME_METRIC_OPTIONS.get(spec.name)
        if wanted:
            parameters = inspect.signature(spec.fn).parameters
            accepted = {k: v for k, v in wanted.items() if k in parameters}
            if accepted:
                options[spec.name] = accepted
    return names, options


def volume_demo_raw_config(*, out: str | os.PathLike[str] = "xaiscore-demo-volumes", n: int = 8,
                           size: int = 24,
                           device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """The volume demo configuration as plain values (what a TOML/YAML file would hold)."""
    names, options = _volume_metrics()
    return {
        "out": os.fspath(out),
        "seed": seed,
        "device": device,
        "batch_size": 8,
        "max_batch_size": 64,
        "target": "label",
        "on_error": "record",
        "dataset": {"kind": "synthetic3d", "n": n, "size": [size, size, size], "seed": seed},
        "model": {"kind": "demo", "train": {"n": 128, "epochs": 12, "batch_size": 16, "width": 4,
                                            "stop_at_accuracy": 0.98}},
        "methods": [
            "Saliency",
            {"method": "IntegratedGradients", "n_steps": 8},
            {"method": "LayerGradCam", "name": "GradCAM", "layer": "features.6"},
            "random",
            "constant",
        ],
        "metrics": {"include": names, "options": options},
    }


def volume_demo_config(*, out: str | os.PathLike[str] = "xaiscore-demo-volumes", n: int = 8,
                       size: int = 24,
                       device: str = "cpu", seed: int = 0) -> RunConfig:
    """The :class:`RunConfig` of ``xaiscore demo --volumes``."""
    return parse_config(volume_demo_raw_config(out=out, n=n, size=size, device=device, seed=seed),
                        source="<demo --volumes>")


def run_volume_demo(*, out: str | os.PathLike[str] = "xaiscore-demo-volumes", n: int = 8,
                    size: int = 24,
                    device: str = "cpu", seed: int = 0, progress: bool = False,
                    resume: bool = True) -> Any:
    """Run the volume demo: train, explain, score, write ``out/results.nc`` and ``out/report.html``.

    Returns:
        The results Dataset.
    """
    from xaiscore.harness.runner import run_config

    return run_config(volume_demo_config(out=out, n=n, size=size, device=device, seed=seed),
                      progress=progress,
                      resume=resume)
