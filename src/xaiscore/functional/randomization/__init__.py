"""Randomization sanity checks: do explanations change when the model does?

* :func:`mprt`: Model Parameter Randomisation Test (Adebayo et al. 2018), layer
  by layer, one similarity per layer and sample (Hedström et al. 2023).
* :func:`smooth_mprt`: sMPRT, the same on explanations averaged over noisy
  copies of the input (Hedström et al. 2023).
* :func:`efficient_mprt`: eMPRT, the relative rise of the explanation's
  histogram entropy after full randomization (Hedström et al. 2023).
* :func:`random_logit`: similarity between the explanation of the target class
  and of a random other class (Sixt et al. 2020).

**The explainer protocol.** These metrics re-explain *other* models (random
copies of ``model``), so they take an explainer *factory*: ``explainer_factory(model)``
returns a batched :class:`xaiscore.explainers.ExplainFn` ``(x, target) -> a``
bound to that model. Every builder in :mod:`xaiscore.explainers` that takes the
model first is one, e.g. ``lambda m: captum_explainer(m, "Saliency")``
or ``lambda m: make_explainer("IntegratedGradients", m)``. The factory is
called once per model (original and each randomization step); the explain
function it returns is called on chunks of at most ``max_batch_size`` items.

**The random baseline.** Binder et al. (2023) show that uninformative maps pass
MPRT easily, so every result carries ``baseline``: the same metric computed for
a random explainer, whose maps are i.i.d. uniform noise of the explanations'
shape, drawn afresh for every model and every class (from a generator seeded
with the first draw of ``generator``), with the same post-processing and
similarity. A method is only credible where it scores clearly better than
noise would *and* far from the model-independent explainer's worst case
(similarity 1).

Randomness: ``seed`` fixes the model re-initialisation (:func:`randomized_models`);
``generator`` (default: a CPU generator seeded with ``seed``) draws the sMPRT
noise, the random classes and the baseline maps. Results do not depend on
``max_batch_size``. The user's model is never modified: randomization works
on a deep copy, and the original explanations are computed on that copy too.

See ``docs/randomization.md`` for formulas, defaults and the differences from Quantus.
"""

from __future__ import annotations

from xaiscore._engine.explain_fn import ExplainerFactory
from xaiscore._engine.model_randomization import (
    LAYER_ORDERS,
    LayerOrder,  # noqa: F401 (a type of the signatures, importable from here as before)
    NoParameterisedLayersError,
    Reinit,  # noqa: F401
    parameterised_layers,
    randomized_models,
)
from xaiscore.functional.randomization._common import (
    Normalise,  # noqa: F401 (a type of the signatures, importable from here as before)
    RandomizationResult,
    RandomLogitResult,
    Summary,  # noqa: F401
)
from xaiscore.functional.randomization.class_specificity import random_logit
from xaiscore.functional.randomization.entropy import (
    BIN_RULES,
    BinRule,  # noqa: F401 (a type of the signatures, importable from here as before)
    efficient_mprt,
    histogram_entropy,
)
from xaiscore.functional.randomization.layerwise import mprt, smooth_mprt

__all__ = [
    "ExplainerFactory",
    "RandomizationResult",
    "RandomLogitResult",
    "mprt",
    "smooth_mprt",
    "efficient_mprt",
    "random_logit",
    "histogram_entropy",
    "BIN_RULES",
    # the model randomizer the kernels use (implemented in the private engine)
    "LAYER_ORDERS",
    "NoParameterisedLayersError",
    "parameterised_layers",
    "randomized_models",
]
