"""Perturbed images built by rewriting only what changed (CPU): the sparse path of
``perturbed_scores``.

:func:`xaiscore._engine.perturbation.perturbed_scores` builds item ``(b, t)`` as ``x[b]`` with the
elements of rank in ``[lo[b, t], hi[b, t])`` taken from a substrate. Building every element of every
item costs a few passes over each image; with a cheap model on a CPU that is most of the metric's
time although consecutive steps differ in few elements (pixel flipping at 224 x 224 changes 224 of
50,176 pixels per step). :class:`IncrementalBuilder` instead keeps, per sample, the image it built
last (the *state*) and the interval of ranks that image has replaced, and builds an item from the
state or from ``x``, whichever differs from it in fewer elements, by overwriting only those elements
(a symmetric difference of two rank intervals: at most four runs of the elements sorted by rank).
Values are copied, never computed, so the items are bit for bit those of the dense path.

The builder is used where it pays: on CPU tensors (its bookkeeping reads a few counts on the host,
free there and a synchronisation on a GPU, where the dense passes are cheap anyway), for a constant
or tensor substrate (not one that draws values per item), and when the estimated number of changed
elements is a small fraction of all elements built (:data:`DENSE_COST`); otherwise
``perturbed_scores`` builds items densely as before.

Items are written into the state in place and handed to the model as a view when a chunk is one
sample range at one step; the model must not keep its input beyond the call. A model that modifies
its input in place is detected through the tensor's version counter and the state is rebuilt from
``x`` (correct, only slower).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from xaiscore._engine.sorting import _sort_rows_

__all__ = ["DENSE_COST", "COPY_COST", "IncrementalBuilder", "incremental_builder"]

#: Costs per element, in units of one rewritten element (index arithmetic, a read, a scattered
#: write: about 10 ns on the development CPU): building an element densely (a few float passes)
#: and copying one (a base image into the output).
DENSE_COST = 1 / 14
COPY_COST = 1 / 64

# Runs of an item relative to its base: the first two take the substrate, the last two x.
_RUNS = 4

#: A plan: the base (``"state"`` or ``"x"``), then the runs' starts and lengths, as ``(kt, kb, 4)``
#: arrays or, for a one-step piece whose samples share them, as two lists of 4 Python integers.
Plan = tuple[str, "np.ndarray | list[int]", "np.ndarray | list[int]"]


def _full_bounds(bound: Tensor | None, b: int, n_steps: int, fill: int, n_ranks: int) -> np.ndarray:
    """``(B, T)`` int64 bounds in ``[0, R]`` from ``(B, T)``, ``(T,)`` or ``None`` (then ``fill``).
    """
    if bound is None:
        return np.full((b, n_steps), fill, dtype=np.int64)
    values = bound.detach().long().clamp(0, n_ranks).numpy()
    return np.ascontiguousarray(np.broadcast_to(values, (b, n_steps)))


def _interval_changes(a0: np.ndarray, a1: np.ndarray, c0: np.ndarray, c1: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Runs turning an image with ``[c0, c1)`` replaced into one with ``[a0, a1)`` replaced.

    Returns ``(starts, lengths)`` of shape ``(..., 4)``: positions in ``[a0, a1)`` outside
    ``[c0, c1)`` (two runs, to take the substrate), then positions in ``[c0, c1)`` outside
    ``[a0, a1)`` (two runs, to take ``x``). Empty intervals (``c0 == c1``) work: the first two
    runs then split ``[a0, a1)`` at ``c0``.
    """
    shape = np.broadcast_shapes(a0.shape, a1.shape, c0.shape, c1.shape) + (_RUNS,)
    starts, stops = np.empty(shape, dtype=np.int64), np.empty(shape, dtype=np.int64)
    starts[..., 0], stops[..., 0] = a0, np.minimum(a1, c0)
    np.maximum(a0, c1, out=starts[..., 1])
    stops[..., 1] = a1
    starts[..., 2], stops[..., 2] = c0, np.minimum(c1, a0)
    np.maximum(c0, a1, out=starts[..., 3])
    stops[..., 3] = c1
    stops -= starts
    return starts, np.maximum(stops, 0, out=stops)


