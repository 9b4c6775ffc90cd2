"""Models for the harness: the demo CNN and its deterministic training, and loading users' models.

* :class:`SmallCNN` -- three conv blocks and a linear head, 1 to 3 spatial
  dims; ``features.6`` is the last convolution (the Grad-CAM layer).
* :func:`train_model` -- deterministic training (explicit generator for the
  initialisation and the shuffling, deterministic algorithms, no worker
  processes); the demo trains in seconds on 2 CPU cores.
* :func:`load_model` -- a user's model: an importable factory
  ``"package.module:function"`` plus a state-dict file, a TorchScript file,
  or a ``torch.export`` program.
* :func:`build_model` -- the model of a run config: a user's, or the demo CNN
  trained once on synthetic data and cached in the run folder.
* :func:`model_fingerprint` -- a hash of the weights, so that a resumed run
  can refuse to mix results of two different models.

Example:
    >>> from xaiscore.harness.data.synthetic import make_synthetic_dataset
    >>> model = SmallCNN(in_channels=1, num_classes=2, generator=torch.Generator().manual_seed(0))
    >>> model(torch.zeros(3, 1, 16, 16)).shape
    torch.Size([3, 2])
    >>> data = make_synthetic_dataset(16, size=(16, 16))
    >>> history = train_model(model, data, epochs=1, batch_size=8, seed=0)
    >>> len(history["loss"]), len(history["accuracy"]), model.training
    (2, 1, False)
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from xaiscore._checks import DTypeError, OptionError, check_positive_int
from xaiscore._engine.random import derive_seed
from xaiscore.harness.config import ConfigError

if TYPE_CHECKING:
    from xaiscore.harness.config import RunConfig
    from xaiscore.harness.distributed import DistributedContext
    from xaiscore.harness.store import RunStore

__all__ = [
    "SmallCNN",
    "train_model",
    "accuracy",
    "load_model",
    "build_model",
    "eval_mode",
    "model_fingerprint",
    "stack_dataset",
]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_MAX = {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}


class SmallCNN(nn.Module):
    """A small CNN classifier: standardisation, 3 x (conv 3, ReLU) with two max-pools, global max
    pool, linear head.

    The input is standardised with fixed ``(x - input_mean) / input_std``
    first (buffers; the synthetic images lie in [0, 1]). The global *max*
    pool suits "is there a lesion anywhere" tasks and trains in a few epochs.
    Every ReLU is its own module (GuidedBackprop, DeepLift and LRP need that);
    ``features.6`` is the last convolution.

    Args:
        in_channels: Input channels ``C``.
        num_classes: Output classes ``K``.
        width: Channels of the first convolution (doubled at each block).
        spatial_dims: 1, 2 or 3.
        input_mean: Subtracted from the input.
        input_std: The input is divided by it.
        generator: Source of the initial weights (default: a generator seeded with 0).

    Shape:
        - input: ``(B, C, *S)``, each side at least 4
        - output: ``(B, K)`` logits

    Example:
        >>> SmallCNN(3, 4, spatial_dims=1)(torch.zeros(2, 3, 10)).shape
        torch.Size([2, 4])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, *, width: int = 8,
                 spatial_dims: int = 2,
                 input_mean: float = 0.5, input_std: float = 0.25,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if spatial_dims not in _CONV:
            raise OptionError(f"Expected `spatial_dims` in (1, 2, 3), but got {spatial_dims!r}.")
        check_positive_int(in_channels, "in_channels")
        check_positive_int(num_classes, "num_classes", minimum=2)
        check_positive_int(width, "width")
        conv, pool = _CONV[spatial_dims], _POOL[spatial_dims]
        # the layers' own initialisation draws from the global RNG
        with torch.random.fork_rng(devices=[]):
            self.features = nn.Sequential(
                conv(in_channels, width, 3, padding=1), nn.ReLU(), pool(2),
                conv(width, 2 * width, 3, padding=1), nn.ReLU(), pool(2),
                conv(2 * width, 4 * width, 3, padding=1), nn.ReLU(),
            )
            self.head = nn.Sequential(_MAX[spatial_dims](1), nn.Flatten(),
                                      nn.Linear(4 * width, num_classes))
        self.register_buffer("input_mean", torch.tensor(float(input_mean)))
        self.register_buffer("input_std", torch.tensor(float(input_std)))
        self.reset_parameters(generator if generator is not None
                              else torch.Generator().manual_seed(0))

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-draw every weight from ``generator`` (Kaiming-uniform, zero biases)."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                    nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                    nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features((x - self.input_mean) / self.input_std))


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic algorithms for the duration (restored on exit)."""
    previous = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)


def stack_dataset(dataset: Any, *, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """All images ``(N, C, *S)`` and labels ``(N,)`` of a record dataset, stacked
    (small datasets only)."""
    records = [dataset[i] for i in range(len(dataset))]
    if not records:
        raise OptionError("Expected a non-empty dataset to train on, but got 0 samples.")
    x = torch.stack([r.image for r in records]).to(device)
    y = torch.tensor([int(r.label) for r in records], dtype=torch.long, device=device)
    return x, y


def train_model(
    model: nn.Module,
    dataset: Any,
    *,
    epochs: int = 4,
    batch_size: int = 32,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    seed: int = 0,
    stop_at_accuracy: float | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[Iterator[int]], Iterator[int]] | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` on a record dataset with Adam and cross-entropy, deterministically.

    The mini-batch order comes from a generator seeded with ``seed``; the
    global RNG is not touched. Deterministic algorithms are switched on for the
    duration (warn-only). The model is left in eval mode on ``device``.

    Args:
        model: The network (trained in place).
        dataset: A :class:`~xaiscore.harness.data.records.RecordDataset`, loaded
            into memory whole.
        epochs: Passes over the data.
        batch_size: Samples per step.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        seed: Seed of the shuffling.
        stop_at_accuracy: Stop after the first epoch whose running training
            accuracy (of the mini-batches as they were trained) reaches this.
        device: Where to train.
        progress: Optional wrapper of the epoch iterator (e.g. ``tqdm``).

    Returns:
        ``{"loss": [...], "accuracy": [...]}``: the loss of every step and the
        running training accuracy of every epoch.
    """
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    x, y = stack_dataset(dataset, device=device)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    accuracies: list[float] = []
    epochs_iter: Iterator[int] = iter(range(epochs))
    if progress is not None:
        epochs_iter = progress(epochs_iter)
    with _deterministic():
        for _ in epochs_iter:
            order = torch.randperm(len(x), generator=generator).to(device)
            correct = torch.zeros((), dtype=torch.long, device=device)
            for start in range(0, len(x), batch_size):
                index = order[start:start + batch_size]
                optimizer.zero_grad(set_to_none=True)
                logits = model(x[index])
                loss = nn.functional.cross_entropy(logits, y[index])
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                correct += (logits.detach().argmax(1) == y[index]).sum()
            accuracies.append(float(correct) / len(x))
            if stop_at_accuracy is not None and accuracies[-1] >= stop_at_accuracy:
                break
    model.eval()
    return {"loss": losses, "accuracy": accuracies}


