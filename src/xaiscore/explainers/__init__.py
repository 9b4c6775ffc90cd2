"""Explain functions: the protocol, captum and Quantus-style adapters, random and constant
baselines.

An *explain function* maps a batch of inputs and target classes to attributions::

    explain_fn(x: (n, C, *S), target: (n,)) -> a: (n, C' , *S)    with C' = C or 1

It is **batched**: a re-explaining metric (robustness, randomization) calls it on
chunks of at most ``max_batch_size`` items drawn from a logical batch of
``B x n`` perturbed inputs, so it must treat rows independently (call
``model.eval()`` first: batch norm in training mode mixes rows) and must not
rely on being called with the original ``B`` rows.

This module provides

* :class:`ExplainFn`, the protocol, and :func:`check_explanation`, the one
  validation helper every re-explaining metric uses;
* :func:`captum_explainer`: one-line adapters for captum's attribution
  classes (Saliency, IntegratedGradients, InputXGradient, GuidedBackprop,
  DeepLift, LayerGradCam upsampled to the input size, Occlusion,
  GradientShap, NoiseTunnel/SmoothGrad, LRP, and FeatureAblation, KernelShap
  and Lime over superpixel grids or label maps). captum is an optional
  dependency (``pip install xaiscore[captum]``), imported on first use;
* :func:`rise_explainer`: RISE (Petsiuk et al. 2018), random masks in batched chunks;
* :func:`attention_rollout_explainer` and :func:`chefer_relevance_explainer`: attention
  rollout (Abnar and Zuidema 2020) and the gradient-weighted attention relevance of Chefer et
  al. (2021) for vision transformers, read through hooks on the attention modules;
* :func:`prototype_explainer`: similarity maps of part-prototype networks (ProtoPNet) as
  attribution maps; :mod:`~xaiscore.explainers.prototype_evaluation` scores the prototypes
  (consistency and stability, Huang et al. 2023, adapted to boxes);
* :mod:`~xaiscore.explainers.tiny_models`: a tiny ViT and a tiny ProtoPNet with the structure
  these explainers read;
* :func:`quantus_explainer`: wraps a Quantus-style numpy
  ``explain_func(model, inputs, targets, **kwargs)`` such as ``quantus.explain``;
* :func:`random_explainer` and :func:`constant_explainer`: baselines no real
  method should lose to (Binder et al. 2023 report a random-attribution
  baseline beside every randomization score);
* :func:`make_explainer`/:func:`list_explainers`: a registry of method names
  usable from a config file.

Modules: :mod:`~xaiscore.explainers.captum`, :mod:`~xaiscore.explainers.quantus`,
:mod:`~xaiscore.explainers.baselines`, :mod:`~xaiscore.explainers.rise`,
:mod:`~xaiscore.explainers.transformers`, :mod:`~xaiscore.explainers.prototypes`; the contract
(:class:`ExplainFn`,
:func:`check_explanation`) lives in the engine and is re-exported here.

See ``docs/explainers.md``.
"""


from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch  # noqa: F401  (the doctests use it)
from torch import nn

from xaiscore._checks import OptionError, check_option
from xaiscore._engine.explain_fn import ExplainerFactory, ExplainFn, check_explanation
from xaiscore.explainers._common import ModelStructureError
from xaiscore.explainers._feature_masks import grid_feature_mask
from xaiscore.explainers.baselines import (
    ConstantExplainer,
    RandomExplainer,
    constant_explainer,
    random_explainer,
)
from xaiscore.explainers.captum import CAPTUM_METHODS, CaptumExplainer, captum_explainer
from xaiscore.explainers.prototype_evaluation import (
    PrototypeScores,
    prototype_box_hits,
    prototype_consistency,
    prototype_peaks,
    prototype_stability,
    stability_noise,
)
from xaiscore.explainers.prototypes import PrototypeExplainer, prototype_explainer
from xaiscore.explainers.quantus import QuantusExplainer, quantus_explainer
from xaiscore.explainers.rise import RiseExplainer, rise_explainer
from xaiscore.explainers.transformers import (
    AttentionRolloutExplainer,
    CheferRelevanceExplainer,
    attention_rollout_explainer,
    chefer_relevance_explainer,
)