class IncrementalBuilder:
    """Builds the items of :func:`~xaiscore._engine.perturbation.perturbed_scores` by sparse
    rewrites (CPU only).

    The bookkeeping (intervals, runs, indices) is done in numpy, whose per-call overhead is a
    fraction of torch's on the few thousand indices a chunk needs; values move with torch
    ``take``/``put_`` (every dtype).

    Args:
        x: ``(B, C, *S)`` inputs.
        rank: ``(B|1, 1|C, *S)`` integer element ranks (non-negative).
        n_ranks: One more than the largest rank (``R``).
        lo, hi: ``(B, T)`` int64 bounds in ``[0, R]`` (``lo`` 0 and ``hi`` ``R`` where not given).
        substrate: A float or a tensor broadcastable to ``x`` (batch axis 1 or ``B``).
    """

    def __init__(self, x: Tensor, rank: Tensor, n_ranks: int, lo: np.ndarray, hi: np.ndarray,
                 substrate: Tensor | float) -> None:
        self.x = x
        self.b = x.shape[0]
        rank_rows = rank.reshape(rank.shape[0], -1).long()
        self.m = rank_rows.shape[1]  # elements per rank row
        self.channels = x.shape[1] if rank.shape[1] == 1 else 1  # x elements per rank element
        self.row_length = self.channels * self.m
        order, sorted_ranks = self._order(rank_rows, n_ranks)
        self.order_rows = order.shape[0]
        self.values = self._sorted_values(order, substrate)  # (2, B, C', M): x, substrate
        self.order = order  # (rows, M) int64: slices serve as scatter_ indices as they are
        self.order_numpy = order.reshape(-1).numpy()  # the same memory
        self.lo_pos = self._positions(lo, sorted_ranks)
        self.hi_pos = self._positions(hi, sorted_ranks)
        # Per step: do all samples share their bound positions? Then a one-step piece needs no
        # per-sample bookkeeping when the samples' states agree too (see `_plan_uniform`).
        self.shared_steps = ((self.lo_pos == self.lo_pos[:1]).all(axis=0)
                             & (self.hi_pos == self.hi_pos[:1]).all(axis=0)).tolist()
        self.values_numpy = self.values.numpy() if self.values.dtype != torch.bfloat16 else None
        self.state: Tensor | None = None
        self.state_lo = np.zeros(self.b, dtype=np.int64)
        self.state_hi = np.zeros(self.b, dtype=np.int64)

    # --- set-up ------------------------------------------------------------------------------

    @staticmethod
    def _order(ranks: Tensor, n_ranks: int) -> tuple[Tensor, np.ndarray | None]:
        """Element indices of each rank row sorted by rank, and the sorted ranks (``None``: 0..M-1).
        """
        rows, m = ranks.shape
        every = torch.arange(m).expand(rows, m)
        if n_ranks == m:  # every rank once per row? then inverting the permutation sorts it
            order = torch.full((rows, m), -1, dtype=torch.long)
            order.scatter_(1, ranks, every)
            if int(order.min()) >= 0:  # m values filled all m slots: the ranks were all distinct
                return order, None
        keys = (ranks << 32).numpy()
        keys |= np.arange(m)
        _sort_rows_(keys)
        return torch.from_numpy(keys & 0xFFFFFFFF), keys >> 32

    @staticmethod
    def _positions(bounds: np.ndarray, sorted_ranks: np.ndarray | None) -> np.ndarray:
        """Positions in the rank order of ``bounds`` ``(B, T)``: how many elements rank below each.
        """
        if sorted_ranks is None:
            return bounds
        if sorted_ranks.shape[0] == 1:
            return np.searchsorted(sorted_ranks[0], bounds)
        # One search over all rows: shifting row i by i * (R + 1) keeps the concatenation sorted.
        rows, m = sorted_ranks.shape
        # a row's shift exceeds every value
        span = max(int(sorted_ranks.max()), int(bounds.max())) + 1
        shift = np.arange(rows, dtype=np.int64)[:, None] * span
        found = np.searchsorted((sorted_ranks + shift).reshape(-1), bounds + shift)
        return found - np.arange(rows, dtype=np.int64)[:, None] * m

    def _sorted_values(self, order: Tensor, substrate: Tensor | float) -> Tensor:
        """``x`` and the substrate broadcast to ``x``, each rank row's elements in rank order.

        Runs of an item then read consecutive values instead of scattered ones.
        """
        shape = (self.b, self.channels, self.m)
        index = order.unsqueeze(1).expand(shape)
        values = torch.empty((2,) + shape, dtype=self.x.dtype)
        torch.gather(self.x.reshape(shape), 2, index, out=values[0])
        if isinstance(substrate, Tensor):
            full = substrate.to(self.x.dtype).expand(self.x.shape).reshape(shape)
            if substrate[0].numel() == 1:
                values[1].copy_(full)
            else:
                torch.gather(full, 2, index, out=values[1])
        else:
            values[1].fill_(substrate)
        return values.reshape(-1)

    # --- building ----------------------------------------------------------------------------

    def plan(self, t0: int, t1: int, b0: int, b1: int, *, in_place: bool) -> Plan | None:
        """Choose the base (``"state"`` or ``"x"``) of a piece and its runs, or ``None``
        (build densely).

        See :data:`Plan` for the form of the runs.

        ``in_place``: the piece is a whole chunk at one step, which can be built in the state's
        rows and handed to the model without a copy.
        """
        if self.state is None:  # the state starts as x itself, nothing replaced
            self.state = self.x.detach().clone(memory_format=torch.contiguous_format)
        if t1 - t0 == 1:
            uniform = self._plan_uniform(t0, b0, b1, in_place=in_place)
            if uniform is not False:
                return uniform
        a0 = self.lo_pos[b0:b1, t0:t1].T  # (kt, kb), step-major like the chunk
        a1 = self.hi_pos[b0:b1, t0:t1].T
        elements = a0.size * self.row_length
        starts, lengths = _interval_changes(a0, a1, self.state_lo[b0:b1], self.state_hi[b0:b1])
        copies = 0 if in_place and t1 - t0 == 1 else elements + (b1 - b0) * self.row_length
        cost_state = int(lengths.sum()) * self.channels + COPY_COST * copies
        cost_x = int(np.maximum(a1 - a0, 0).sum()) * self.channels + COPY_COST * elements
        if min(cost_x, cost_state) > DENSE_COST * elements:
            return None
        if cost_state <= cost_x:
            return "state", starts, lengths
        return ("x",) + _interval_changes(a0, a1, np.zeros(1, np.int64), np.zeros(1, np.int64))

    def _plan_uniform(self, t: int, b0: int, b1: int, *, in_place: bool
                      ) -> tuple[str, list[int], list[int]] | None | bool:
        """:meth:`plan` for one step whose bounds and states agree across the samples, in Python
        integers (the common case: shared step bounds over rank permutations); ``False`` otherwise.

        The runs come back as two lists of :data:`_RUNS` integers, the same for every sample.
        """
        kb = b1 - b0
        if kb > 1:
            if not self.shared_steps[t]:
                return False
            state_lo, state_hi = self.state_lo[b0:b1], self.state_hi[b0:b1]
            if state_lo.min() != state_lo.max() or state_hi.min() != state_hi.max():
                return False
        a0, a1 = int(self.lo_pos[b0, t]), int(self.hi_pos[b0, t])
        c0, c1 = int(self.state_lo[b0]), int(self.state_hi[b0])
        elements = kb * self.row_length

        def runs(c0: int, c1: int) -> tuple[list[int], list[int]]:
            starts = [a0, max(a0, c1), c0, max(c0, a1)]
            stops = [min(a1, c0), a1, min(c1, a0), c1]
            return starts, [max(stop - start, 0) for start, stop in zip(starts, stops)]

        state_starts, state_lengths = runs(c0, c1)
        copies = 0 if in_place else elements + kb * self.row_length
        cost_state = sum(state_lengths) * kb * self.channels + COPY_COST * copies
        cost_x = max(a1 - a0, 0) * kb * self.channels + COPY_COST * elements
        if min(cost_x, cost_state) > DENSE_COST * elements:
            return None
        if cost_state <= cost_x:
            return "state", state_starts, state_lengths
        return ("x",) + runs(0, 0)

    def build_in_state(self, plan: Plan, t0: int, t1: int, b0: int, b1: int) -> Tensor | None:
        """For a one-step piece based on the state: rewrite the state and return its rows (a view).
        """
        base, starts, lengths = plan
        if base != "state" or t1 - t0 != 1:
            return None
        rows = self.state[b0:b1]
        if isinstance(starts, list):
            self._scatter_runs(rows, b0, b1 - b0, starts, lengths)
        else:
            self._scatter(rows, np.arange(b0, b1), starts[0], lengths[0])
        self.state_lo[b0:b1] = self.lo_pos[b0:b1, t0]
        self.state_hi[b0:b1] = self.hi_pos[b0:b1, t0]
        return rows

    def build(self, plan: Plan, out: Tensor, t0: int, t1: int, b0: int, b1: int) -> None:
        """Write the piece's items into ``out`` ``(kt * kb, C, *S)`` (step-major)."""
        base, starts, lengths = plan
        kt, kb = t1 - t0, b1 - b0
        if base == "state" and kt == 1:
            out.copy_(self.build_in_state(plan, t0, t1, b0, b1))
            return
        source = self.state if base == "state" else self.x
        view = out.view((kt, kb) + tuple(self.x.shape[1:]))
        view.copy_(source[b0:b1].unsqueeze(0).expand_as(view))
        if isinstance(starts, list):  # one step, runs shared by its samples
            self._scatter_runs(out, b0, kb, starts, lengths)
        else:
            self._scatter(out, np.tile(np.arange(b0, b1), kt), starts.reshape(-1, _RUNS),
                          lengths.reshape(-1, _RUNS))
        if base == "state":
            self.state[b0:b1].copy_(view[-1])
            self.state_lo[b0:b1] = self.lo_pos[b0:b1, t1 - 1]
            self.state_hi[b0:b1] = self.hi_pos[b0:b1, t1 - 1]

    def adopt(self, out: Tensor, t0: int, t1: int, b0: int, b1: int) -> None:
        """Take the last step of a densely built piece ``out`` ``(kt * kb, C, *S)`` as the state.

        Later steps of those samples then start from it (e.g. insertion: the first step replaces
        almost everything, each later one a little less).
        """
        kb = b1 - b0
        self.state[b0:b1].copy_(out[out.shape[0] - kb:])
        self.state_lo[b0:b1] = self.lo_pos[b0:b1, t1 - 1]
        self.state_hi[b0:b1] = self.hi_pos[b0:b1, t1 - 1]

    def reset(self, b0: int, b1: int) -> None:
        """Rebuild the state of samples ``b0 .. b1 - 1`` from ``x`` (after a model wrote into it).
        """
        self.state[b0:b1].copy_(self.x[b0:b1])
        self.state_lo[b0:b1] = 0
        self.state_hi[b0:b1] = 0

    def _scatter_uniform(self, out: Tensor, samples: np.ndarray, starts: np.ndarray,
                         lengths: np.ndarray) -> bool:
        """The common case of :meth:`_scatter` without index arithmetic; ``False`` if it does not
        apply.

        It applies when the items are consecutive samples whose runs all start and end at the same
        positions (shared step bounds over rank permutations: pixel flipping, deletion, insertion,
        faithfulness estimate): each run is then a slice of the rank order, the same for every item,
        and one ``scatter_`` per run writes it.
        """
        n = samples.shape[0]
        if n > 1 and (samples[-1] - samples[0] != n - 1 or (lengths != lengths[0]).any()
                      or (starts[:, lengths[0] > 0] != starts[0, lengths[0] > 0]).any()):
            return False
        self._scatter_runs(out, int(samples[0]), n, starts[0].tolist(), lengths[0].tolist())
        return True

    def _scatter_runs(self, out: Tensor, first: int, n: int, starts: list[int],
                      lengths: list[int]) -> None:
        """Overwrite the runs ``starts``/``lengths`` (:data:`_RUNS` each, shared by every item) of
        ``out`` ``(n, C, *S)``, whose items are samples ``first .. first + n - 1``: one ``scatter_``
        per non-empty run (the first two take the substrate, the last two ``x``)."""
        rows = slice(first, first + n) if self.order_rows > 1 else slice(0, 1)
        values = self.values.view(2, self.b, self.channels, self.m)
        target = out.view(n, self.channels, self.m)
        for run, (begin, length) in enumerate(zip(starts, lengths)):
            if length <= 0:
                continue
            index = self.order[rows, begin:begin + length].unsqueeze(1).expand(n, self.channels, -1)
            source = values[1 if run < 2 else 0, first:first + n, :, begin:begin + length]
            target.scatter_(2, index, source)

    def _scatter(self, out: Tensor, samples: np.ndarray, starts: np.ndarray,
                 lengths: np.ndarray) -> None:
        """Overwrite the runs of every item of ``out`` ``(n, C, *S)`` (contiguous); ``samples``
        ``(n,)``.

        ``starts``/``lengths`` ``(n, 4)`` are runs of positions in the rank order; the first two
        take the substrate, the last two ``x``.
        """
        run_id = np.flatnonzero(lengths)
        if run_id.size == 0:
            return
        if self._scatter_uniform(out, samples, starts, lengths):
            return
        item, kind = np.divmod(run_id, _RUNS)
        sample = samples[item]
        start = starts.reshape(-1)[run_id]
        length = lengths.reshape(-1)[run_id]
        # Per run and channel: where its values, its order entries and its destination begin.
        channel = np.arange(self.channels) * self.m
        source = np.where(kind < 2, self.b, 0) + sample  # row of the (2 * B) value rows
        value_base = (source * self.row_length + start)[:, None] + channel
        destination_base = (item * self.row_length)[:, None] + channel
        order_base = sample * self.m + start if self.order_rows > 1 else start
        length = np.repeat(length, self.channels)
        total = int(length.sum())
        first = np.cumsum(length) - length  # where each run begins among all rewritten elements
        within = np.arange(total)
        order_index = np.repeat(np.repeat(order_base, self.channels) - first, length) + within
        element = self.order_numpy.take(order_index)
        value_index = np.repeat(value_base.reshape(-1) - first, length) + within
        destination = np.repeat(destination_base.reshape(-1), length) + element
        # numpy's take and assignment: ~2x torch
        if self.values_numpy is not None and out.is_contiguous():
            out.numpy().reshape(-1)[destination] = self.values_numpy.take(value_index)
        else:  # bfloat16
            values = self.values.take(torch.from_numpy(value_index))
            out.view(-1).put_(torch.from_numpy(destination), values)


