"""All randomness of xaiscore: generator resolution, seed derivation, counter-based draws.

**The rule for ``seed`` and ``generator``.** Every function with randomness takes a
``generator: torch.Generator | None`` and/or a ``seed: int | None``; nothing ever draws
from torch's, numpy's or Python's global generators. :func:`resolve_generator` turns them
into the one generator a function draws from:

* ``generator`` given: it is used (and advanced);
* else ``seed`` given: a fresh CPU generator seeded with ``seed``;
* else the function's documented default seed, if it has one (the MPRT family and the
  meta-evaluation default to ``seed=0``), or a fresh generator seeded from OS entropy.

Passing both is an :class:`~xaiscore.OptionError`, except where ``seed`` has a role of its
own that the function documents (``mprt`` and its siblings: ``seed`` fixes the layer
re-initialisation, ``generator`` the noise and baseline draws).

**Seeds for named parts of a job** come from :func:`derive_seed`: a hash of the job's seed
and labels (method, metric, batch ...), the same in every process and in any order.

**Counter-based draws.** Noise that must not depend on how a kernel chunks its work comes
from :func:`counter_uniform`, :func:`counter_bits` and :func:`counter_normal`: pure
functions of a per-item key (drawn up front by :func:`random_keys`) and a column, built
on the splitmix64 finaliser; :func:`hash32` is the 32-bit counterpart for the random
baseline maps.

Example:
    >>> g = resolve_generator(None, 3)
    >>> torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=torch.Generator().manual_seed(3)))
    True
    >>> derive_seed(0, "Saliency", 1) == derive_seed(0, "Saliency", 1) != derive_seed(0, "Saliency", 2)
    True
"""  # noqa: E501

from __future__ import annotations

import contextlib
import hashlib
import math
import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from xaiscore._checks import DTypeError, OptionError

__all__ = [
    "resolve_generator",
    "derive_seed",
    "draw_seed",
    "seeded_global_rngs",
    "random_keys",
    "counter_bits",
    "counter_uniform",
    "counter_uniform_at",
    "counter_normal",
    "hash32",
    "MASK32",
]


def resolve_generator(
    generator: torch.Generator | None,
    seed: int | None,
    *,
    default_seed: int | None = None,
    seed_has_own_role: bool = False,
) -> torch.Generator:
    """The generator to draw from, by the module's rule: ``generator``, else ``seed``, else the
    default.

    Args:
        generator: Used as it is when given.
        seed: Seeds a fresh CPU generator when ``generator`` is ``None``.
        default_seed: Seeds it when both are ``None``; ``None`` seeds it from OS entropy
            (never from torch's global generator).
        seed_has_own_role: The caller uses ``seed`` for something else too (MPRT's
            re-initialisation), so ``generator`` and ``seed`` may both be given.

    Raises:
        OptionError: both are given and ``seed`` has no role of its own.
        DTypeError: ``generator`` is not a ``torch.Generator`` or ``seed`` not an int.

    Example:
        >>> resolve_generator(None, None, default_seed=0).initial_seed()
        0
    """
    if generator is not None and seed is not None and not seed_has_own_role:
        raise OptionError("Expected at most one of `generator` and `seed`, but got both.")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise DTypeError(
                "Expected `generator` to be a torch.Generator, but got "
                f"{type(generator).__name__}.")
        return generator
    if seed is None:
        seed = default_seed
    fresh = torch.Generator()
    if seed is None:
        fresh.seed()
        return fresh
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DTypeError(f"Expected `seed` to be an int, but got {type(seed).__name__} {seed!r}.")
    return fresh.manual_seed(seed)


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from ``seed`` and labels (method, metric, batch ...), stable across processes.

    Independent of call order, of ``max_batch_size`` and of the process that asks.

    Example:
        >>> derive_seed(0, "sparseness", 1) == derive_seed(0, "sparseness", 1) != derive_seed(0, "sparseness", 2)
        True
    """  # noqa: E501
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def draw_seed(generator: torch.Generator) -> int:
    """One seed in ``[0, 2**62)`` drawn from ``generator`` (a host sync: call it at the boundary).
    """
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed torch's (CPU and initialised CUDA), numpy's and Python's global RNGs; restore them on
    exit.

    For third-party code that draws from the global generators (captum's stochastic methods).
    """
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


def random_keys(shape: Sequence[int] | int, generator: torch.Generator | None) -> Tensor:
    """Keys for :func:`counter_uniform`, drawn up front from ``generator``: int64 of ``shape``
    (on CPU)."""
    gen = resolve_generator(generator, None)
    return torch.randint(-(2**62), 2**62, tuple([shape] if isinstance(shape, int) else shape),
                         generator=gen, device=gen.device, dtype=torch.long)


_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64
_MIX1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_MIX2 = -7723592293110705685  # 0x94D049BB133111EB


