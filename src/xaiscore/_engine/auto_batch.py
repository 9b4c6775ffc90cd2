"""Chunk sizes chosen for the user: ``max_batch_size="auto"`` and byte budgets such as ``"2GB"``.

:func:`xaiscore._engine.batching.chunked_map` hands a :class:`BatchPolicy` to
:func:`adaptive_chunks`, which runs the chunks itself and picks their sizes:

* **Byte budget** (``"2GB"``, ``"512MiB"``): the largest chunk whose items, as they reach the
  model or explainer, take at most that many bytes: ``budget // item_bytes`` items (at least
  one). One 3 x 512 x 512 float32 image weighs 3 MiB, fifteen times a 1 x 224 x 224 one, so a byte
  budget bounds memory where a count of items cannot.
* **Auto** (``"auto"``, or ``"auto:2GB"`` with a budget; the default budget is 32 MiB of chunk
  inputs on the CPU, 1/64 of the memory of a GPU, at least 256 MiB): the fastest of the
  candidate sizes 8, 16, 32, ..., 1024 that fit the budget (at least one item). The first chunks
  of real work are the probe: the candidates run smallest first until one is 30 % slower per
  item than the best so far; then the remaining ones (within 30 % of the best) run in rounds
  until each has three timed chunks, and the one with the least time per item (its fastest
  chunk: the first call at a new size pays for fresh memory) is kept for every later chunk.
  No work is done twice and results do not depend on the sizes (chunk-size invariance), so
  the probe costs only the time lost in slower chunks.

The choice is cached for the process, per call site (the kernel's ``compute`` function), model
(its class and parameter shapes, so the randomized copies of one network share it), item shape,
dtype and device, the number of model inputs per item (Integrated Gradients with 16 steps
sends 16 per explained input, Saliency one) and the policy. What a chunk sends through the
model is read by global ``nn.Module`` forward hooks that are installed only while a chunk that
needs them runs (the first chunk of a new situation and the probe chunks). Without an
``nn.Module`` in the call there is nothing to measure: item sizes are then unknown and such
calls use chunks of :data:`FALLBACK_ITEMS`.

Time is the process's CPU time on CPU (steady when other jobs share the machine; torch should
run with a fixed number of threads) and wall time after a device synchronisation on GPUs.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from xaiscore._checks import DTypeError, OptionError

__all__ = ["BatchPolicy", "parse_batch_policy", "parse_bytes", "adaptive_chunks", "clear_cache",
           "cached_choices"]

#: Bytes of chunk inputs that ``"auto"`` stays within on the CPU unless a budget is given.
AUTO_CPU_BYTES = 32 * 2**20
#: On a GPU: this share of its memory (at least 256 MiB).
AUTO_GPU_SHARE = 1 / 64
#: Candidate chunk sizes of ``"auto"`` (those within the budget).
CANDIDATES = (8, 16, 32, 64, 128, 256, 512, 1024)
#: Timed chunks per remaining candidate (the least time per item counts).
SAMPLES_PER_CANDIDATE = 3
#: A candidate this much slower per item than the best is dropped (and larger ones not tried).
CLEARLY_WORSE = 1.3
#: Chunk size when no ``nn.Module`` call reveals the item size.
FALLBACK_ITEMS = 64

_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$")


@dataclass(frozen=True)
class BatchPolicy:
    """How :func:`~xaiscore._engine.batching.chunked_map` sizes chunks other than by a fixed count.

    Attributes:
        auto: Probe for the fastest candidate size.
        max_bytes: The most bytes of items per chunk (``None``: auto's default, :meth:`budget`).
    """

    auto: bool = True
    max_bytes: int | None = None

    def budget(self, device: torch.device | None = None) -> int | None:
        """The byte budget: as given, else auto's default for ``device``
        (see :data:`AUTO_CPU_BYTES`)."""
        if self.max_bytes is not None or not self.auto:
            return self.max_bytes
        if device is not None and device.type == "cuda":
            total = torch.cuda.get_device_properties(device).total_memory
            return max(256 * 2**20, int(total * AUTO_GPU_SHARE))
        return AUTO_CPU_BYTES

    def __str__(self) -> str:
        size = "" if self.max_bytes is None else f"{self.max_bytes}B"
        return "auto" + (f":{size}" if size else "") if self.auto else size


def parse_bytes(text: str) -> int:
    """Bytes in a size such as ``"2GB"`` (decimal units), ``"512MiB"`` (binary) or ``"1000"``.

    Example:
        >>> parse_bytes("2GB"), parse_bytes("1.5 KiB"), parse_bytes("100")
        (2000000000, 1536, 100)
    """
    match = _SIZE.match(text.lower())
    if match is None or match.group(2) not in ("",) + tuple(_UNITS):
        raise OptionError(
            "Expected a byte size such as '2GB', '512MiB' or '1000000' (units B, kB, MB, GB, TB, "
            f"KiB, MiB, GiB, TiB), but got {text!r}."
        )
    value = int(float(match.group(1)) * _UNITS[match.group(2) or "b"])
    if value < 1:
        raise OptionError(f"Expected a byte budget of at least 1 byte, but got {text!r}.")
    return value


def parse_batch_policy(value: str | BatchPolicy) -> BatchPolicy:
    """``"auto"``, ``"auto:2GB"``, ``"2GB"`` or a :class:`BatchPolicy` as a :class:`BatchPolicy`.

    Example:
        >>> parse_batch_policy("auto"), parse_batch_policy("512MiB")
        (BatchPolicy(auto=True, max_bytes=None), BatchPolicy(auto=False, max_bytes=536870912))
    """
    if isinstance(value, BatchPolicy):
        if value.max_bytes is not None and (isinstance(value.max_bytes, bool)
                                            or not isinstance(value.max_bytes, int)
                                            or value.max_bytes < 1):
            raise OptionError(
                f"Expected `max_bytes` to be a positive int, but got {value.max_bytes!r}.")
        return value
    if not isinstance(value, str):
        raise DTypeError(
            "Expected `max_batch_size` as 'auto' or a byte budget, but got "
            f"{type(value).__name__}.")
    text = value.strip().lower()
    if text == "auto":
        return BatchPolicy(auto=True)
    if text.startswith("auto:"):
        return BatchPolicy(auto=True, max_bytes=_budget(text[5:], value))
    return BatchPolicy(auto=False, max_bytes=_budget(text, value))


def _budget(text: str, original: str) -> int:
    try:
        return parse_bytes(text)
    except OptionError:
        raise OptionError(
            "Expected `max_batch_size` to be a positive int, 'auto', a byte budget such as '2GB' "
            f"or both as 'auto:2GB', but got {original!r}."
        ) from None


# --- what a chunk sends through the model ---------------------------------------------------------


_FINGERPRINTS: weakref.WeakKeyDictionary[nn.Module, tuple] = weakref.WeakKeyDictionary()


def _fingerprint(module: nn.Module) -> tuple:
    """The module's class and parameter shapes: copies of one architecture share it."""
    known = _FINGERPRINTS.get(module)
    if known is None:
        known = (type(module).__qualname__,) + tuple(
            (name, tuple(p.shape), p.dtype) for name, p in module.named_parameters())
        _FINGERPRINTS[module] = known
    return known


class _Recorder:
    """Global forward hooks, while installed: the first top-level module call and all top-level
    inputs."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.depth = 0
        self.model: tuple | None = None
        self.item: tuple | None = None
        self.items = 0
        self.device: torch.device | None = None
        self._handles: list[Any] = []

    def __enter__(self) -> _Recorder:
        hooks = torch.nn.modules.module
        self._handles = [hooks.register_module_forward_pre_hook(self._pre),
                         hooks.register_module_forward_hook(self._post, always_call=True)]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()

    def _pre(self, module: nn.Module, args: tuple) -> None:
        if threading.get_ident() != self.thread:
            return
        if self.depth == 0 and args and isinstance(args[0], Tensor) and args[0].ndim >= 1:
            x = args[0]
            if self.model is None:
                self.model = _fingerprint(module)
                self.item = (tuple(x.shape[1:]), x.dtype)
                self.device = x.device
            self.items += x.shape[0]
        self.depth += 1

    def _post(self, module: nn.Module, args: tuple, output: object) -> None:
        if threading.get_ident() == self.thread:
            self.depth = max(0, self.depth - 1)

    def key(self, chunk_items: int) -> tuple | None:
        if self.model is None or self.item is None:
            return None
        per_item = round(self.items / chunk_items, 1)
        return self.model, self.item, str(self.device), per_item

    def item_bytes(self) -> int | None:
        if self.item is None:
            return None
        shape, dtype = self.item
        count = 1
        for side in shape:
            count *= side
        return count * torch.empty((), dtype=dtype).element_size()


# --- probing --------------------------------------------------------------------------------------


@dataclass
class _Choice:
    """What is known for one situation: the item size, the timings, and the choice once made.

    The probe runs in rounds. The first tries the candidates smallest first and stops at the
    first one that is :data:`CLEARLY_WORSE` per item than the best so far (larger chunks are
    then assumed worse still); every later round runs each remaining candidate once more (those
    within :data:`CLEARLY_WORSE` of the best), so slow drift of the machine hits all of them
    alike. After :data:`SAMPLES_PER_CANDIDATE` rounds the size with the least time per item
    (the least of its samples) is kept.
    """

    policy: BatchPolicy
    item_bytes: int | None
    device: torch.device | None = None
    samples: dict[int, list[float]] = field(default_factory=dict)
    chosen: int | None = None
    tried_all: bool = False

    def __post_init__(self) -> None:
        budget = self.policy.budget(self.device)
        cap = max(1, budget // self.item_bytes) if budget is not None and self.item_bytes else None
        if not self.policy.auto:
            self.chosen = cap if cap is not None else FALLBACK_ITEMS
            self.candidates: tuple[int, ...] = ()
        else:
            fitting = tuple(c for c in CANDIDATES if cap is None or c <= cap)
            self.candidates = fitting or (cap,)
            if len(self.candidates) == 1:
                self.chosen = self.candidates[0]

    def _best(self) -> float:
        return min(min(t) for t in self.samples.values())

    def _remaining(self) -> list[int]:
        best = self._best()
        return [c for c in self.candidates if c in self.samples
                and min(self.samples[c]) <= CLEARLY_WORSE * best]

    def next_size(self) -> int:
        if self.chosen is not None:
            return self.chosen
        if not self.tried_all:
            for size in self.candidates:
                if size not in self.samples:
                    return size
            self.tried_all = True
        remaining = self._remaining()
        return min(remaining, key=lambda c: (len(self.samples[c]), c))

    def observe(self, size: int, seconds: float) -> None:
        if self.chosen is not None or size not in self.candidates:
            return
        self.samples.setdefault(size, []).append(seconds / size)
        if not self.tried_all and (min(self.samples[size]) > CLEARLY_WORSE * self._best()
                                   or size == self.candidates[-1]):
            self.tried_all = True  # larger sizes are not tried
        if self.tried_all and all(len(self.samples[c]) >= SAMPLES_PER_CANDIDATE
                                  for c in self._remaining()):
            measured = {c: min(self.samples[c]) for c in self._remaining()}
            self.chosen = min(measured, key=measured.get)


_CHOICES: dict[tuple, _Choice] = {}
_LAST_KEY: dict[tuple, tuple] = {}
_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every cached choice (for tests and benchmarks)."""
    with _LOCK:
        _CHOICES.clear()
        _LAST_KEY.clear()


def cached_choices() -> dict[tuple, int | None]:
    """The cached chunk sizes: ``(site, model, item, device, inputs per item, policy) -> size``."""
    with _LOCK:
        return {key: choice.chosen for key, choice in _CHOICES.items()}


def _clock(device: torch.device | None) -> float:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


def adaptive_chunks(n_items: int, compute: Callable[[int, int], Tensor], policy: BatchPolicy
                    ) -> Iterator[tuple[int, int, Tensor]]:
    """Run ``compute`` over ``[0, n_items)`` in chunks sized by ``policy``; yield
    ``(start, stop, result)``.

    Example:
        >>> parts = adaptive_chunks(20, lambda s, e: torch.arange(s, e), parse_batch_policy("auto"))
        >>> torch.cat([out for _, _, out in parts]).tolist() == list(range(20))
        True
    """
    site = (getattr(compute, "__code__", None) or type(compute), policy)
    start = 0
    while start < n_items:
        with _LOCK:
            key = _LAST_KEY.get(site)
            choice = _CHOICES.get(key) if key is not None else None
        # Nothing known here yet: one item first, to learn the item size within any budget.
        size = min(n_items - start, choice.next_size() if choice is not None else 1)
        stop = start + size
        watch = choice is None or choice.chosen is None
        if not watch:
            yield start, stop, compute(start, stop)
            start = stop
            continue
        with _Recorder() as recorder:
            begin = _clock(None)
            out = compute(start, stop)
        seconds = _clock(recorder.device) - begin
        found = recorder.key(size)
        with _LOCK:
            full_key = site + (found,)
            if full_key not in _CHOICES:
                _CHOICES[full_key] = _Choice(policy, recorder.item_bytes(), recorder.device)
            _LAST_KEY[site] = full_key
            if full_key == key:  # timed in the situation it was sized for
                _CHOICES[full_key].observe(size, seconds)
        yield start, stop, out
        start = stop
