"""Explanation methods for the harness: explainers by name, and precomputed attributions from files.

A method entry of a config (:class:`~xaiscore.harness.config.MethodConfig`)
becomes a :class:`MethodExplainer`: an explain function ``(x, target) -> a``
built with :func:`xaiscore.explainers.make_explainer` (captum methods, the
``random`` and ``constant`` baselines, ``quantus``), seeded from the run seed.
Called with a model instead, ``explainer(model)`` returns the same method bound
to that model: the randomization metrics need such a factory to re-explain
randomized copies of the model.

Attributions the user computed elsewhere come from :class:`PrecomputedAttributions`
(``.pt``, ``.npz``, ``.npy`` + ids file, or netCDF), keyed by sample id.

Example:
    >>> import torch
    >>> from xaiscore.harness.config import MethodConfig
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval()
    >>> explain = MethodExplainer(MethodConfig("rnd", "random"), model, seed=0)
    >>> x, target = torch.zeros(3, 1, 4, 4), torch.zeros(3, dtype=torch.long)
    >>> explain(x, target).shape
    torch.Size([3, 1, 4, 4])
    >>> callable(explain(model))   # a factory for the randomization metrics
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from xaiscore._checks import ShapeError
from xaiscore._engine.random import derive_seed
from xaiscore.harness.config import PRECOMPUTED, ConfigError, MethodConfig

__all__ = ["derive_seed", "MethodExplainer", "PrecomputedAttributions", "method_settings",
           "resolve_options"]

_NO_SEED = ("constant", "quantus")
#: Methods whose maps do not depend on the model: a factory call draws new maps.
_MODEL_FREE = ("random", "constant")


def method_settings(config: MethodConfig) -> dict[str, Any]:
    """The method's settings as plain values (stored with the results and compared on resume)."""
    return {"method": config.method, **{k: v for k, v in config.options.items()}}


class MethodExplainer:
    """One configured method as an explain function, and as an explainer factory.

    Args:
        config: The method entry.
        model: The model to explain.
        seed: The seed of this explainer (derive it per method and batch so that
            every batch is reproducible on its own, whichever process runs it).

    ``explainer(x, target)`` explains; ``explainer(model)`` returns a new
    explain function of the same method for ``model``. A method that reads the model gets the
    same ``seed`` for every model, so that its random draws (RISE's masks, KernelShap's and
    Lime's coalitions, SmoothGrad's noise) are the same and a randomization metric compares
    maps, not draws; the ``random`` baseline is seeded from ``seed`` and a call counter (new
    maps for every model).
    """

    def __init__(self, config: MethodConfig, model: nn.Module, *, seed: int) -> None:
        if config.method == PRECOMPUTED:
            raise ConfigError(f"Method {config.name!r} is precomputed: it has no explain function.")
        self.config = config
        self.model = model
        self.seed = seed
        self._bound = self._build(model, seed)
        self._factory_calls = 0

    def _build(self, model: nn.Module, seed: int) -> Any:
        from xaiscore.explainers import make_explainer

        options = resolve_options(self.config.options)
        if self.config.method not in _NO_SEED:
            options.setdefault("seed", seed)
        return make_explainer(self.config.method, model, **options)

    def __repr__(self) -> str:
        return f"MethodExplainer({self.config.name!r}, {self.config.method!r})"

    def __call__(self, *args: Any) -> Any:
        if len(args) == 1 and isinstance(args[0], nn.Module):
            if self.config.method not in _MODEL_FREE:  # same draws (RISE masks ...) for every model
                return self._build(args[0], self.seed)
            self._factory_calls += 1
            return self._build(args[0], derive_seed(self.seed, "factory", self._factory_calls))
        x, target = args
        return self._bound(x, target)

    @property
    def shares_forward(self) -> bool:
        """Whether :meth:`explain_with_output` hands out the model's output
        (captum gradient methods)."""
        return bool(getattr(self._bound, "shares_forward", False))

    def explain_with_output(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor | None]:
        """The attributions and, for single-pass methods, the model's output from the same forward
        pass (see :meth:`xaiscore.explainers.CaptumExplainer.explain_with_output`); else ``None``.
        """
        if not self.shares_forward:
            return self._bound(x, target), None
        return self._bound.explain_with_output(x, target)