__all__ = [
    "ExplainFn",
    "ExplainerFactory",
    "check_explanation",
    "captum_explainer",
    "quantus_explainer",
    "random_explainer",
    "constant_explainer",
    "rise_explainer",
    "attention_rollout_explainer",
    "chefer_relevance_explainer",
    "prototype_explainer",
    "grid_feature_mask",
    "prototype_peaks",
    "prototype_box_hits",
    "prototype_consistency",
    "prototype_stability",
    "stability_noise",
    "PrototypeScores",
    "ModelStructureError",
    "make_explainer",
    "list_explainers",
    "CAPTUM_METHODS",
    "MODEL_EXPLAINERS",
    "CaptumExplainer",
    "QuantusExplainer",
    "RandomExplainer",
    "ConstantExplainer",
    "RiseExplainer",
    "AttentionRolloutExplainer",
    "CheferRelevanceExplainer",
    "PrototypeExplainer",
]


_BASELINES: dict[str, Callable[..., ExplainFn]] = {
    "random": random_explainer,
    "constant": constant_explainer,
}

_DETERMINISTIC = ("AttentionRollout", "CheferRelevance", "Prototype")

#: Explainers of this package that read the model (names for config files).
MODEL_EXPLAINERS: dict[str, Callable[..., ExplainFn]] = {
    "RISE": rise_explainer,
    "AttentionRollout": attention_rollout_explainer,
    "CheferRelevance": chefer_relevance_explainer,
    "Prototype": prototype_explainer,
}


def list_explainers() -> tuple[str, ...]:
    """The method names :func:`make_explainer` accepts.

    The baselines, ``"quantus"``, this package's model explainers (``"RISE"``,
    ``"AttentionRollout"``, ``"CheferRelevance"``, ``"Prototype"``) and the captum methods.

    Example:
        >>> {"random", "Saliency", "LayerGradCam", "RISE", "Lime"} <= set(list_explainers())
        True
    """
    return tuple(_BASELINES) + ("quantus",) + tuple(MODEL_EXPLAINERS) + tuple(CAPTUM_METHODS)


def make_explainer(method: str, model: nn.Module | None = None, /, **kwargs: Any) -> ExplainFn:
    """Build an explain function by name, e.g. from a config file entry ``{method: ..., **kwargs}``.

    ``"random"`` and ``"constant"`` build the baselines (no model needed),
    ``"quantus"`` wraps ``quantus.explain`` (``kwargs`` are its keyword
    arguments, e.g. ``method="Saliency"`` is passed as ``quantus_method``),
    ``"RISE"``, ``"AttentionRollout"``, ``"CheferRelevance"`` and ``"Prototype"``
    build :func:`rise_explainer`, :func:`attention_rollout_explainer`,
    :func:`chefer_relevance_explainer` and :func:`prototype_explainer`, and every
    name in :data:`CAPTUM_METHODS` builds :func:`captum_explainer`. Every model-based
    method accepts ``seed``/``generator``; the deterministic ones (``"AttentionRollout"``,
    ``"CheferRelevance"``, ``"Prototype"`` and captum's gradient methods) ignore them.

    Args:
        method: A name from :func:`list_explainers`.
        model: The network (needed by all but the baselines).
        **kwargs: Passed to the builder.

    Raises:
        OptionError: unknown method, or a model-based method without ``model``.

    Example:
        >>> explain = make_explainer("constant", value=2.0)
        >>> explain(torch.zeros(1, 1, 3), torch.zeros(1, dtype=torch.long)).tolist()
        [[[2.0, 2.0, 2.0]]]
    """
    check_option(method, "method", list_explainers())
    if method in _BASELINES:
        return _BASELINES[method](**kwargs)
    if model is None:
        raise OptionError(f"Expected a `model` for the explainer {method!r}, but got None.")
    if method == "quantus":
        if "quantus_method" in kwargs:
            kwargs["method"] = kwargs.pop("quantus_method")
        return quantus_explainer(model, **kwargs)
    if method in MODEL_EXPLAINERS:
        if method in _DETERMINISTIC:  # as captum's deterministic methods, they ignore a seed
            kwargs.pop("seed", None)
            kwargs.pop("generator", None)
        return MODEL_EXPLAINERS[method](model, **kwargs)
    return captum_explainer(model, method, **kwargs)