def incremental_builder(x: Tensor, rank: Tensor, lo: Tensor | None, hi: Tensor | None,
                        substrate: object) -> IncrementalBuilder | None:
    """An :class:`IncrementalBuilder` when the sparse path can apply and is likely to pay, else
    ``None``.

    It applies to CPU tensors with a constant or tensor substrate and integer ranks. The estimate
    counts, in ranks, how much consecutive steps of a sample differ (or each item differs from
    ``x``) against all the ranks the items span.
    """
    if x.device.type != "cpu" or rank.device.type != "cpu" or rank.is_floating_point():
        return None
    if isinstance(substrate, bool) or not isinstance(substrate, (int, float, Tensor)):
        return None
    if isinstance(substrate, Tensor) and (substrate.device.type != "cpu"
                                          or substrate.ndim != x.ndim):
        return None
    if rank.numel() == 0 or x.numel() == 0:
        return None
    n_ranks = int(rank.max()) + 1
    if int(rank.min()) < 0:
        return None
    b = x.shape[0]
    given = lo if lo is not None else hi
    n_steps = given.shape[-1]
    lo_full = _full_bounds(lo, b, n_steps, 0, n_ranks)
    hi_full = _full_bounds(hi, b, n_steps, n_ranks, n_ranks)
    width = np.maximum(hi_full - lo_full, 0)
    # Consecutive steps of one sample: the symmetric difference of their intervals, in ranks.
    start = np.zeros((b, 1), dtype=np.int64)
    previous_lo = np.concatenate([start, lo_full[:, :-1]], axis=1)
    previous_hi = np.concatenate([start, hi_full[:, :-1]], axis=1)
    _, lengths = _interval_changes(lo_full, hi_full, previous_lo, previous_hi)
    changes = min(int(width.sum()), int(lengths.sum()))
    if changes > DENSE_COST * b * n_steps * n_ranks:
        return None
    substrate_value = (float(substrate) if isinstance(substrate, (int, float))
                       else substrate.detach())
    return IncrementalBuilder(x.detach(), rank, n_ranks, lo_full, hi_full, substrate_value)
