"""The metric registry: one :class:`MetricSpec` per metric.

The harness, the docs and the meta-evaluation enumerate metrics through this
module without importing the kernels: a spec names its function by a dotted
path (``"package.module:function"``) that is imported only when
:attr:`MetricSpec.fn` is first used.

Example:
    >>> from xaiscore.specs import get_metric, list_metrics
    >>> spec = get_metric("pointing_game")
    >>> spec.family, spec.higher_is_better, sorted(spec.needs)
    ('localization', True, ['a', 'mask'])
    >>> "sparseness" in [s.name for s in list_metrics(family="complexity")]
    True
    >>> [s.name for s in list_metrics(scope="set")]
    ['pointing_accuracy', 'box_accuracy', 'max_box_accuracy', 'pxap', 'sufficiency', 'consistency']
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from xaiscore._checks import OptionError

__all__ = [
    "MetricSpec",
    "FAMILIES",
    "SCOPES",
    "INPUT_NAMES",
    "UnknownMetricError",
    "register",
    "get_metric",
    "list_metrics",
]

FAMILIES: tuple[str, ...] = (
    "localization",
    "complexity",
    "faithfulness",
    "axiomatic",
    "robustness",
    "randomization",
)

#: What a metric may need, by the keyword it takes it under.
INPUT_NAMES: frozenset[str] = frozenset(
    {"a", "mask", "x", "forward_fn", "target", "explain_fn", "explainer_factory", "model",
     "segments",
     "tiles"}
)

Output = Literal["score", "curve"]
Scope = Literal["sample", "set"]
SCOPES: tuple[str, ...] = ("sample", "set")


class UnknownMetricError(OptionError, KeyError):
    """No metric of that name is registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class MetricSpec:
    """Everything the harness and docs need to know about one metric.

    Attributes:
        name: Registry name, equal to the function's name.
        function: Dotted path ``"module:attribute"`` of the functional kernel.
        family: One of :data:`FAMILIES`.
        higher_is_better: ``True``/``False``, or ``None`` when the score has no
            better direction (e.g. effective complexity counts features).
        needs: The inputs the kernel takes, by keyword (subset of :data:`INPUT_NAMES`).
        stochastic: Whether the result depends on a ``generator``/``seed``.
        citation: The paper, short form.
        output: ``"score"`` for a ``(B,)`` tensor; ``"curve"`` for a result
            object carrying a ``(B,)`` summary and a ``(B, T)`` curve.
        description: One line for tables.
        defaults: Keyword options the harness passes unless the user overrides them.
        scope: ``"sample"``: a sample's score depends on that sample alone (any batch
            gives the same per-sample values); ``"set"``: the metric is defined over a
            reference set (the whole dataset), so it must be computed over everything at
            once (``xaiscore.metrics`` classes accumulate the set; see ``docs/metrics.md``).
        statistics: For a set-level metric computed from fixed-size sufficient statistics
            (summed over batches and processes), the dotted path ``"module:attribute"`` of
            its :class:`xaiscore.functional.set_statistics.SetStatistics`; ``None`` for a
            set-level metric that keeps its per-sample inputs and calls the kernel on the
            whole set (sufficiency, consistency).
        curve_scale: For curve metrics, what the curve's y values are with the default
            options (``"probability"``, ``"logit"``, ``"logit drop"``, ``"relative
            probability"``, ``"accuracy"``, ``"correlation"``, ``"similarity"``,
            ``"entropy"``); an option such as ``softmax`` may change it (the harness
            resolves it, :func:`xaiscore.harness.axes.curve_axes`).
        curve_x: What the curve's x positions count (e.g. ``"fraction of features removed"``).
        volumes: ``None`` when the kernel runs on volumes ``(B, C, D, H, W)``; otherwise why it
            does not (``tests/functional/test_volumes.py`` runs every metric on a volume).
    """

    name: str
    function: str
    family: str
    higher_is_better: bool | None
    needs: frozenset[str]
    stochastic: bool
    citation: str
    output: Output = "score"
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    scope: Scope = "sample"
    statistics: str | None = None
    curve_scale: str | None = None
    curve_x: str | None = None
    volumes: str | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise OptionError(f"Expected `family` in {FAMILIES}, but got {self.family!r}.")
        if self.scope not in SCOPES:
            raise OptionError(f"Expected `scope` in {SCOPES}, but got {self.scope!r}.")
        if self.statistics is not None and (self.scope != "set" or ":" not in self.statistics):
            raise OptionError(
                "Expected `statistics` only for a set-level metric, as 'module:attribute', but got "
                f"{self.statistics!r} with scope {self.scope!r}."
            )
        unknown = set(self.needs) - INPUT_NAMES
        if unknown:
            raise OptionError(
                f"Expected `needs` within {sorted(INPUT_NAMES)}, but got {sorted(unknown)}.")
        if ":" not in self.function:
            raise OptionError(
                f"Expected `function` as 'module:attribute', but got {self.function!r}.")
        object.__setattr__(self, "needs", frozenset(self.needs))

    @property
    def fn(self) -> Callable[..., Any]:
        """The kernel, imported on first use."""
        return _resolve(self.function)

    @property
    def set_statistics(self) -> Any:
        """The :class:`~xaiscore.functional.set_statistics.SetStatistics` named by ``statistics``
        (imported on first use), or ``None``."""
        return None if self.statistics is None else _resolve(self.statistics)


