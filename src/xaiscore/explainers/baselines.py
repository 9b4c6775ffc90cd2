"""Baseline explain functions no real method should lose to: random and constant maps.

Binder et al. (2023) report a random-attribution baseline beside every
randomization score. :func:`random_explainer` draws from a counter-based hash
(:func:`xaiscore._engine.random.hash32`), so its maps depend only on the seed and
the running row count, not on how a metric chunks its calls.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from xaiscore._checks import OptionError, check_option, check_tensor
from xaiscore._engine.explain_fn import BuiltExplainer
from xaiscore._engine.random import MASK32, draw_seed, hash32, resolve_generator

__all__ = ["Channels", "RandomExplainer", "random_explainer", "ConstantExplainer",
           "constant_explainer"]


Channels = Literal["one", "input"]


def _map_shape(x: Tensor, channels: Channels) -> tuple[int, ...]:
    return (x.shape[0], 1 if channels == "one" else x.shape[1]) + tuple(x.shape[2:])


class RandomExplainer(BuiltExplainer):
    """Random attribution maps; see :func:`random_explainer`."""

    def __init__(self, *, distribution: str = "uniform", channels: Channels = "one",
                 generator: torch.Generator | None = None, seed: int | None = None) -> None:
        check_option(distribution, "distribution", ("uniform", "normal"))
        check_option(channels, "channels", ("one", "input"))
        self.distribution = distribution
        self.channels = channels
        self._key = draw_seed(resolve_generator(generator, seed)) & MASK32
        self._rows = 0

    def __repr__(self) -> str:
        return f"random_explainer(distribution={self.distribution!r}, channels={self.channels!r})"

    def reset(self) -> None:
        """Start the row counter again: the next call returns the same maps as the first did."""
        self._rows = 0

    def _uniform(self, rows: Tensor, features: Tensor, salt: int) -> Tensor:
        row_key = hash32(rows ^ hash32(torch.tensor(self._key ^ salt, dtype=torch.int64)))
        bits = hash32(hash32(features.unsqueeze(0) ^ row_key.unsqueeze(1)) ^ row_key.unsqueeze(1))
        return (bits.to(torch.float64) + 0.5) / 2.0**32  # in (0, 1)

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        x = check_tensor(x, "x")
        shape = _map_shape(x, self.channels)
        n_features = math.prod(shape[1:])
        rows = torch.arange(self._rows, self._rows + shape[0], dtype=torch.int64, device=x.device)
        features = torch.arange(n_features, dtype=torch.int64, device=x.device)
        self._rows += shape[0]
        u = self._uniform(rows, features, 0)
        if self.distribution == "normal":
            u2 = self._uniform(rows, features, 0x5BD1E995)
            u = torch.sqrt(-2.0 * torch.log(u)) * torch.cos(2.0 * math.pi * u2)
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        return u.to(dtype).reshape(shape)


def random_explainer(
    *,
    distribution: Literal["uniform", "normal"] = "uniform",
    channels: Channels = "one",
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> RandomExplainer:
    """An explainer returning random maps that ignore the input, the target and the model.

    Every call returns fresh maps: uniform on (0, 1) or standard normal
    values, one channel (``channels="one"``) or the input's channels
    (``"input"``). No real explanation method should score worse on a
    quality metric; Binder et al. (2023) show that such uninformative maps
    pass model-randomization tests easily, so report this baseline beside
    every randomization score. Under a robustness metric it scores the
    worst possible sensitivity: every noisy copy gets an unrelated map.

    The values come from a counter-based hash of (seed, row number, feature
    index), where the row number counts all rows explained so far by this
    object. So the maps depend only on the seed and on the order of the rows,
    not on how a metric chunks its calls or on the device; :meth:`RandomExplainer.reset`
    starts the count again.

    Args:
        distribution: ``"uniform"`` (on (0, 1)) or ``"normal"`` (standard normal).
        channels: ``"one"`` for ``(n, 1, *S)`` maps, ``"input"`` for ``(n, C, *S)``.
        generator, seed: Where the hash key comes from (one draw at
            construction); neither gives a non-reproducible key.

    Shape:
        - x: ``(n, C, *S)``; target: ``(n,)``; output: ``(n, 1, *S)`` or ``(n, C, *S)``.

    Example:
        >>> explain = random_explainer(seed=0)
        >>> x, target = torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.long)
        >>> first = explain(x, target)
        >>> first.shape, bool(((first > 0) & (first < 1)).all())
        (torch.Size([4, 1, 8, 8]), True)
        >>> explain.reset()
        >>> torch.equal(torch.cat([explain(x[:1], target[:1]), explain(x[1:], target[1:])]), first)
        True
    """
    return RandomExplainer(distribution=distribution, channels=channels, generator=generator,
                           seed=seed)


class ConstantExplainer(BuiltExplainer):
    """A constant attribution map; see :func:`constant_explainer`."""

    def __init__(self, value: float = 1.0, *, channels: Channels = "one") -> None:
        if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value)):
            raise OptionError(f"Expected `value` to be a finite number, but got {value!r}.")
        check_option(channels, "channels", ("one", "input"))
        self.value = float(value)
        self.channels = channels

    def __repr__(self) -> str:
        return f"constant_explainer({self.value!r}, channels={self.channels!r})"

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        x = check_tensor(x, "x")
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        return torch.full(_map_shape(x, self.channels), self.value, dtype=dtype, device=x.device)


def constant_explainer(value: float = 1.0, *, channels: Channels = "one") -> ConstantExplainer:
    """An explainer returning the same constant map for every input: the uninformative baseline.

    It is perfectly robust (sensitivity 0) and perfectly insensitive to model
    randomization, so it shows which metrics reward ignoring the model.

    Args:
        value: The constant (finite).
        channels: ``"one"`` for ``(n, 1, *S)`` maps, ``"input"`` for ``(n, C, *S)``.

    Shape:
        - x: ``(n, C, *S)``; target: ``(n,)``; output: ``(n, 1, *S)`` or ``(n, C, *S)``.

    Example:
        >>> constant_explainer(0.5)(torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long)).unique().tolist()
        [0.5]
    """  # noqa: E501
    return ConstantExplainer(value, channels=channels)

