"""xaiscore: vectorized PyTorch metrics for scoring attribution maps.

Pure functions live in :mod:`xaiscore.functional`; the registry of metrics in
:mod:`xaiscore.specs`; hypothesis strategies in :mod:`xaiscore.testing.strategies`
(imported on demand, never from here).

Example:
    >>> import torch, xaiscore
    >>> from xaiscore.functional import pointing_game
    >>> a = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool); mask[..., :4, :4] = True
    >>> pointing_game(a, mask).shape
    torch.Size([2])
"""

from xaiscore import functional, specs
from xaiscore._checks import (
    DeviceError,
    DTypeError,
    MaskError,
    NonFiniteError,
    OptionError,
    ShapeError,
    XaiscoreError,
)
from xaiscore._engine.batching import ModelOutput, ModelOutputError, declare_model_output
from xaiscore._version import __version__

__all__ = [
    "__version__",
    "functional",
    "specs",
    "XaiscoreError",
    "ShapeError",
    "DTypeError",
    "NonFiniteError",
    "MaskError",
    "DeviceError",
    "OptionError",
    "ModelOutputError",
    "ModelOutput",
    "declare_model_output",
]
