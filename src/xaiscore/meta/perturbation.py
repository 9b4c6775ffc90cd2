"""The four perturbation tests of MetaQuantus (Hedström et al. 2023) and their noise.

* **Input resilience / adversary** (IPT): i.i.d. uniform noise on
  ``[-delta, delta]`` is added to every input value, and the result is clipped
  to the range of the (unperturbed) batch, ``[x.min(), x.max()]``. Defaults
  (the paper's): ``delta = 0.001`` (resilience) and ``delta = 5.0`` (adversary).
* **Model resilience / adversary** (MPT): every parameter of the model
  (weights and biases, as Quantus' ``ModelInterface.sample``) is multiplied
  elementwise by noise drawn from :math:`\\mathcal N(1, \\sigma^2)`. Defaults:
  ``sigma = 0.001`` (resilience) and ``sigma = 2.0`` (adversary; the paper's
  value for its MNIST-type models, 0.5 for ImageNet models). The noise is
  applied to a deep copy: the user's model is never modified.

A resilience test keeps the samples whose prediction (arg-max class) is the
same as the unperturbed model's on the unperturbed input; an adversary test
keeps those whose prediction changed.

Randomness: :func:`perturbation_seeds` draws one seed per (test, iteration,
perturbation) from the caller's generator, up front; each perturbation draws
its noise in float64 on the CPU from a generator seeded with its seed (inputs:
one ``torch.rand`` of the batch's shape; models: one ``torch.randn`` per
parameter, in ``named_parameters()`` order) and casts it to the input's or
parameter's dtype and device. So the noise depends on the seed only, not on
``max_batch_size``, the device or the order in which tests run.

Example:
    >>> import torch
    >>> tests = resolve_tests(None)
    >>> [t.name for t in tests], tests[1].magnitude
    (['model_resilience', 'model_adversary', 'input_resilience', 'input_adversary'], 2.0)
    >>> x = torch.zeros(2, 1, 3)
    >>> noisy = perturb_inputs(x, magnitude=0.5, seed=7, low=-1.0, high=1.0)
    >>> noisy.shape, bool((noisy.abs() <= 0.5).all())
    (torch.Size([2, 1, 3]), True)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from xaiscore._checks import DTypeError, OptionError, check_fraction

__all__ = [
    "PerturbationTest",
    "TEST_NAMES",
    "DEFAULT_MAGNITUDES",
    "resolve_tests",
    "perturbation_seeds",
    "perturb_inputs",
    "ModelPerturber",
]

Space = Literal["input", "model"]
Kind = Literal["resilience", "adversary"]

#: The four tests, in the order MetaQuantus runs them.
TEST_NAMES: tuple[str, ...] = ("model_resilience", "model_adversary", "input_resilience",
                               "input_adversary")

#: The paper's defaults: uniform half-width for input tests, multiplicative std for model tests.
DEFAULT_MAGNITUDES: dict[str, float] = {
    "model_resilience": 0.001,
    "model_adversary": 2.0,
    "input_resilience": 0.001,
    "input_adversary": 5.0,
}


@dataclass(frozen=True)
class PerturbationTest:
    """One perturbation test.

    Attributes:
        name: One of :data:`TEST_NAMES`.
        space: ``"input"`` or ``"model"``.
        kind: ``"resilience"`` (keep samples whose prediction is unchanged) or
            ``"adversary"`` (keep those whose prediction changed).
        magnitude: Input tests: the half-width ``delta`` of the uniform noise;
            model tests: the standard deviation ``sigma`` of the multiplicative
            Gaussian noise (mean 1).
    """

    name: str
    space: Space
    kind: Kind
    magnitude: float

    @property
    def adversary(self) -> bool:
        return self.kind == "adversary"


def resolve_tests(tests: Iterable[str] | None, magnitudes: Mapping[str, float] | None = None
                  ) -> tuple[PerturbationTest, ...]:
    """The tests to run, by name (default: all four), with the paper's magnitudes unless overridden.

    Raises:
        OptionError: an unknown test name (or magnitude key), a repeated test,
            no tests, or a magnitude that is not a positive finite number.
    """
    if isinstance(tests, str):
        raise DTypeError(
            f"Expected `tests` to be a sequence of test names, but got the string {tests!r}.")
    names = TEST_NAMES if tests is None else tuple(tests)
    if not names:
        raise OptionError(f"Expected at least one test from {TEST_NAMES}, but got none.")
    for name in names:
        if name not in TEST_NAMES:
            raise OptionError(f"Expected `tests` from {TEST_NAMES}, but got {name!r}.")
    if len(set(names)) != len(names):
        raise OptionError(f"Expected each test at most once, but got {list(names)}.")
    magnitudes = dict(magnitudes or {})
    unknown = sorted(set(magnitudes) - set(TEST_NAMES))
    if unknown:
        raise OptionError(f"Expected `magnitudes` keys from {TEST_NAMES}, but got {unknown}.")
    out = []
    for name in names:
        value = check_fraction(magnitudes.get(name, DEFAULT_MAGNITUDES[name]),
                               f"magnitudes[{name!r}]",
                               low=0.0, high=math.inf, low_inclusive=False, high_inclusive=False)
        space, kind = name.split("_")
        out.append(PerturbationTest(name, space, kind, value))  # type: ignore[arg-type]
    return tuple(out)


def perturbation_seeds(generator: torch.Generator, n_tests: int, iterations: int,
                       perturbations: int) -> list:
    """One seed per (test, iteration, perturbation), drawn up front: a nested list of ints."""
    seeds = torch.randint(0, 2**62, (n_tests, iterations, perturbations), generator=generator,
                          device=generator.device)
    return seeds.tolist()


def perturb_inputs(x: Tensor, *, magnitude: float, seed: int, low: float | None = None,
                   high: float | None = None) -> Tensor:
    """``clip(x + u, low, high)`` with ``u`` i.i.d. uniform on ``[-magnitude, magnitude)``.

    The noise is drawn in float64 on the CPU from ``torch.Generator().manual_seed(seed)``
    (``torch.rand`` of ``x``'s shape) and cast to ``x``'s dtype and device. No
    clipping where ``low``/``high`` is ``None``.

    Shape:
        - x: ``(n, C, *S)``; output: the same.
    """
    generator = torch.Generator().manual_seed(seed)
    uniform = torch.rand(x.shape, generator=generator, dtype=torch.float64)
    noise = ((2.0 * uniform - 1.0) * magnitude).to(device=x.device, dtype=x.dtype)
    out = x + noise
    if low is not None or high is not None:
        out = out.clamp(min=low, max=high)
    return out


class ModelPerturber:
    """A deep copy of a model whose parameters can be set to ``original * N(1, sigma^2)`` noise.

    The copy is made once; :meth:`perturb` overwrites its parameters from the
    stored originals (so perturbations do not compound) and returns it. The
    original model is never touched.

    Example:
        >>> model = nn.Linear(3, 2)
        >>> before = {k: v.clone() for k, v in model.state_dict().items()}
        >>> noisy = ModelPerturber(model).perturb(std=0.5, seed=1)
        >>> noisy is not model, torch.equal(model.weight, before["weight"])
        (True, True)
        >>> bool((noisy.weight != model.weight).any())
        True
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise DTypeError(
                f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__}.")
        self.model = copy.deepcopy(model)
        self._originals = {name: p.detach().clone() for name, p in self.model.named_parameters()}

    def perturb(self, *, std: float, seed: int) -> nn.Module:
        """Set every parameter to ``original * (1 + std * N(0, 1))`` (noise drawn as the module
        docstring says)."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, parameter in self.model.named_parameters():
                draw = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
                factor = (1.0 + std * draw).to(device=parameter.device, dtype=parameter.dtype)
                parameter.copy_(self._originals[name] * factor)
        return self.model

    def restore(self) -> nn.Module:
        """Set the copy's parameters back to the originals and return it."""
        with torch.no_grad():
            for name, parameter in self.model.named_parameters():
                parameter.copy_(self._originals[name])
        return self.model
