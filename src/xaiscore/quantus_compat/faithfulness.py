"""Quantus' faithfulness metrics on the kernels of :mod:`xaiscore.functional.faithfulness`.

All perturbed inputs of all samples form one logical batch that goes through
the model in chunks of ``batch_size`` images (Quantus calls the model once per
step and batch). Features are ranked as Quantus ranks them: every channel value
for the pixel-wise metrics (the map broadcast to the input's channels), patches
or segments by their summed (mean) attribution. Ties go to the lower index
(Quantus' ``np.argsort`` is unstable).

Baselines (``perturb_baseline``): ``"black"`` is the sample's minimum and
``"white"`` its maximum, as in Quantus; a number is that value; ``"mean"`` is
the per-channel mean of the *unperturbed* sample (Quantus: the mean of the
partly perturbed sample, or of the whole batch in IROF); ``"uniform"`` is
i.i.d. noise per element on ``[min x, max x]`` drawn from ``seed`` (Quantus:
one U(0, 1) scalar per sample and step from numpy's global generator).

Example:
    >>> import numpy as np, torch
    >>> from xaiscore.quantus_compat import PixelFlipping
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2, bias=False)).eval()
    >>> _ = model[1].weight.data.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
    >>> x, a = np.ones((1, 1, 4), np.float32), np.array([[[1.0, 2.0, 3.0, 4.0]]])
    >>> PixelFlipping(features_in_step=2, perturb_baseline=0.0, disable_warnings=True)(
    ...     model, x, np.array([0]), a, softmax=False)
    [[3.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from xaiscore._checks import OptionError
from xaiscore._engine.random import resolve_generator
from xaiscore.functional.faithfulness.curves import (
    irof,
    pixel_flipping,
    region_perturbation,
    selectivity,
)
from xaiscore.functional.faithfulness.feature_removal import (
    faithfulness_estimate,
    monotonicity,
    monotonicity_correlation,
)
from xaiscore.quantus_compat._base import (Metric, Prepared, QuantusCompatibilityError,
                                           ScoreDirection, common)
from xaiscore.quantus_compat._faithfulness_base import _Faithfulness, _positive
from xaiscore.quantus_compat._options import (check_perturb_func, perturb_option)
from xaiscore.quantus_compat.faithfulness_random import (
    FaithfulnessCorrelation,
    Infidelity,
    SensitivityN,
)

__all__ = [
    "PixelFlipping",
    "RegionPerturbation",
    "Selectivity",
    "FaithfulnessEstimate",
    "Monotonicity",
    "MonotonicityCorrelation",
    "IROF",
    "ROAD",
    "FaithfulnessCorrelation",
    "Infidelity",
    "SensitivityN",
    "Sufficiency",
    "BatchSufficiency",
]

class PixelFlipping(_Faithfulness):
    """Pixel flipping (Bach et al. 2015) on :func:`xaiscore.functional.pixel_flipping`.

    Every channel value is a feature; features are replaced by the baseline in
    order of decreasing attribution, ``features_in_step`` at a time, and the
    target score is recorded after each step.

    Returns: per sample the curve of scores after steps ``1 .. T`` (a list of
    floats, as Quantus), or with ``return_auc_per_sample=True`` its area by the
    trapezoid rule with unit spacing (Quantus' ``np.trapz``). :attr:`get_auc_score`
    is their mean, as in Quantus.

    Differences from Quantus 0.6.0: a ``features_in_step`` that does not divide
    the number of pixels gives a smaller last step (Quantus asserts); see the
    module docstring for baselines and ties.

    Defaults: ``features_in_step=1, perturb_baseline="black", abs=False, normalise=True``;
    ``softmax=True`` in ``__call__``. Lower is better.
    """

    name = "Pixel-Flipping"
    score_direction = ScoreDirection.LOWER

    def __init__(self, features_in_step: int = 1, abs: bool = False, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_baseline: Any = "black",
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False, aggregate_func: Callable[..., Any] | None = None,
                 return_auc_per_sample: bool = False,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 seed: int | None = None,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self.features_in_step = _positive(features_in_step, "features_in_step")
        self.return_auc_per_sample = bool(return_auc_per_sample)
        self._setup_perturbation(perturb_func, perturb_baseline, perturb_func_kwargs, seed)

    @property
    def get_auc_score(self) -> float:
        """The mean over samples of the unit-spacing trapezoid area of each curve (Quantus'
        definition), a ``numpy.float64`` as Quantus returns (a subclass of ``float``)."""
        areas = [np.trapezoid(np.asarray(curve)) for curve in self.evaluation_scores]
        return np.float64(np.mean(areas))

    def _evaluate(self, prepared: Prepared) -> Any:
        result = pixel_flipping(prepared.forward_fn, prepared.x, prepared.a, prepared.y,
                                features_per_step=self.features_in_step, baseline=self._baseline,
                                softmax=prepared.softmax, reduce_channels=None,
                                max_batch_size=prepared.batch_size,
                                generator=self._generator())
        curves = result.curve[:, 1:].double()
        if self.return_auc_per_sample:
            return torch.trapezoid(curves, dim=1)
        return curves.cpu().tolist()


class RegionPerturbation(_Faithfulness):
    """Region perturbation (Samek et al. 2017) on :func:`xaiscore.functional.region_perturbation`.

    Non-overlapping ``patch_size`` patches are ranked by their summed
    attribution (``order``: ``"morf"``, ``"lerf"`` or ``"random"``) and the first
    ``regions_evaluation`` are replaced cumulatively.

    Returns: per sample the numpy array of score drops ``f(x) - f(x_t)`` for
    ``t = 1 .. L`` (as Quantus); :attr:`get_auc_score` is the mean unit-spacing
    trapezoid area. The AOPC of Samek et al. is ``sum(drops) / (L + 1)``.

    Differences from Quantus 0.6.0: ``order="random"`` draws from ``seed``
    (Quantus: numpy's global generator); see the module docstring for baselines.

    Defaults: ``patch_size=8, order="morf", regions_evaluation=100, perturb_baseline="black",
    abs=False, normalise=True``; ``softmax=True`` in ``__call__``.
    """

    name = "Region Perturbation"
    score_direction = ScoreDirection.HIGHER

    def __init__(self, patch_size: int = 8, order: str = "morf", regions_evaluation: int = 100,
                 abs: bool = False,
                 normalise: bool = True, normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_baseline: Any = "black",
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False, aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False,
                 display_progressbar: bool = False, seed: int | None = None,
                 quantus_bug_compatible: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self.patch_size = _positive(patch_size, "patch_size")
        if not isinstance(order, str) or order.lower() not in ("morf", "lerf", "random"):
            raise OptionError(f"Expected `order` in 'morf', 'lerf', 'random', but got {order!r}.")
        self.order = order.lower()
        self.regions_evaluation = _positive(regions_evaluation, "regions_evaluation")
        self._setup_perturbation(perturb_func, perturb_baseline, perturb_func_kwargs, seed)

    @property
    def get_auc_score(self) -> float:
        """The mean over samples of the unit-spacing trapezoid area of each curve (Quantus'
        definition), a ``numpy.float64`` as Quantus returns (a subclass of ``float``)."""
        areas = [np.trapezoid(np.asarray(curve)) for curve in self.evaluation_scores]
        return np.float64(np.mean(areas))

    def _evaluate(self, prepared: Prepared) -> Any:
        result = region_perturbation(prepared.forward_fn, prepared.x, prepared.a, prepared.y,
                                     patch_size=self.patch_size, steps=self.regions_evaluation,
                                     order=self.order,
                                     baseline=self._baseline, softmax=prepared.softmax,
                                     reduce_channels="sum",
                                     max_batch_size=prepared.batch_size,
                                     generator=self._generator())
        return list(result.curve[:, 1:].double().cpu().numpy())


class Selectivity(_Faithfulness):
    """Selectivity (Montavon et al. 2018) on :func:`xaiscore.functional.selectivity`.

    Patches are removed in order of decreasing summed attribution until none
    is left; returns per sample the numpy array of scores after each removal
    (as Quantus); :attr:`get_auc_score` is the mean unit-spacing trapezoid area.

    Defaults: ``patch_size=8, perturb_baseline="black", abs=False, normalise=True``;
    ``softmax=True`` in ``__call__``. Lower is better.
    """

    name = "Selectivity"
    score_direction = ScoreDirection.LOWER

    def __init__(self, patch_size: int = 8, abs: bool = False, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_baseline: Any = "black",
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False, aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False,
                 display_progressbar: bool = False, seed: int | None = None,
                 quantus_bug_compatible: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self.patch_size = _positive(patch_size, "patch_size")
        self._setup_perturbation(perturb_func, perturb_baseline, perturb_func_kwargs, seed)

    @property
    def get_auc_score(self) -> float:
        """The mean over samples of the unit-spacing trapezoid area of each curve (Quantus'
        definition), a ``numpy.float64`` as Quantus returns (a subclass of ``float``)."""
        areas = [np.trapezoid(np.asarray(curve)) for curve in self.evaluation_scores]
        return np.float64(np.mean(areas))

    def _evaluate(self, prepared: Prepared) -> Any:
        result = selectivity(prepared.forward_fn, prepared.x, prepared.a, prepared.y,
                             patch_size=self.patch_size,
                             baseline=self._baseline, softmax=prepared.softmax,
                             reduce_channels="sum",
                             max_batch_size=prepared.batch_size, generator=self._generator())
        return list(result.curve[:, 1:].double().cpu().numpy())


class FaithfulnessEstimate(_Faithfulness):
    """Faithfulness estimate (Alvarez-Melis and Jaakkola 2018) on
    :func:`xaiscore.functional.faithfulness_estimate`.

    Groups of ``features_in_step`` channel values (by decreasing attribution)
    are replaced one group at a time; the score is the Pearson correlation of
    the group attribution sums with the score drops. NaN where either is constant.

    ``similarity_func``: ``None`` or Quantus' ``correlation_pearson`` (the kernel's).

    Defaults: ``features_in_step=1, perturb_baseline="black", abs=False, normalise=True``;
    ``softmax=False`` in ``__call__``.
    """

    name = "Faithfulness Estimate"
    score_direction = ScoreDirection.HIGHER
    default_softmax = False

    def __init__(self, similarity_func: Callable[..., Any] | None = None, features_in_step: int = 1,
                 abs: bool = False, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_baseline: Any = "black",
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False, aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False,
                 display_progressbar: bool = False, seed: int | None = None,
                 quantus_bug_compatible: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self._set_similarity(similarity_func, "pearson")
        self.features_in_step = _positive(features_in_step, "features_in_step")
        self._setup_perturbation(perturb_func, perturb_baseline, perturb_func_kwargs, seed)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        return faithfulness_estimate(prepared.forward_fn, prepared.x, prepared.a, prepared.y,
                                     features_per_step=self.features_in_step,
                                     baseline=self._baseline,
                                     softmax=prepared.softmax, reduce_channels=None,
                                     max_batch_size=prepared.batch_size,
                                     generator=self._generator())


class Monotonicity(_Faithfulness):
    """Monotonicity (Arya et al. 2019) on :func:`xaiscore.functional.monotonicity`.

    Starting from the baseline, the input's channel values are *inserted* in
    order of increasing attribution, ``features_in_step`` at a time; the score
    is 1.0 if the target probability never decreases, else 0.0.

    Differences from Quantus 0.6.0: Quantus replaces baseline values by the
    baseline again instead of inserting the input, so its curve is constant
    and it returns True for any attribution; we insert (the paper). Scores are
    floats (Quantus: bools).

    Defaults: ``features_in_step=1, perturb_baseline="black", abs=True, normalise=True``;
    ``softmax=True`` in ``__call__``.
    """

    name = "Monotonicity"
    score_direction = ScoreDirection.HIGHER

    def __init__(self, features_in_step: int = 1, abs: bool = True, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_baseline: Any = "black",
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False, aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False,
                 display_progressbar: bool = False, seed: int | None = None,
                 quantus_bug_compatible: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self.features_in_step = _positive(features_in_step, "features_in_step")
        self._setup_perturbation(perturb_func, perturb_baseline, perturb_func_kwargs, seed)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        return monotonicity(prepared.forward_fn, prepared.x, prepared.a, prepared.y,
                            features_per_step=self.features_in_step, baseline=self._baseline,
                            softmax=prepared.softmax, reduce_channels=None,
                            max_batch_size=prepared.batch_size,
                            generator=self._generator())


class MonotonicityCorrelation(_Faithfulness):
    """Monotonicity correlation (Nguyen and Martinez 2020) on
    :func:`xaiscore.functional.monotonicity_correlation`.

    Groups of ``features_in_step`` channel values (by increasing attribution)
    are replaced by noise ``nr_samples`` times each; the score is the Spearman
    correlation of the group attribution sums with the mean squared change of
    the target score.

    Differences from Quantus 0.6.0: ``"uniform"`` noise is i.i.d. per element on
    the sample's value range, drawn from ``seed`` (Quantus: one U(0, 1) scalar
    per group and draw); no ``1 / f(x)^2`` scaling (a rank correlation does not
    see it, so ``eps`` has no effect). ``similarity_func``: ``None`` or Quantus'
    ``correlation_spearman``.

    Defaults: ``eps=1e-5, nr_samples=100, features_in_step=1, perturb_baseline="uniform",
    abs=True, normalise=True``; ``softmax=True`` in ``__call__``.
    """

    name = "Monotonicity Correlation"
    score_direction = ScoreDirection.HIGHER

    def __init__(self, similarity_func: Callable[..., Any] | None = None, eps: float = 1e-5,
                 nr_samples: int = 100,
                 features_in_step: int = 1, abs: bool = True, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_baseline: Any = "uniform",
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False, aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False,
                 display_progressbar: bool = False, seed: int | None = None,
                 quantus_bug_compatible: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        self._set_similarity(similarity_func, "spearman")
        self.eps = float(eps)
        self.nr_samples = _positive(nr_samples, "nr_samples")
        self.features_in_step = _positive(features_in_step, "features_in_step")
        self._setup_perturbation(perturb_func, perturb_baseline, perturb_func_kwargs, seed)

    def _evaluate(self, prepared: Prepared) -> Tensor:
        return monotonicity_correlation(prepared.forward_fn, prepared.x, prepared.a, prepared.y,
                                        features_per_step=self.features_in_step,
                                        n_samples=self.nr_samples,
                                        baseline=self._baseline, absolute=False,
                                        softmax=prepared.softmax,
                                        reduce_channels=None, max_batch_size=prepared.batch_size,
                                        generator=self._generator())


def _superpixels(x: Tensor, method: str) -> Tensor:
    """Label maps ``(B, H, W)`` from skimage, per image, as Quantus' ``get_superpixel_segments``."""
    try:
        from skimage.segmentation import felzenszwalb, slic
    except ImportError as error:
        raise ImportError(
            f"IROF with segmentation_method={method!r} needs scikit-image (`pip install "
            "scikit-image`); segmentation_method='grid' needs nothing."
        ) from error
    if x.ndim != 4:
        raise QuantusCompatibilityError(
            f"IROF segments 2-D images with {method!r}; for inputs of shape {tuple(x.shape)} use "
            "segmentation_method='grid'."
        )
    images = np.moveaxis(x.detach().cpu().double().numpy(), 1, -1)
    # A host loop over images: superpixels are computed by skimage, one image at a time
    # (as Quantus).
    labels = [slic(image, start_label=0) if method == "slic" else felzenszwalb(image)
              for image in images]
    return torch.as_tensor(np.stack(labels).astype(np.int64), device=x.device)