def counter_uniform(keys: Tensor, size: int, *, dtype: torch.dtype = torch.float32,
                    offset: int = 0) -> Tensor:
    """Uniform ``[0, 1)`` noise ``(n, size)`` as a pure function of ``keys`` ``(n,)`` and the
    column.

    A splitmix64 hash of ``key + (offset + column + 1) * golden``: the same key
    always gives the same row, whatever the chunking, on any device. Use one key
    per (sample, repeat) from :func:`random_keys`. :func:`counter_uniform_at`
    gives the same values at chosen columns only.

    Example:
        >>> keys = random_keys(2, torch.Generator().manual_seed(0))
        >>> u = counter_uniform(keys, 5)
        >>> torch.equal(u[1:], counter_uniform(keys[1:], 5)), bool(((u >= 0) & (u < 1)).all())
        (True, True)
    """
    columns = torch.arange(offset, offset + size, device=keys.device, dtype=torch.long)
    return counter_uniform_at(keys, columns.unsqueeze(0), dtype=dtype)


def counter_bits(keys: Tensor, columns: Tensor) -> Tensor:
    """The raw 64-bit splitmix64 hashes behind :func:`counter_uniform_at`: ``(n, m)`` int64, every
    bit uniform.

    For callers that need many random bits cheaply (e.g. two 32-bit draws per hash).

    Example:
        >>> keys = random_keys(2, torch.Generator().manual_seed(0))
        >>> counter_bits(keys, torch.arange(4).unsqueeze(0)).shape
        torch.Size([2, 4])
    """
    # a fresh tensor: everything below runs in place (3x faster than fresh temporaries)
    z = columns.long() + 1
    z.mul_(_GOLDEN)
    keys = keys.reshape(-1, 1)
    z = z.add_(keys) if z.shape[0] == keys.shape[0] else z + keys
    shifted = torch.empty_like(z)
    for bits, multiplier in ((30, _MIX1), (27, _MIX2), (31, None)):
        torch.bitwise_right_shift(z, bits, out=shifted)
        shifted &= (1 << (64 - bits)) - 1  # a logical shift (torch's >> is arithmetic)
        z ^= shifted
        if multiplier is not None:
            z.mul_(multiplier)
    return z


def counter_uniform_at(keys: Tensor, columns: Tensor, *,
                       dtype: torch.dtype = torch.float32) -> Tensor:
    """The values of :func:`counter_uniform` at ``columns`` ``(n|1, m)`` (long) only: ``(n, m)``.

    Example:
        >>> keys = random_keys(3, torch.Generator().manual_seed(0))
        >>> full = counter_uniform(keys, 10)
        >>> picked = counter_uniform_at(keys, torch.tensor([[7, 2], [0, 9], [5, 5]]))
        >>> torch.equal(picked, torch.stack([full[0, [7, 2]], full[1, [0, 9]], full[2, [5, 5]]]))
        True
    """
    z = counter_bits(keys, columns)  # a fresh tensor: shifted in place
    bits = 11 if dtype == torch.float64 else 40
    z >>= bits
    z &= (1 << (64 - bits)) - 1
    if dtype == torch.float64:
        return z.to(torch.float64).mul_(2.0**-53)
    return z.to(torch.float32).mul_(2.0**-24).to(dtype)


def counter_normal(keys: Tensor, size: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal noise ``(n, size)`` as a pure function of ``keys`` ``(n,)`` (Box-Muller).

    One 64-bit hash of :func:`xaiscore._engine.perturbation.counter_bits` gives two
    normals: with ``h = ceil(size / 2)``, hash ``j < h`` of a key yields
    ``u1`` from its upper 32 bits (``(bits + 1/2) / 2^32``, in ``(0, 1)``) and an
    angle ``2 pi u2`` from its lower 24 bits; column ``j`` is
    ``sqrt(-2 log u1) cos(2 pi u2)`` and column ``h + j`` the matching sine.
    Computed in float32 (tails are exact to about 6.7 standard deviations) and
    cast to ``dtype``, so float32 and float64 runs see the same noise.

    Example:
        >>> keys = random_keys(3, torch.Generator().manual_seed(0))
        >>> z = counter_normal(keys, 4)
        >>> z.shape, torch.equal(z[1:], counter_normal(keys[1:], 4))
        (torch.Size([3, 4]), True)
    """
    half = (size + 1) // 2
    bits = counter_bits(keys, torch.arange(half, device=keys.device).unsqueeze(0))  # (n, h) int64
    u1 = ((bits >> 32) & 0xFFFFFFFF).to(torch.float32).add_(0.5).mul_(2.0**-32)
    radius = u1.log_().mul_(-2.0).sqrt_()
    angle = (bits & 0xFFFFFF).to(torch.float32).mul_(2.0 * math.pi * 2.0**-24)
    out = torch.empty((keys.shape[0], size), dtype=torch.float32, device=keys.device)
    torch.mul(radius, torch.cos(angle), out=out[:, :half])
    rest = size - half
    torch.mul(radius[:, :rest], torch.sin(angle[:, :rest]), out=out[:, half:])
    return out.to(dtype)


MASK32 = 0xFFFFFFFF


def hash32(v: Tensor) -> Tensor:
    """A 32-bit integer hash (Wellons' ``lowbias32`` shape with 31-bit multipliers).

    int64 in, int64 in ``[0, 2^32)`` out. Every product stays below 2^63, so the
    arithmetic is exact on every device.
    """
    v = v & MASK32
    v = v ^ (v >> 16)
    v = (v * 0x21F0AAAD) & MASK32
    v = v ^ (v >> 15)
    v = (v * 0x735A2D97) & MASK32
    return v ^ (v >> 15)