class PrecomputedAttributions:
    """Attribution maps read from a file, looked up by sample id.

    Formats (by suffix):

    * ``.pt``/``.pth``: a dict ``{sample_id: tensor (C, *S)}``, or
      ``{"ids": [...], "attributions": tensor (N, C, *S)}`` (read with ``weights_only=True``);
    * ``.npz``: arrays ``ids`` (strings) and ``attributions`` ``(N, C, *S)``;
    * ``.npy``: an array ``(N, C, *S)`` plus ``ids``, a text file with one id per line;
    * ``.nc``: a netCDF variable ``variable`` (default ``"attributions"``) with a
      leading ``sample`` dim; ids from its ``source_id`` coordinate (or the
      ``sample`` coordinate).

    A map of shape ``(*S)`` (no channel axis) gets one.

    Args:
        path: The file.
        ids: The ids file for ``.npy``.
        variable: The netCDF variable.

    Raises:
        ConfigError: the file (or ids file) does not exist, has an unknown
            suffix, or lacks ``ids``/``attributions``; on lookup, a sample id
            that is not in the file (the message names the file and the id).
        ShapeError: on lookup, a map of the wrong shape (names the file and id).

    Example:
        >>> import tempfile, torch
        >>> path = Path(tempfile.mkdtemp()) / "maps.pt"
        >>> torch.save({"a": torch.ones(1, 4, 4), "b": torch.zeros(4, 4)}, path)
        >>> maps = PrecomputedAttributions(path)
        >>> maps.lookup(["b", "a"], like=torch.zeros(2, 1, 4, 4)).sum().item()
        16.0
    """

    def __init__(self, path: str | os.PathLike[str], *, ids: str | os.PathLike[str] | None = None,
                 variable: str = "attributions") -> None:
        self.path = Path(path)
        self.ids_path = None if ids is None else Path(ids)
        self.variable = variable
        self._index: dict[str, int] | None = None
        self._maps: Sequence[Tensor] | Tensor | None = None

    def _load(self) -> None:
        if not self.path.is_file():
            raise ConfigError(f"Precomputed attributions file {str(self.path)!r} does not exist.")
        suffix = self.path.suffix.lower()
        readers = {".pt": self._load_torch, ".pth": self._load_torch, ".npz": self._load_npz,
                   ".npy": self._load_npy, ".nc": self._load_netcdf}
        if suffix not in readers:
            raise ConfigError(
                f"{self.path}: expected a .pt, .pth, .npz, .npy or .nc file, but got {suffix!r}.")
        ids, maps = readers[suffix]()
        count = maps.shape[0] if isinstance(maps, Tensor) and maps.ndim else len(maps)
        if count != len(ids):
            raise ConfigError(
                f"{self.path}: expected one map per id, but got {len(ids)} ids and {count} maps.")
        if len(set(ids)) != len(ids):
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            raise ConfigError(f"{self.path}: sample ids occur more than once: {duplicates[:5]}.")
        self._index = {sample_id: i for i, sample_id in enumerate(ids)}
        self._maps = maps

    def _load_npz(self) -> tuple[list[str], Tensor]:
        with np.load(self.path, allow_pickle=False) as data:
            missing = [k for k in ("ids", "attributions") if k not in data.files]
            if missing:
                raise ConfigError(
                    f"{self.path}: expected arrays 'ids' and 'attributions', but {missing} "
                    f"are missing (it holds {data.files}).")
            return [str(i) for i in data["ids"]], torch.from_numpy(np.asarray(data["attributions"]))

    def _load_npy(self) -> tuple[list[str], Tensor]:
        if self.ids_path is None:
            raise ConfigError(
                f"{self.path}: a .npy file holds no sample ids; give `ids`, a text file with "
                "one id per line (or use .npz, .pt or .nc).")
        if not self.ids_path.is_file():
            raise ConfigError(f"Ids file {str(self.ids_path)!r} (for {self.path}) does not exist.")
        ids = [line.strip() for line
               in self.ids_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return ids, torch.from_numpy(np.load(self.path, allow_pickle=False))

    def _load_torch(self) -> tuple[list[str], Tensor | list[Tensor]]:
        import pickle

        from xaiscore.harness.rundir import UnsafeFileError

        try:
            content = torch.load(self.path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            if "weights only" in str(error).lower():
                raise UnsafeFileError(
                    f"{self.path}: refused to load these precomputed attributions: the file "
                    "holds objects other than plain tensors and data (a pickle that could run "
                    "code). Save the maps as plain tensors (a dict of id -> tensor), .npz or .nc."
                ) from None
            raise ConfigError(f"Cannot read precomputed attributions {str(self.path)!r}: "
                              f"{str(error).splitlines()[0]}") from error
        except Exception as error:  # torch raises several types for a bad file; name the file
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ConfigError(
                f"Cannot read precomputed attributions {str(self.path)!r}: {first}") from error
        if not isinstance(content, Mapping):
            raise ConfigError(
                f"{self.path}: expected a dict of id -> map, or with keys 'ids' and "
                f"'attributions', but got {type(content).__name__}.")
        if "ids" in content and "attributions" in content:
            return [str(i) for i in content["ids"]], torch.as_tensor(content["attributions"])
        maps = []
        for key, value in content.items():
            if not isinstance(value, Tensor):
                raise ConfigError(f"{self.path}: expected a tensor for sample id {key!r}, but got "
                                  f"{type(value).__name__}.")
            maps.append(value)
        return [str(k) for k in content], maps

    def _load_netcdf(self) -> tuple[list[str], Tensor]:
        import xarray as xr

        with xr.open_dataset(self.path) as data:
            if self.variable not in data:
                raise ConfigError(
                    f"{self.path}: expected a variable {self.variable!r}, but it holds "
                    f"{sorted(map(str, data.data_vars))}.")
            values = data[self.variable]
            if values.dims[0] != "sample":
                raise ConfigError(
                    f"{self.path}: expected {self.variable!r} to have a leading 'sample' dim, "
                    f"but its dims are {values.dims}.")
            source = values["source_id"] if "source_id" in values.coords else values["sample"]
            return [str(i) for i in source.values], torch.from_numpy(np.asarray(values.values))

    def lookup(self, source_ids: Sequence[str], *, like: Tensor) -> Tensor:
        """The maps of ``source_ids`` as ``(B, C', *S)`` on the device and in the dtype of ``like``
        (``x``).

        Raises:
            ConfigError: an id is not in the file.
            ShapeError: a map's shape is not ``(C, *S)``/``(1, *S)``/``(*S)`` for ``like`` of
                ``(B, C, *S)``.
        """
        if self._index is None:
            self._load()
        spatial = tuple(like.shape[2:])
        rows = []
        for sample_id in source_ids:
            position = self._index.get(str(sample_id))  # type: ignore[union-attr]
            if position is None:
                examples = list(self._index)[:3]  # type: ignore[arg-type]
                raise ConfigError(f"{self.path}: no attributions for sample id {sample_id!r} "
                                  f"({len(self._index)} ids in the file, e.g. {examples}).")  # type: ignore[arg-type]
            a = torch.as_tensor(self._maps[position])  # type: ignore[index]
            if tuple(a.shape) == spatial:
                a = a.unsqueeze(0)
            if tuple(a.shape[1:]) != spatial or a.shape[0] not in (1, like.shape[1]):
                raise ShapeError(
                    f"{self.path}: expected the map of sample {sample_id!r} of shape "
                    f"{(like.shape[1], *spatial)} or {(1, *spatial)}, but got {tuple(a.shape)}."
                )
            rows.append(a)
        channels = {r.shape[0] for r in rows}
        if len(channels) > 1:
            rows = [r.expand(like.shape[1], *spatial) if r.shape[0] == 1 else r for r in rows]
        return torch.stack(rows).to(device=like.device, dtype=like.dtype)


def _import_reference(reference: str, key: str) -> Any:
    from xaiscore.harness.models import _import_factory

    return _import_factory(reference, what=f"`{key}` function")


def resolve_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options as the explainer builders take them: references imported, masks loaded.

    Raises:
        ConfigError: a reference cannot be imported or a mask file cannot be read.
    """
    from xaiscore.harness.method_options import REFERENCE_OPTIONS

    values = dict(options)
    for key in REFERENCE_OPTIONS:
        value = values.get(key)
        if key == "feature_mask" and isinstance(value, str) and value.endswith((".npy", ".pt")):
            values[key] = _load_mask(Path(value))
        elif key == "feature_mask" and isinstance(value, list):
            values[key] = torch.as_tensor(value, dtype=torch.long)
        elif isinstance(value, str):
            values[key] = _import_reference(value, key)
    return values


def _load_mask(path: Path) -> torch.Tensor:
    if not path.is_file():
        raise ConfigError(f"Feature mask file {str(path)!r} does not exist.")
    if path.suffix == ".npy":
        import numpy as np

        return torch.from_numpy(np.load(path, allow_pickle=False)).long()
    mask = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(mask, torch.Tensor):
        raise ConfigError(f"Expected the feature mask file {str(path)!r} to hold a tensor, but got "
                          f"{type(mask).__name__}.")
    return mask.long()