class IROF(_Faithfulness):
    """Iterative removal of features (Rieger and Hansen 2020) on :func:`xaiscore.functional.irof`.

    Superpixels (``segmentation_method``: ``"slic"`` or ``"felzenszwalb"`` from
    scikit-image, as Quantus; or ``"grid"``, our content-agnostic grid) are
    removed in order of decreasing mean attribution; the score is the area
    over the curve of the relative target score ``f(x_t) / f(x)`` on [0, 1]
    (``t`` = fraction of segments removed, starting at 1 for ``t = 0``).

    Differences from Quantus 0.6.0: Quantus returns ``L - trapz(q_1 .. q_L)`` with
    unit spacing and without the start point (so scores grow with the number of
    segments ``L``), pads samples with fewer segments than a batch-mate with a
    zero step, fills with the mean of the whole batch, and fails on
    multi-channel inputs; ``quantus_bug_compatible=True`` returns Quantus'
    ``L - trapz(q_1 .. q_L)`` (per sample, without the padding). NaN where ``f(x) = 0``.

    Defaults: ``segmentation_method="slic", perturb_baseline="mean", abs=False, normalise=True,
    return_aggregate=True``; ``softmax=True`` in ``__call__``.
    """

    name = "IROF"
    score_direction = ScoreDirection.HIGHER
    _perturb_funcs = ("baseline_replacement_by_mask",)

    def __init__(self, segmentation_method: str = "slic", abs: bool = False, normalise: bool = True,
                 normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_baseline: Any = "mean",
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = True, aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False,
                 display_progressbar: bool = False, seed: int | None = None, n_segments: int = 100,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        if segmentation_method not in ("slic", "felzenszwalb", "grid"):
            raise OptionError(
                "Expected `segmentation_method` in 'slic', 'felzenszwalb', 'grid', but got "
                f"{segmentation_method!r}."
            )
        self.segmentation_method = segmentation_method
        self.n_segments = _positive(n_segments, "n_segments")
        self._setup_perturbation(perturb_func, perturb_baseline, perturb_func_kwargs, seed)

    @property
    def get_aoc_score(self) -> float:
        """The mean of the last call's scores (Quantus' ``get_aoc_score``)."""
        return float(np.mean(self.evaluation_scores))

    def _evaluate(self, prepared: Prepared) -> Tensor:
        segments = None if self.segmentation_method == "grid" else _superpixels(
            prepared.x, self.segmentation_method)
        result = irof(prepared.forward_fn, prepared.x, prepared.a, prepared.y, segments=segments,
                      n_segments=self.n_segments, baseline=self._baseline, softmax=prepared.softmax,
                      reduce_channels="sum", max_batch_size=prepared.batch_size,
                      generator=self._generator())
        if not self.quantus_bug_compatible:
            return result.score
        relative = result.curve[:, 1:].double()  # q_1 .. q_L, NaN after a sample's last segment
        valid = ~torch.isnan(relative)
        count = valid.sum(1)
        values = torch.where(valid, relative, torch.zeros_like(relative))
        last = values.gather(1, (count - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        area = values.sum(1) - 0.5 * (values[:, 0] + last)  # np.trapz(q_1..q_L, dx=1)
        return torch.where(torch.isnan(result.score), result.score.double(), count.double() - area)


class ROAD(Metric):
    """ROAD, remove and debias (Rong et al. 2022), on :func:`xaiscore.functional.road`.

    For each percentage ``p`` the ``floor(N p / 100)`` most relevant pixels are
    removed and filled by noisy linear imputation (noise standard deviation
    ``noise``, drawn from ``seed``); the model's accuracy on the imputed images
    is recorded.

    Returns: a dict ``{p: accuracy over the batch}``, as Quantus.

    Differences from Quantus 0.6.0: every sample counts (Quantus'
    postprocessing reads only its first batch of ``batch_size`` samples); colour
    images work (Quantus raises an IndexError); the imputation is solved on the
    device, for all samples and percentages at once.

    Defaults: ``percentages=range(1, 100, 2), noise=0.01, abs=False, normalise=True``;
    ``softmax=True`` in ``__call__`` (no effect on the accuracy). Lower is better
    for MoRF.
    """

    name = "ROAD"
    evaluation_category = "Faithfulness"
    score_direction = ScoreDirection.LOWER
    needs_model = True
    default_softmax = True

    def __init__(self, percentages: Sequence[float] | None = None, noise: float = 0.01,
                 abs: bool = False,
                 normalise: bool = True, normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 perturb_func: Callable[..., Any] | None = None,
                 perturb_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 seed: int | None = None,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        check_perturb_func(perturb_func, ("noisy_linear_imputation",), "ROAD")
        self.noise = float(perturb_option(perturb_func_kwargs, "noise", noise, "ROAD"))
        self.percentages = list(range(1, 100, 2)) if percentages is None else list(percentages)
        self.perturb_func = perturb_func
        self.seed = seed

    def _evaluate(self, prepared: Prepared) -> dict[float, float]:
        from xaiscore.functional.faithfulness.road import road

        result = road(prepared.forward_fn, prepared.x, prepared.a, prepared.y,
                      percentages=self.percentages,
                      noise=self.noise, measure="accuracy", order="morf", reduce_channels="sum",
                      max_batch_size=prepared.batch_size,
                      generator=resolve_generator(None, self.seed))
        accuracy = result.curve.double().mean(0).cpu().tolist()
        return dict(zip(self.percentages, accuracy))

    def _finish(self, result: Any) -> Any:
        if self.return_aggregate:
            result = [self.aggregate_func(list(result.values()))]
        self.evaluation_scores = result
        self.all_evaluation_scores.append(result)
        return result



class Sufficiency(Metric):
    """Sufficiency (Dasgupta et al. 2022) on :func:`xaiscore.functional.sufficiency`.

    The share of a sample's neighbours in explanation space (normalised
    ``distance_func`` distance at most ``threshold``) that get the same predicted
    class. The neighbourhood is the whole input batch (Quantus: each internal
    batch of ``batch_size``, so its scores change with ``batch_size``); a sample
    without neighbours is NaN (Quantus: 0).

    Defaults: ``threshold=0.6, distance_func="seuclidean", abs=True, normalise=True``.
    """

    name = "Sufficiency"
    evaluation_category = "Faithfulness"
    score_direction = ScoreDirection.HIGHER
    needs_model = True
    default_softmax = True

    def __init__(self, threshold: float = 0.6, distance_func: str = "seuclidean", abs: bool = True,
                 normalise: bool = True, normalise_func: Callable[..., np.ndarray] | None = None,
                 normalise_func_kwargs: Mapping[str, Any] | None = None,
                 return_aggregate: bool = False,
                 aggregate_func: Callable[..., Any] | None = None,
                 default_plot_func: Callable[..., Any] | None = None,
                 disable_warnings: bool = False, display_progressbar: bool = False,
                 quantus_bug_compatible: bool = False, **kwargs: Any) -> None:
        super().__init__(**common(locals()))
        if distance_func not in ("seuclidean", "euclidean"):
            raise QuantusCompatibilityError(
                "Sufficiency supports distance_func 'seuclidean' (the default) or 'euclidean', but "
                f"got {distance_func!r}."
            )
        self.threshold = float(threshold)
        self.distance_func = distance_func

    def _evaluate(self, prepared: Prepared) -> Tensor:
        from xaiscore.functional.faithfulness.sufficiency import sufficiency

        return sufficiency(prepared.forward_fn, prepared.x, prepared.a, threshold=self.threshold,
                           distance=self.distance_func, normalise_distances=True, absolute=False,
                           normalise=None,
                           max_batch_size=prepared.batch_size)


class BatchSufficiency(Sufficiency):
    """Quantus' ``BatchSufficiency``: the same metric as :class:`Sufficiency`."""

    name = "Batch Sufficiency"