def accuracy(model: nn.Module, dataset: Any, *, device: torch.device | str = "cpu",
             batch_size: int = 256) -> float:
    """Share of samples whose argmax prediction equals the label."""
    x, y = stack_dataset(dataset, device=device)
    with torch.inference_mode():
        predicted = torch.cat([model(x[s:s + batch_size]).argmax(1) for s in range(0, len(x),
                                                                                   batch_size)])
    return float((predicted == y).double().mean())


def _import_factory(
    factory: str, *, folder: Path | None = None, what: str = "model factory"
) -> Callable[..., Any]:
    module_name, _, attribute = factory.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"Expected a {what} as 'package.module:function', but got {factory!r}.")
    try:
        module = _import_module(module_name, folder)
    except ImportError as error:
        where = f", and in the config's folder {str(folder)!r}" if folder is not None else ""
        raise ConfigError(
            f"Cannot import the {what} module {module_name!r} ({error}). Modules are looked up on "
            f"Python's import path (installed packages, PYTHONPATH){where}."
        ) from error
    try:
        target = module
        for part in attribute.split("."):
            target = getattr(target, part)
    except AttributeError:
        raise ConfigError(
            f"Module {module_name!r} has no attribute {attribute!r} ({what} {factory!r})."
        ) from None
    if not callable(target):
        raise ConfigError(
            f"Expected the {what} {factory!r} to be callable, but got {type(target).__name__}."
        )
    return target