def _resolve(path: str) -> Any:
    module_name, attribute = path.split(":")
    return getattr(importlib.import_module(module_name), attribute)


_REGISTRY: dict[str, MetricSpec] = {}


def register(spec: MetricSpec, *, replace: bool = False) -> MetricSpec:
    """Add ``spec`` to the registry (users may register their own metrics)."""
    if spec.name in _REGISTRY and not replace:
        raise OptionError(f"A metric named {spec.name!r} is already registered; pass replace=True.")
    _REGISTRY[spec.name] = spec
    return spec


def get_metric(name: str) -> MetricSpec:
    """Return the spec registered under ``name``.

    Raises:
        UnknownMetricError: no such metric; the message lists close matches.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownMetricError(
            f"Expected a registered metric name, but got {name!r}.{hint} "
            "`xaiscore.specs.list_metrics()` lists them all."
        ) from None


def list_metrics(*, family: str | None = None, available: Iterable[str] | None = None,
                 scope: str | None = None) -> tuple[MetricSpec, ...]:
    """Registered specs in registration order, optionally filtered.

    Args:
        family: Keep only this family.
        available: Keep only metrics whose ``needs`` are all in this set of
            input names (e.g. ``{"a", "mask"}`` for precomputed maps and masks).
        scope: Keep only ``"sample"`` or only ``"set"`` metrics.
    """
    if family is not None and family not in FAMILIES:
        raise OptionError(f"Expected `family` in {FAMILIES}, but got {family!r}.")
    if scope is not None and scope not in SCOPES:
        raise OptionError(f"Expected `scope` in {SCOPES}, but got {scope!r}.")
    have = None if available is None else frozenset(available)
    return tuple(
        s
        for s in _REGISTRY.values()
        if (family is None or s.family == family) and (have is None or s.needs <= have)
        and (scope is None or s.scope == scope)
    )


def _spec(name: str, module: str, family: str, higher_is_better: bool | None, needs: Iterable[str],
          citation: str, *, stochastic: bool = False, output: Output = "score",
          description: str = "",
          scope: Scope = "sample", statistics: str | None = None,
          curve: tuple[str, str] | None = None, volumes: str | None = None,
          **defaults: Any) -> None:
    register(MetricSpec(
        name=name,
        function=f"xaiscore.functional.{module}:{name}",
        family=family,
        higher_is_better=higher_is_better,
        needs=frozenset(needs),
        stochastic=stochastic,
        citation=citation,
        output=output,
        description=description,
        defaults=defaults,
        scope=scope,
        statistics=None if statistics is None else (
            statistics if ":" in statistics else f"xaiscore.functional.{module}:{statistics}"
        ),
        curve_scale=None if curve is None else curve[0],
        curve_x=None if curve is None else curve[1],
        volumes=volumes,
    ))


# --- localization --------------------------------------------------------------------------
_LOC = ("a", "mask")
_spec("pointing_game", "localization", "localization", True, _LOC,
      "Zhang et al. 2018, Top-down neural attention by excitation backprop, IJCV",
      description="Is the maximum of the map inside the mask (optionally within a tolerance)?")
_spec("energy_pointing_game", "localization", "localization", True, _LOC,
      "Wang et al. 2020, Score-CAM, CVPR workshops",
      description="Share of the positive map energy inside the mask.")
_spec("relevance_mass_accuracy", "localization", "localization", True, _LOC,
      "Arras et al. 2022, CLEVR-XAI, Information Fusion",
      description="Share of the relevance mass inside the mask.")
_spec("relevance_rank_accuracy", "localization", "localization", True, _LOC,
      "Arras et al. 2022, CLEVR-XAI, Information Fusion",
      description="Share of the top-|mask| features that lie inside the mask.")
_spec("top_k_intersection", "localization", "localization", True, _LOC,
      "Theiner et al. 2022, Interpretable semantic photo geolocation, WACV",
      description="Share of the top-k features that lie inside the mask.")
_spec(
    "attribution_localisation",
    "localization",
    "localization",
    True,
    _LOC,
    "Kohlbrenner et al. 2020, Towards best practice in explaining neural network decisions with "
    "LRP, IJCNN",
    description="Share of positive attribution inside the mask (optionally weighted by mask size).",
)
_spec("localization_auc", "localization", "localization", True, _LOC,
      "Fawcett 2006, An introduction to ROC analysis, Pattern Recognition Letters",
      description="ROC-AUC of the map as a detector of mask pixels.")
_spec("localization_iou", "segmentation", "localization", True, _LOC,
      "Zhou et al. 2016, Learning deep features for discriminative localization (CAM), CVPR",
      description="IoU between the thresholded map and the mask.")
_spec(
    "pointing_accuracy",
    "pointing_accuracy",
    "localization",
    True,
    _LOC + ("target",),
    "Zhang et al. 2018, Top-down neural attention by excitation backprop, IJCV (TorchRay's "
    "benchmark protocol)",
    scope="set",
    statistics="POINTING_ACCURACY",
    description=(
        "Pointing-game hits / (hits + misses) per class over the set, then the mean over classes."
    ),
)

# Mosaic protocols: `tiles` flags which tiles of a mosaic show the target class
# (functional/mosaic.py).
_spec(
    "grid_pointing_game",
    "mosaic",
    "localization",
    True,
    ("a", "tiles"),
    "Rao, Böhle and Schiele 2022, Towards better understanding attribution methods, CVPR",
    volumes=(
        "a mosaic protocol: tiles of 2-D images laid out in a grid (no 3-D mosaics are defined)"
    ),
    description=(
        "Share of the positive attribution in the target tile of a mosaic of different classes "
        "(chance 1/n^2)."
    ),
)
_spec(
    "focus",
    "mosaic",
    "localization",
    True,
    ("a", "tiles"),
    "Arias-Duart et al. 2022, Focus! Rating XAI methods and finding biases, FUZZ-IEEE",
    volumes=(
        "a mosaic protocol: tiles of 2-D images laid out in a grid (no 3-D mosaics are defined)"
    ),
    description=(
        "Share of the positive relevance in the two target-class tiles of a 2 x 2 mosaic (chance "
        "1/2)."
    ),
)

# Box-level protocols: set scores (Wang et al.'s accuracy pools the boxes of the set, MaxBoxAcc
# picks the set's best threshold, PxAP pools its pixels), kept as summable counts
# (functional/box_statistics.py).
_BOX_STATISTICS = "xaiscore.functional.box_statistics:"
_spec(
    "box_accuracy",
    "box_localization",
    "localization",
    True,
    _LOC,
    "Wang et al. 2017, ChestX-ray8: hospital-scale chest X-ray database and benchmarks on "
    "weakly-supervised classification and localization of common thorax diseases, CVPR",
    scope="set",
    statistics=_BOX_STATISTICS + "BOX_ACCURACY",
    description=(
        "Share of ground-truth boxes hit (IoBB > T) by the boxes of the thresholded map's regions."
    ),
)
_spec(
    "max_box_accuracy",
    "box_localization",
    "localization",
    True,
    _LOC,
    "Choe et al. 2020, Evaluating weakly supervised object localization methods right, CVPR",
    output="curve",
    curve=("accuracy", "fraction of the normalised map range (threshold)"),
    scope="set",
    statistics=_BOX_STATISTICS + "MAX_BOX_ACCURACY",
    description=(
        "Set score: best share of samples over map thresholds whose largest region's box has IoU "
        ">= 0.5."
    ),
)
_spec(
    "pxap",
    "box_localization",
    "localization",
    True,
    _LOC,
    "Choe et al. 2020, Evaluating weakly supervised object localization methods right, CVPR",
    scope="set",
    statistics=_BOX_STATISTICS + "PXAP",
    description=(
        "Set score: area under the pixel precision-recall curve over map thresholds, pixels pooled."
    ),
)

# --- complexity and compactness --------------------------------------------------------------
_spec("sparseness", "complexity", "complexity", True, ("a",),
      "Chalasani et al. 2020, Concise explanations of neural networks using adversarial training, "
      "ICML",
      description="Gini index of |a|.")
_spec("complexity", "complexity", "complexity", False, ("a",),
      "Bhatt et al. 2020, Evaluating and aggregating feature-based model explanations, IJCAI",
      description="Entropy of the fractional contribution |a| / sum |a|.")
_spec("effective_complexity", "complexity", "complexity", False, ("a",),
      "Nguyen and Martinez 2020, On quantitative aspects of model interpretability, "
      "arXiv:2007.07584",
      description="Number of features with |a| above a threshold.")
_spec("mst_compactness", "complexity", "complexity", True, ("a",),
      "Mesgari et al. 2026, Structural compactness as a complementary criterion for explanation "
      "quality, arXiv:2603.29491",
      volumes=(
          "defined by the paper on the 2-D pixel grid (spread and cohesion of a planar spanning "
          "forest)"
      ),
      description="MST-C: spread x cohesion of the salient points' minimum spanning forest.")

# --- faithfulness --------------------------------------------------------------------------------
# Defaults keep a harness run quick at any image size: step sizes as fractions of the features.
_FAITH = ("forward_fn", "x", "a", "target")
_spec("deletion", "faithfulness", "faithfulness", False, _FAITH,
      "Petsiuk et al. 2018, RISE: randomized input sampling for explanation of black-box models, "
      "BMVC",
      output="curve", curve=("probability", "fraction of features removed"),
      description="AUC of the class probability as pixels are deleted, most relevant first.",
      features_per_step=0.02)
_spec("insertion", "faithfulness", "faithfulness", True, _FAITH,
      "Petsiuk et al. 2018, RISE: randomized input sampling for explanation of black-box models, "
      "BMVC",
      output="curve", curve=("probability", "fraction of features inserted"),
      description="AUC of the class probability as pixels are inserted into a blurred copy.",
      features_per_step=0.02)
_spec("pixel_flipping", "faithfulness", "faithfulness", False, _FAITH,
      "Bach et al. 2015, On pixel-wise explanations for non-linear classifier decisions by "
      "layer-wise relevance propagation, PLOS ONE",
      output="curve", curve=("logit", "fraction of features removed"),
      description="Area under the class score as features are flipped, most relevant first.",
      features_per_step=0.02)
_spec("region_perturbation", "faithfulness", "faithfulness", True, _FAITH,
      "Samek et al. 2017, Evaluating the visualization of what a deep neural network has learned, "
      "IEEE TNNLS",
      stochastic=True, output="curve", curve=("logit drop", "patches perturbed"),
      description=(
          "AOPC: mean drop of the class score as patches are perturbed, most relevant first."
      ),
      patch_size=8, steps=50)
_spec("selectivity", "faithfulness", "faithfulness", False, _FAITH,
      "Montavon et al. 2018, Methods for interpreting and understanding deep neural networks, "
      "Digital Signal Processing",
      output="curve", curve=("logit", "fraction of patches removed"),
      description="Area under the class score as patches are removed, most relevant first.",
      patch_size=16)
_spec("irof", "faithfulness", "faithfulness", True, _FAITH + ("segments",),
      "Rieger and Hansen 2020, IROF: a low resource evaluation metric for explanation methods, "
      "ICLR workshop",
      output="curve", curve=("relative probability", "segments removed"),
      description="Area over the relative class score as segments are removed by mean relevance.",
      n_segments=49)
_spec("faithfulness_estimate", "faithfulness", "faithfulness", True, _FAITH,
      "Alvarez-Melis and Jaakkola 2018, Towards robust interpretability with self-explaining "
      "neural networks, NeurIPS",
      description=(
          "Pearson correlation of group attributions with the score drop of removing each group."
      ),
      features_per_step=0.02)
_spec("monotonicity", "faithfulness", "faithfulness", True, _FAITH,
      "Arya et al. 2019, One explanation does not fit all: a toolkit and taxonomy of AI "
      "explainability techniques, arXiv:1909.03012",
      description=(
          "1 if inserting features by increasing attribution never lowers the class probability."
      ),
      features_per_step=0.02)
_spec("monotonicity_correlation", "faithfulness", "faithfulness", True, _FAITH,
      "Nguyen and Martinez 2020, On quantitative aspects of model interpretability, "
      "arXiv:2007.07584",
      stochastic=True,
      description=(
          "Spearman correlation of |a| group sums with the score variance under noise in the group."
      ),
      features_per_step=0.0625, n_samples=5)

# --- faithfulness (part 2) ---------------------------------------------------------------------
_spec("road", "road", "faithfulness", False, _FAITH,
      "Rong et al. 2022, A consistent and efficient evaluation strategy for attribution methods, "
      "ICML",
      stochastic=True, output="curve", curve=("accuracy", "fraction of features removed"),
      description=(
          "Accuracy as pixels are removed most relevant first and imputed by noisy linear "
          "imputation."
      ),
      percentages=(10, 30, 50, 70, 90))
_spec("infidelity", "faithfulness_random", "faithfulness", False, _FAITH,
      "Yeh et al. 2019, On the (in)fidelity and sensitivity of explanations, NeurIPS",
      stochastic=True,
      description=(
          "Mean squared error between attribution-predicted and actual output changes (optimally "
          "scaled)."
      ),
      n_perturbations=10)
_spec("faithfulness_correlation", "faithfulness_random", "faithfulness", True, _FAITH,
      "Bhatt et al. 2020, Evaluating and aggregating feature-based model explanations, IJCAI",
      stochastic=True,
      description=(
          "Pearson correlation of random-subset attribution sums with the score drop of removing "
          "them."
      ),
      subset_size=0.05, n_runs=50)
_spec("sensitivity_n", "faithfulness_random", "faithfulness", True, _FAITH,
      "Ancona et al. 2018, Towards better understanding of gradient-based attribution methods for "
      "deep neural networks, ICLR",
      stochastic=True, output="curve", curve=("correlation", "fraction of features in the subset"),
      description=(
          "Per subset size n: correlation of attribution sums with output drops over random "
          "subsets."
      ),
      n_subsets=20)
_spec("sufficiency", "sufficiency", "faithfulness", True, ("forward_fn", "x", "a"),
      "Dasgupta et al. 2022, Framework for evaluating faithfulness of local explanations, ICML",
      scope="set",
      description="Share of similarly explained samples in the set that get the same prediction.")

# --- axiomatic ------------------------------------------------------------------------------------
_spec("completeness", "axiomatic", "axiomatic", True, _FAITH,
      "Sundararajan et al. 2017, Axiomatic attribution for deep networks, ICML",
      description="1 if the attributions sum to f(x) - f(baseline) within a relative tolerance.")
_spec("non_sensitivity", "axiomatic", "axiomatic", False, _FAITH,
      "Nguyen and Martinez 2020, On quantitative aspects of model interpretability, "
      "arXiv:2007.07584",
      description=(
          "Number of features that the model ignores but are attributed, or are used but "
          "attributed 0."
      ),
      patch_size=8)

# --- robustness --------------------------------------------------------------------------------
_SENS = ("x", "a", "target", "explain_fn")
_STAB = ("forward_fn", "x", "a", "target", "explain_fn")
_spec("max_sensitivity", "robustness", "robustness", False, _SENS,
      "Yeh et al. 2019, On the (in)fidelity and sensitivity of explanations, "
      "NeurIPS", stochastic=True,
      description="Largest relative change of the explanation under uniform input noise.",
      n_samples=10)
_spec("avg_sensitivity", "robustness", "robustness", False, _SENS,
      "Yeh et al. 2019, On the (in)fidelity and sensitivity of explanations, "
      "NeurIPS", stochastic=True,
      description="Mean relative change of the explanation under uniform input noise.",
      n_samples=10)
_spec("local_lipschitz_estimate", "robustness", "robustness", False, _SENS,
      "Alvarez-Melis and Jaakkola 2018, On the robustness of interpretability methods, ICML "
      "workshops",
      stochastic=True,
      description="Largest ratio of explanation change to input change under Gaussian noise.",
      n_samples=10)
_spec("relative_input_stability", "robustness", "robustness", False, _STAB,
      "Agarwal et al. 2022, Rethinking stability for attribution-based explanations, "
      "arXiv:2203.06877",
      stochastic=True, description="Relative explanation change over relative input change (RIS).",
      n_samples=10)
_spec("relative_output_stability", "robustness", "robustness", False, _STAB,
      "Agarwal et al. 2022, Rethinking stability for attribution-based explanations, "
      "arXiv:2203.06877",
      stochastic=True,
      description="Relative explanation change over the change of the logits (ROS).", n_samples=10)
_spec("relative_representation_stability", "robustness", "robustness", False,
      ("model", "x", "a", "target", "explain_fn"),
      "Agarwal et al. 2022, Rethinking stability for attribution-based explanations, "
      "arXiv:2203.06877",
      stochastic=True,
      description="Relative explanation change over relative change of a layer's output (RRS).",
      n_samples=10)
_spec("continuity", "robustness", "robustness", False, _SENS,
      "Montavon et al. 2018, Methods for interpreting and understanding deep neural networks, "
      "Digital Signal Processing",
      description="Largest explanation change (L1) per input change (L2) over translated inputs.",
      n_steps=8)
_spec(
    "consistency",
    "robustness",
    "robustness",
    True,
    ("forward_fn", "x", "a"),
    "Dasgupta et al. 2022, Framework for evaluating faithfulness of local explanations, ICML",
    scope="set",
    description=(
        "Share of samples with the same discretised explanation that get the same prediction."
    ),
)

# --- randomization -------------------------------------------------------------------------------
# These metrics re-explain randomized copies of `model`, so they take an explainer *factory*
# `explainer_factory(model) -> (x, target) -> a` (see xaiscore.functional.randomization).
_RAND = ("model", "x", "target", "explainer_factory")
_spec(
    "mprt",
    "randomization",
    "randomization",
    False,
    _RAND,
    "Adebayo et al. 2018, Sanity checks for saliency maps, NeurIPS; Hedström et al. 2023, Sanity "
    "checks revisited: an exploration to repair the model parameter randomisation test, XAI in "
    "Action workshop",
    stochastic=True,
    output="curve",
    curve=("similarity", "layers randomized"),
    description=(
        "Spearman similarity of the explanation to the original after randomizing each layer "
        "(bottom-up)."
    ),
)
_spec("smooth_mprt", "randomization", "randomization", False, _RAND,
      "Hedström et al. 2023, Sanity checks revisited: an exploration to repair the model parameter "
      "randomisation test, XAI in Action workshop",
      stochastic=True, output="curve", curve=("similarity", "layers randomized"),
      description="MPRT on explanations averaged over noisy copies of the input (sMPRT).",
      n_samples=10)
_spec(
    "efficient_mprt",
    "randomization",
    "randomization",
    True,
    _RAND,
    "Hedström et al. 2023, Sanity checks revisited: an exploration to repair the model parameter "
    "randomisation test, XAI in Action workshop",
    stochastic=True,
    output="curve",
    curve=("entropy", "layers randomized"),
    description=(
        "Relative rise of the explanation's histogram entropy after full randomization (eMPRT)."
    ),
)
_spec("random_logit", "randomization", "randomization", False, _RAND,
      "Sixt et al. 2020, When explanations lie: why many modified BP attributions fail, ICML",
      stochastic=True,
      description="SSIM between the explanations of the target class and of a random other class.")
