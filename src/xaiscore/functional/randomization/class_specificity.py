"""Random Logit (Sixt et al. 2020): is the explanation specific to the class it explains?

* :func:`random_logit`: similarity between the explanation of the target class and of a
  random other class.

The explainer protocol, the random baseline and the randomness rules are those of
:mod:`xaiscore.functional.randomization`. See ``docs/randomization.md`` for formulas,
defaults and the differences from Quantus.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from xaiscore._checks import OptionError, check_attributions, check_positive_int, check_target
from xaiscore._engine.batching import call_model, check_finite_output, check_max_batch_size
from xaiscore._engine.explain_fn import ExplainerFactory
from xaiscore._engine.model_mode import models_in_eval_mode
from xaiscore._engine.random import resolve_generator
from xaiscore._engine.reduction import ChannelReduction
from xaiscore.functional.randomization._common import (
    Normalise,
    RandomLogitResult,
    _bind,
    _check_factory,
    _check_given_attributions,
    _check_model_inputs,
    _check_postprocessing,
    _explain,
    _FiniteCheck,
)
from xaiscore.functional.randomization._comparison import (
    _Comparison,
    _PostProcess,
    _prepared_random_map,
    _RandomMaps,
)
from xaiscore.functional.similarity import SimilarityFn

__all__ = ["random_logit"]


@models_in_eval_mode("model")
def random_logit(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    explainer_factory: ExplainerFactory,
    a: Tensor | None = None,
    num_classes: int | None = None,
    similarity: str | SimilarityFn = "ssim",
    similarity_kwargs: Mapping[str, Any] | None = None,
    abs: bool = False,
    normalise: Normalise | None = "max",
    reduce_channels: ChannelReduction | None = None,
    random_baseline: bool = True,
    seed: int = 0,
    generator: torch.Generator | None = None,
    max_batch_size: int = 64,
    validate: bool = True,
) -> RandomLogitResult:
    r"""Random Logit test (Sixt et al. 2020): is the explanation class-specific?

    .. math:: \mathrm{score} = \mathrm{sim}\big(P(e(x, y)),\, P(e(x, \tilde y))\big),
              \quad \tilde y \sim \mathcal{U}(\{0..K-1\} \setminus \{y\})

    Lower is better: the explanation of another class should look different.

    Args:
        model: The network; a deep copy of it is explained, so it is never modified.
        x, target: ``(B, C, *S)`` inputs and ``(B,)`` classes.
        explainer_factory: Explainer factory, as in :func:`mprt` (called once, on ``model``).
        a: ``(B, C', *S)`` explanations of ``target``; computed when ``None``.
        num_classes: ``K``; inferred from one forward pass on ``x[:1]`` when ``None``.
        similarity: Default ``"ssim"`` (windowed over the spatial axes, as Sixt
            et al. compare images; Quantus flattens: ``"ssim_flat"``); any
            name accepted by :func:`mprt` or a callable.
        similarity_kwargs: Keyword options for the similarity.
        abs, normalise, reduce_channels: Post-processing, as in :func:`mprt`
            (defaults as Quantus: no ``abs``, per-sample max normalisation).
        random_baseline: Also compute the similarity of two random maps.
        seed, generator: The random classes and baseline maps are drawn from
            ``generator`` (default: a CPU generator seeded with ``seed``).
        max_batch_size, validate: As in :func:`mprt`.

    Returns:
        :class:`RandomLogitResult` with ``score`` ``(B,)``, ``baseline`` and ``off_target``.

    Raises:
        OptionError: fewer than two classes.

    Shape:
        - x: ``(B, C, *S)``; target: ``(B,)``; output: score ``(B,)``

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
        >>> def gradient(m):
        ...     def explain(x, target):
        ...         x = x.clone().requires_grad_(True)
        ...         m(x).gather(1, target[:, None]).sum().backward()
        ...         return x.grad
        ...     return explain
        >>> x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> result = random_logit(model, x, torch.tensor([0, 3]), explainer_factory=gradient)
        >>> bool((result.off_target != torch.tensor([0, 3])).all()), result.score.shape
        (True, torch.Size([2]))
    """
    x, target = _check_model_inputs(model, x, target, validate=False)
    explainer_factory = _check_factory(explainer_factory)
    check_max_batch_size(max_batch_size)
    _check_postprocessing(abs, normalise, reduce_channels)
    # explained and run instead of `model`: state changes never reach it
    working = copy.deepcopy(model)
    if num_classes is None:
        probe = call_model(working, x[:1], name="model")
        num_classes = (check_finite_output(probe, name="model") if validate else probe).shape[1]
    num_classes = check_positive_int(num_classes, "num_classes")
    if num_classes < 2:
        raise OptionError(
            "Expected at least 2 classes to draw a random other class from, but got "
            f"{num_classes}.")
    if validate:
        check_attributions(x, name="x", validate=True)
        target = check_target(target, x.shape[0], num_classes=num_classes, device=x.device,
                              validate=True)
    generator = resolve_generator(generator, seed, seed_has_own_role=True)
    explainer = _bind(explainer_factory, working)
    finite = _FiniteCheck(validate)
    if a is not None:
        a = _check_given_attributions(a, x, validate=validate)
    # The baseline's key is the generator's first draw, as in the other metrics of this module.
    random = _RandomMaps(generator, x.device) if random_baseline else None
    shift = torch.randint(0, num_classes - 1, (x.shape[0],), generator=generator,
                          device=generator.device)
    off_target = shift.to(x.device)
    off_target = off_target + (off_target >= target).to(off_target.dtype)
    if a is None:
        # Both explanations of every sample in one logical batch of 2 B items (one explain call
        # when 2 B <= max_batch_size, instead of two half-size ones).
        both = _explain(explainer, torch.cat([x, x]), torch.cat([target, off_target]),
                        max_batch_size=max_batch_size)
        a, a_off = both[: x.shape[0]], both[x.shape[0]:]
        finite(a, "the target classes")
    else:
        a_off = _explain(explainer, x, off_target, max_batch_size=max_batch_size)
    finite(a_off, "the random other classes")
    post = _PostProcess(abs, normalise, reduce_channels)
    sim = _Comparison(similarity, similarity_kwargs)
    score = sim(post(a), post(a_off))
    baseline = None
    if random is not None:
        first = _prepared_random_map(random, a, sim, post)
        second = _prepared_random_map(random, a_off, sim, post)
        baseline = sim.compare(first, second).to(a.dtype)
    return RandomLogitResult(score, baseline, off_target)