def _import_module(name: str, folder: Path | None) -> Any:
    """Import ``name``; from ``folder`` (the config's) when its top-level module or package is
    there.

    A module next to the config wins over one of the same name elsewhere on the import path,
    as relative paths in the config are resolved against its folder.
    """
    top = name.split(".")[0]
    if folder is None or not (
        (folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()
    ):
        return importlib.import_module(name)
    loaded = sys.modules.get(top)
    if loaded is not None:
        origin = getattr(loaded, "__file__", None)
        if origin is None or not Path(origin).resolve().is_relative_to(folder.resolve()):
            raise ConfigError(
                f"The model factory module {top!r} is in the config's folder {str(folder)!r}, but "
                "a module of "
                f"that name is already imported from {origin!r}; rename the file."
            )
        return importlib.import_module(name)
    entry = str(folder)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()
    try:
        return importlib.import_module(name)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def _existing(path: str | os.PathLike[str], what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist.")
    return path


def eval_mode(model: nn.Module) -> nn.Module:
    """``model.eval()``, except for ``torch.export`` programs, whose mode was fixed when they were
    exported."""
    try:
        return model.eval()
    # torch.export's unlifted module: "Calling eval() is not supported yet."
    except NotImplementedError:
        return model


def load_model(
    *,
    factory: str | Callable[..., nn.Module] | None = None,
    state_dict: str | os.PathLike[str] | None = None,
    torchscript: str | os.PathLike[str] | None = None,
    exported: str | os.PathLike[str] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    device: torch.device | str = "cpu",
    strict: bool = True,
    module_folder: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Load a user's model in eval mode on ``device``.

    Exactly one of: ``factory`` (a callable or ``"package.module:function"``,
    called with ``kwargs``) with an optional ``state_dict`` file (a state dict,
    or a dict holding one under ``"state_dict"`` or ``"model"``; read with
    ``weights_only=True``); a ``torchscript`` file (``torch.jit.save``,
    deprecated by torch); or an ``exported`` program (``torch.export.save`` of
    a model exported in eval mode, with a dynamic batch dimension so that
    metrics can call it on chunks of any size).

    A factory's module is imported from ``module_folder`` (a config's folder)
    when its top-level module or package is there, else from Python's import path.

    Raises:
        ConfigError: the factory cannot be imported, a file does not exist
            (the message names it), or the state dict does not fit the model.
        DTypeError: the factory did not return an ``nn.Module``.
    """
    if sum(source is not None for source in (factory, torchscript, exported)) != 1:
        raise ConfigError(
            "Expected exactly one of `factory`, `torchscript` and `exported` to load a model.")
    if torchscript is not None:
        return _load_torchscript(torchscript, device)
    if exported is not None:
        return _load_exported(exported, device)
    folder = None if module_folder is None else Path(module_folder)
    build = _import_factory(factory, folder=folder) if isinstance(factory, str) else factory
    model = build(**dict(kwargs or {}))
    if not isinstance(model, nn.Module):
        raise DTypeError(
            "Expected the model factory to return a torch.nn.Module, but got "
            f"{type(model).__name__}.")
    if state_dict is not None:
        path = _existing(state_dict, "State-dict file")
        state = _read_state_dict(path)
        try:
            model.load_state_dict(state, strict=strict)
        except RuntimeError as error:
            raise ConfigError(
                f"The state dict {str(path)!r} does not fit the model: {error}") from error
    return model.to(device).eval()


def _load_torchscript(file: str | os.PathLike[str], device: torch.device | str) -> nn.Module:
    path = _existing(file, "TorchScript model file")
    try:
        model = torch.jit.load(str(path), map_location=device)
    except RuntimeError as error:
        raise ConfigError(f"Cannot load the TorchScript model {str(path)!r}: {error}") from error
    return model.eval()


def _load_exported(file: str | os.PathLike[str], device: torch.device | str) -> nn.Module:
    path = _existing(file, "Exported program file")
    try:
        program = torch.export.load(str(path))
    except Exception as error:  # torch raises several types for a bad file; name the file
        raise ConfigError(f"Cannot load the exported program {str(path)!r}: {error}") from error
    return eval_mode(program.module().to(device))


def _read_state_dict(path: Path) -> Any:
    """A state dict from ``path``: the file's mapping, or the one it holds under
    ``state_dict``/``model``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # torch raises several types for a bad file; name the file and re-raise
    except Exception as error:
        raise ConfigError(f"Cannot read the state dict {str(path)!r}: {error}") from error
    if isinstance(state, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), Mapping):
                return state[key]
    return state


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of the model's parameters and buffers, by name."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        if isinstance(tensor, Tensor):
            data = tensor.detach().to("cpu").contiguous()
            digest.update(str((tuple(data.shape), data.dtype)).encode())
            digest.update(
                data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()[:16]


# --- the model of a run config ----------------------------------------------------------------


def build_model(config: RunConfig, dataset: Any, *, store: RunStore | None,
                context: DistributedContext,
                progress: bool = False) -> nn.Module:
    """The model a config describes; the demo model is trained once (rank 0) and cached in
    ``out/model.pt``.

    A ``[model]`` section with ``output_key``, ``output_fn`` or ``probabilities`` marks the model
    with :func:`xaiscore.declare_model_output`.
    """
    model = _configured_model(config, dataset, store=store, context=context, progress=progress)
    model_config = config.model
    declared = (model_config.output_key, model_config.output_fn, model_config.probabilities or None)
    if any(value is not None for value in declared):
        from xaiscore._engine.batching import declare_model_output

        source = Path(config.source)
        folder = source.parent if source.is_file() else None
        function = None if model_config.output_fn is None else _import_factory(
            model_config.output_fn, folder=folder, what="output function")
        declare_model_output(model, output_key=model_config.output_key, output_fn=function,
                             probabilities=model_config.probabilities)
    return model


def _configured_model(config: RunConfig, dataset: Any, *, store: RunStore | None,
                      context: DistributedContext, progress: bool) -> nn.Module:
    model_config = config.model
    device = context.device
    if model_config.kind == "factory":
        source = Path(config.source)
        return load_model(factory=model_config.factory, state_dict=model_config.state_dict,
                          kwargs=model_config.kwargs, device=device,
                          module_folder=source.parent if source.is_file() else None)
    if model_config.kind == "torchscript":
        return load_model(torchscript=model_config.path, device=device)
    if model_config.kind == "exported":
        return load_model(exported=model_config.path, device=device)
    if config.dataset.kind not in ("synthetic", "synthetic3d"):
        raise ConfigError(
            f"{config.source}: model.kind = 'demo' trains on synthetic data; for dataset kind "
            f"{config.dataset.kind!r} give model.kind = 'factory' or 'torchscript'.")
    return _demo_model(config, dataset, store=store, context=context, progress=progress)


_TRAIN_KEYS = frozenset({"n", "epochs", "batch_size", "lr", "seed", "width", "weight_decay",
                         "stop_at_accuracy"})


def _demo_settings(config: RunConfig, dataset: Any) -> tuple[dict[str, Any], Any]:
    """What the demo model depends on (architecture, training and dataset options, input channels,
    classes); the first sample."""
    from xaiscore.harness.architectures import train_defaults

    architecture = config.model.architecture
    train = {"n": 256, "batch_size": 32, "seed": config.seed, "width": 8,
             **train_defaults(architecture), **config.model.train}
    unknown = sorted(set(train) - _TRAIN_KEYS)
    if unknown:
        raise ConfigError(f"{config.source}: unknown key(s) {unknown} in `model.train`.")
    sample = dataset[0]
    settings = {"train": train,
                "dataset": {k: v for k, v in config.dataset.options.items() if k != "n"},
                "in_channels": int(sample.image.shape[0]), "classes": list(dataset.class_names)}
    if architecture != "cnn" or config.model.kwargs:  # (a CNN cached before these keys stays valid)
        settings.update(architecture=architecture, kwargs=dict(config.model.kwargs))
    return settings, sample


def _demo_model(config: RunConfig, dataset: Any, *, store: RunStore | None,
                context: DistributedContext,
                progress: bool) -> nn.Module:
    """The demo CNN: loaded from ``store`` when trained with the same settings, else trained
    (rank 0)."""
    device = context.device
    settings, sample = _demo_settings(config, dataset)
    train = settings["train"]

    def fresh(mean: float = 0.5, std: float = 0.25) -> nn.Module:
        from xaiscore.harness.architectures import demo_network

        try:
            return demo_network(
                config.model.architecture, in_channels=settings["in_channels"],
                num_classes=len(dataset.class_names), spatial=tuple(sample.image.shape[1:]),
                kwargs=config.model.kwargs, width=train["width"], mean=mean, std=std,
                generator=torch.Generator().manual_seed(derive_seed(train["seed"], "init") % 2**63),
                cnn_class=SmallCNN)
        except OptionError as error:
            raise ConfigError(f"{config.source}: in `model`: {error}") from error

    cached = store.load(store.model_path) if store is not None else None
    if cached is not None and cached.get("settings") == json.loads(json.dumps(settings,
                                                                              default=str)):
        model = fresh()
        model.load_state_dict(cached["state_dict"])
        return model.to(device).eval()
    model = fresh()
    if context.is_main or store is None:
        model = _train_demo(config, fresh, settings, store=store, context=context,
                            progress=progress)
    if store is not None and context.world_size > 1:
        context.barrier()
        if not context.is_main:
            model.load_state_dict(store.load(store.model_path)["state_dict"])
    return model.to(device).eval()


def _train_demo(config: RunConfig, fresh: Callable[[float, float], nn.Module],
                settings: dict[str, Any], *,
                store: RunStore | None, context: DistributedContext, progress: bool) -> nn.Module:
    """Train a fresh demo model on its own synthetic training set; store it when there is a run
    folder."""
    from xaiscore.harness.data.registry import open_dataset

    train = settings["train"]
    options = {**config.dataset.options, "n": train["n"],
               "seed": derive_seed(config.dataset.options.get("seed", 0), "train") % 2**31}
    training_data = open_dataset(config.dataset.kind, **options)  # synthetic or synthetic3d
    images, _ = stack_dataset(training_data)
    model = fresh(float(images.mean()), float(images.std()))  # standardise with the training data
    wrap, bars = None, []
    if progress and context.is_main:
        from tqdm.auto import tqdm

        def wrap(iterator: Any) -> Any:
            # Not tqdm(iterator): its generator closes the bar when training breaks out early,
            # before the line below could say so. This one counts finished epochs.
            bars.append(tqdm(total=train["epochs"], desc="training", unit="epoch"))

            def epochs() -> Any:
                for epoch in iterator:
                    yield epoch
                    bars[-1].update(1)
            return epochs()
    history = train_model(
        model, training_data, epochs=train["epochs"], batch_size=train["batch_size"],
        lr=train["lr"], weight_decay=train.get("weight_decay", 0.0), seed=train["seed"],
        stop_at_accuracy=train["stop_at_accuracy"], device=context.device, progress=wrap)
    for bar in bars:  # the bar's last line says why training ended before its last epoch
        epochs = len(history["accuracy"])
        bar.n = epochs
        if epochs < train["epochs"]:
            bar.set_description_str(
                f"training stopped early after epoch {epochs} of {train['epochs']}: running "
                f"accuracy {history['accuracy'][-1]:.1%} >= stop_at_accuracy "
                f"{train['stop_at_accuracy']:.0%}")
        bar.close()
    if store is not None:
        store.save(store.model_path, {"settings": json.loads(json.dumps(settings, default=str)),
                                      "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}})  # noqa: E501
    return model
