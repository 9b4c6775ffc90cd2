"""Scale-out with ``torch.distributed``: shard batches over processes, gather results on rank 0.

Under ``torchrun --nproc_per_node=N xaiscore run config.toml`` (or any launcher
that sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``), the runner
joins the process group (``gloo`` on CPU, ``nccl`` on CUDA), processes batches
``b`` with ``b % N == rank`` on its own device (``cuda:LOCAL_RANK``), and sends
its results to rank 0, which assembles the one Dataset, writes it and the
report. Batches, not samples, are the unit, and every batch is seeded by its
index, so an N-process run gives the same Dataset as a 1-process run.

A process group the caller initialised already is used as it is (and left open).

Example:
    >>> ctx = DistributedContext.from_environment(device="cpu")
    >>> ctx.rank, ctx.world_size, ctx.owns(5)
    (0, 1, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["DistributedContext", "resolve_device"]


def resolve_device(device: str | torch.device | None, *, local_rank: int = 0) -> torch.device:
    """``"auto"``/``None`` -> CUDA if available, else CPU; a bare ``"cuda"`` -> ``cuda:local_rank``.

    Raises:
        OptionError: ``device`` is not a device name torch knows.
        DeviceError: this machine (or this build of torch) has no such device.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    from xaiscore._checks import OptionError

    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise OptionError(
            f"Expected a device such as 'cpu', 'cuda', 'cuda:1' or 'auto', but got {device!r} "
            f"({str(error).splitlines()[0]})."
        ) from None
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    _check_available(device)
    return device


def _check_available(device: torch.device) -> None:
    """Raise :class:`~xaiscore.DeviceError` for a CUDA or MPS device this machine does not have."""
    from xaiscore._checks import DeviceError

    if device.type == "cuda":
        if torch.version.cuda is None:
            raise DeviceError(
                f"Expected a device this machine has, but got {str(device)!r}: this torch "
                f"({torch.__version__}) was built without CUDA. Use --device cpu (or 'auto'), "
                "or install a CUDA build of torch."
            )
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"Expected a device this machine has, but got {str(device)!r}: torch sees "
                f"{count} CUDA device(s). Use --device cpu (or 'auto')."
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(
            f"Expected a device this machine has, but got {str(device)!r}: MPS is not "
            "available. Use --device cpu (or 'auto')."
        )


@dataclass
class DistributedContext:
    """Rank, world size and device of this process, and whether it opened the process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    opened_group: bool = False

    @classmethod
    def from_environment(cls, *, device: str | torch.device | None) -> DistributedContext:
        """Join the process group when one exists or the environment describes one
        (``WORLD_SIZE`` > 1)."""
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(), dist.get_world_size()
            return cls(rank, world, local_rank, resolve_device(device, local_rank=local_rank),
                       False)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(0, 1, 0, resolve_device(device))
        resolved = resolve_device(device, local_rank=local_rank)
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        dist.init_process_group(backend=backend)
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, resolved, True)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, batch: int) -> bool:
        """Whether this process computes ``batch``."""
        return batch % self.world_size == self.rank

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def gather(self, value: Any) -> list[Any] | None:
        """Every process's ``value`` on rank 0 (in rank order), ``None`` elsewhere."""
        if self.world_size == 1:
            return [value]
        import torch.distributed as dist

        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process."""
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        """Leave the process group if this context opened it."""
        if self.opened_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.opened_group = False
