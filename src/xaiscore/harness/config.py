"""Run configuration: a TOML or YAML file (or a dict) parsed into a checked :class:`RunConfig`.

Every key is documented in ``docs/harness.md`` (section *Config reference*). A
minimal config::

    out = "runs/cxr"
    [dataset]
    kind = "synthetic"
    n = 64
    [model]
    kind = "demo"
    methods = ["Saliency", "IntegratedGradients", "random"]
    metrics = ["pointing_game", "relevance_mass_accuracy", "sparseness"]

Unknown keys, unknown metrics and unknown methods are errors (a
:class:`ConfigError` naming the key and the file, with close matches);
relative paths are resolved against the config file's folder.

Example:
    >>> config = parse_config({"dataset": {"kind": "synthetic", "n": 8},
    ...                        "methods": ["Saliency", {"method": "random", "name": "rnd"}],
    ...                        "metrics": ["pointing_game"]})
    >>> [m.name for m in config.methods], config.metrics.include, config.batch_size
    (['Saliency', 'rnd'], ('pointing_game',), 16)
    >>> parse_config({"batchsize": 4})
    Traceback (most recent call last):
    ...
    xaiscore.harness.config.ConfigError: <config>: unknown key 'batchsize'; did you mean 'batch_size'?
"""  # noqa: E501

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from xaiscore._checks import OptionError
from xaiscore._engine.batching import check_max_batch_size
from xaiscore.harness.mosaic_data import MosaicsConfig, parse_mosaics
from xaiscore.harness.method_options import (
    apply_model_options,
    check_explainer_options,
    check_method_models,
    check_method_options,
)

__all__ = [
    "ConfigError",
    "DatasetConfig",
    "ModelConfig",
    "MethodConfig",
    "MetricsConfig",
    "RunConfig",
    "parse_config",
    "load_config",
    "check_config_files",
    "PRECOMPUTED",
]

#: The method kind of attributions read from a file.
PRECOMPUTED = "precomputed"
#: The networks ``[model] kind = "demo"`` can train (:mod:`xaiscore.harness.architectures`).
DEMO_ARCHITECTURES: tuple[str, ...] = ("cnn", "vit")


class ConfigError(OptionError):
    """A config file (or dict) names something that does not exist or has a bad value.

    The message starts with the file (``<config>`` for a dict) and the key.
    """


@dataclass(frozen=True)
class DatasetConfig:
    """``[dataset]``: ``kind`` (``"synthetic"`` or a reader name) and the reader's options."""

    kind: str = "synthetic"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: where the model comes from.

    ``kind="demo"`` trains :class:`~xaiscore.harness.models.SmallCNN` on a
    synthetic training split (``train`` options); ``"factory"`` imports
    ``factory`` (``"package.module:function"``), calls it with ``kwargs`` and
    loads ``state_dict``; ``"torchscript"`` loads the TorchScript file ``path``;
    ``"exported"`` loads the ``torch.export`` program ``path``.

    ``output_key`` (a dict key, tuple index or attribute), ``output_fn``
    (``"package.module:function"``) and ``probabilities`` declare how to read a
    model that does not return plain logits (see
    :func:`xaiscore.declare_model_output`).

    ``architecture`` (``kind="demo"`` only): ``"cnn"`` or ``"vit"``
    (:mod:`xaiscore.harness.architectures`; ``kwargs`` are then its constructor options).
    ``explainer_options``: options given to every method of this model that takes them (unless
    the method sets them itself), e.g. a transformer's ``attention_modules`` or
    ``attention_fn`` (``"package.module:function"``), see
    :mod:`xaiscore.harness.method_options`.
    """

    kind: str = "demo"
    factory: str | None = None
    state_dict: str | None = None
    path: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    output_key: str | int | None = None
    output_fn: str | None = None
    probabilities: bool = False
    architecture: str = "cnn"
    explainer_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodConfig:
    """One entry of ``methods``: a ``method`` from :func:`xaiscore.explainers.list_explainers`
    or ``"precomputed"``, the ``name`` it gets in the results, and its options.

    ``models`` names the models of a ``[models]`` table the method explains (empty: all).
    """

    name: str
    method: str
    options: Mapping[str, Any] = field(default_factory=dict)
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: which registered metrics to score and their options.

    ``include`` is ``"all"`` or metric names; ``families`` keeps only those
    families; ``exclude`` drops names; ``options`` maps a metric name to keyword
    options that override its registry defaults.
    """

    include: str | tuple[str, ...] = "all"
    families: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """A whole run; see ``docs/harness.md`` for every key and its default."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    methods: tuple[MethodConfig, ...] = (
        MethodConfig("Saliency", "Saliency"),
        MethodConfig("random", "random"),
    )
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    models: Mapping[str, ModelConfig] = field(default_factory=dict)
    out: str | None = None
    device: str = "cpu"
    seed: int = 0
    batch_size: int = 16
    max_batch_size: int | str = 64
    target: str = "label"
    repeats: int = 1
    n_examples: int = 6
    on_error: str = "raise"
    save_attributions: bool = False
    report: bool = True
    #: ``[mosaics]``: score the mosaic metrics on mosaics of the dataset (``None``: skip them).
    mosaics: MosaicsConfig | None = None
    source: str = "<config>"

    def with_overrides(self, **changes: Any) -> RunConfig:
        """A copy with top-level keys replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_TOP_KEYS = {f.name for f in fields(RunConfig)} - {"source"}
_DATASET_KEYS = {"kind"}
_MODEL_KEYS = {f.name for f in fields(ModelConfig)}
_METRICS_KEYS = {"include", "families", "exclude", "options"}
_TARGETS = ("label", "predicted")
_ON_ERROR = ("raise", "record")
_MODEL_KINDS = ("demo", "factory", "torchscript", "exported")


def _fail(source: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {message}")


def _check_keys(section: Mapping[str, Any], allowed: set[str], *, source: str, where: str) -> None:
    for key in section:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = (f"; did you mean {close[0]!r}?" if close
                    else f"; expected one of {sorted(allowed)}.")
            raise _fail(source, f"unknown key {where}{key!r}{hint}")


def _mapping(value: Any, *, source: str, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(source,
                    f"expected `{key}` to be a table/mapping, but got {type(value).__name__}.")
    return value


def _int(value: Any, *, source: str, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(source, f"expected `{key}` to be an int, but got {value!r}.")
    if value < minimum:
        raise _fail(source, f"expected `{key}` to be at least {minimum}, but got {value}.")
    return value


def _batch_size(value: Any, *, source: str) -> int | str:
    """An int, ``"auto"`` or a byte budget such as ``"2GB"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _int(value, source=source, key="max_batch_size", minimum=1)
    if isinstance(value, str):
        try:
            check_max_batch_size(value)
        except ValueError as error:
            raise _fail(source, f"`max_batch_size`: {error}") from error
        return value
    raise _fail(source, "expected `max_batch_size` to be an int, \"auto\" or a byte budget such "
                f"as \"2GB\", but got {value!r}.")


def _choice(value: Any, allowed: Sequence[str], *, source: str, key: str) -> str:
    if value not in allowed:
        raise _fail(source,
                    f"expected `{key}` to be one of {', '.join(map(repr, allowed))}, but got "
                    f"{value!r}.")
    return value


def _names(value: Any, *, source: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise _fail(source, f"expected `{key}` to be a list of names, but got {value!r}.")
    return tuple(value)


def _resolve(path: Any, base: Path | None, *, source: str, key: str) -> str | None:
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise _fail(source, f"expected `{key}` to be a path, but got {path!r}.")
    resolved = Path(path).expanduser()
    if base is not None and not resolved.is_absolute():
        resolved = base / resolved
    return str(resolved)


def _is_path_key(key: str) -> bool:
    """Reader options that name files or folders (``root``, ``*_dir``, ``*_csv``, ``*_json`` ...;
    the volume readers' ``images``, ``series``, ``masks`` and ``boxes``)."""
    return (key in ("root", "path", "images", "series", "masks", "boxes")
            or key.endswith(("_dir", "_csv", "_json", "_path", "_file")))


def _method_options(method: str, entry: dict[str, Any], base: Path | None, source: str,
                    where: str) -> dict[str, Any]:
    """A method entry's options: a precomputed method's files resolved, an explainer's checked."""
    if method != PRECOMPUTED:
        try:
            return check_method_options(method, entry, base=base, where=where)
        except OptionError as error:
            raise _fail(source, str(error)) from None
    if "path" not in entry:
        raise _fail(source, f"expected `{where}.path` (the attributions file) for a precomputed "
                            "method.")
    entry["path"] = _resolve(entry["path"], base, source=source, key=f"{where}.path")
    if entry.get("ids") is not None:
        entry["ids"] = _resolve(entry["ids"], base, source=source, key=f"{where}.ids")
    return entry


def _parse_methods(value: Any, base: Path | None, source: str) -> tuple[MethodConfig, ...]:
    from xaiscore.explainers import list_explainers

    known = list_explainers() + (PRECOMPUTED,)
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence) or not value:
        raise _fail(source, f"expected `methods` to be a non-empty list, but got {value!r}.")
    methods = []
    for position, entry in enumerate(value):
        where = f"methods[{position}]"
        if isinstance(entry, str):
            entry = {"method": entry}
        entry = dict(_mapping(entry, source=source, key=where))
        method = entry.pop("method", None)
        if method not in known:
            close = difflib.get_close_matches(str(method), known, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise _fail(source,
                        f"unknown method {method!r} in `{where}`; expected one of "
                        f"{list(known)}.{hint}")
        name = entry.pop("name", method)
        if not isinstance(name, str) or not name:
            raise _fail(source,
                        f"expected `{where}.name` to be a non-empty string, but got {name!r}.")
        models = _names(entry.pop("models", ()), source=source, key=f"{where}.models")
        entry = _method_options(method, entry, base, source, where)
        methods.append(MethodConfig(name=name, method=method, options=entry, models=models))
    names = [m.name for m in methods]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _fail(source,
                    f"expected distinct method names, but {duplicates} occur twice; set `name`.")
    return tuple(methods)


def _parse_metrics(value: Any, source: str) -> MetricsConfig:
    from xaiscore.specs import FAMILIES, UnknownMetricError, get_metric

    if isinstance(value, str) or (isinstance(value, Sequence) and not isinstance(value, Mapping)):
        value = {"include": value}
    section = _mapping(value, source=source, key="metrics")
    _check_keys(section, _METRICS_KEYS, source=source, where="metrics.")
    include = section.get("include", "all")
    if include != "all":
        include = _names(include, source=source, key="metrics.include")
    families = section.get("families")
    if families is not None:
        families = _names(families, source=source, key="metrics.families")
        for family in families:
            _choice(family, FAMILIES, source=source, key="metrics.families")
    exclude = _names(section.get("exclude", ()), source=source, key="metrics.exclude")
    options = dict(_mapping(section.get("options", {}), source=source, key="metrics.options"))
    named = (() if include == "all" else include) + exclude + tuple(options)
    for name in named:
        try:
            get_metric(name)
        except UnknownMetricError as error:
            raise _fail(source, f"in `metrics`: {error}") from None
    for name, kwargs in options.items():
        options[name] = dict(_mapping(kwargs, source=source, key=f"metrics.options.{name}"))
    return MetricsConfig(include=include, families=families, exclude=exclude, options=options)


def _model_output(model_raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The checked ``output_key``, ``output_fn`` and ``probabilities`` of ``[model]``."""
    key = model_raw.get("output_key")
    if key is not None and (isinstance(key, bool) or not isinstance(key, (str, int))):
        raise _fail(
            source,
            f"expected `model.output_key` to be a key (string) or an index (int), but got {key!r}.",
        )
    function = model_raw.get("output_fn")
    if function is not None and not (isinstance(function, str) and ":" in function):
        raise _fail(
            source,
            f"expected `model.output_fn` as 'package.module:function', but got {function!r}.",
        )
    probabilities = model_raw.get("probabilities", False)
    if not isinstance(probabilities, bool):
        raise _fail(
            source,
            f"expected `model.probabilities` to be true or false, but got {probabilities!r}.",
        )
    return {"output_key": key, "output_fn": function, "probabilities": probabilities}


def parse_config(raw: Mapping[str, Any], *, base: str | os.PathLike[str] | None = None,
                 source: str = "<config>") -> RunConfig:
    """Check a config mapping and build the :class:`RunConfig`.

    Args:
        raw: The parsed TOML/YAML content.
        base: Folder that relative paths are resolved against (the config file's).
        source: Name used in error messages (the file path).

    Raises:
        ConfigError: an unknown key, metric or method, or a value of the wrong type or range.
    """
    raw = _mapping(raw, source=source, key="<top level>")
    base_path = None if base is None else Path(base)
    _check_keys(raw, _TOP_KEYS, source=source, where="")
    dataset_raw = dict(_mapping(raw.get("dataset", {}), source=source, key="dataset"))
    kind = dataset_raw.pop("kind", "synthetic")
    if not isinstance(kind, str):
        raise _fail(source, f"expected `dataset.kind` to be a string, but got {kind!r}.")
    for key, value in dataset_raw.items():
        if isinstance(value, str) and _is_path_key(key):
            dataset_raw[key] = _resolve(value, base_path, source=source, key=f"dataset.{key}")
    model = _parse_model(raw.get("model", {}), base_path, source, where="model")
    models = _parse_models(raw, base_path, source)
    defaults = RunConfig()
    config = RunConfig(
        dataset=DatasetConfig(kind=kind, options=dataset_raw),
        model=model,
        methods=_parse_methods(raw["methods"], base_path, source) if "methods" in raw
        else defaults.methods,
        models=models,
        metrics=_parse_metrics(raw["metrics"], source) if "metrics" in raw else defaults.metrics,
        out=_resolve(raw.get("out"), base_path, source=source, key="out"),
        device=str(raw.get("device", defaults.device)),
        seed=_int(raw.get("seed", defaults.seed), source=source, key="seed", minimum=0),
        batch_size=_int(raw.get("batch_size", defaults.batch_size), source=source, key="batch_size",
                        minimum=1),
        max_batch_size=_batch_size(raw.get("max_batch_size", defaults.max_batch_size),
                                   source=source),
        target=_choice(raw.get("target", defaults.target), _TARGETS, source=source, key="target"),
        repeats=_int(raw.get("repeats", defaults.repeats), source=source, key="repeats", minimum=1),
        n_examples=_int(raw.get("n_examples", defaults.n_examples), source=source, key="n_examples",
                        minimum=0),
        on_error=_choice(raw.get("on_error", defaults.on_error), _ON_ERROR, source=source,
                         key="on_error"),
        save_attributions=bool(raw.get("save_attributions", defaults.save_attributions)),
        report=bool(raw.get("report", defaults.report)),
        mosaics=_parse_mosaics(raw.get("mosaics"), source),
        source=source,
    )
    try:
        check_method_models(config)
    except OptionError as error:
        raise _fail(source, str(error)) from None
    if not config.models:
        config = replace(config, methods=apply_model_options(config.methods, config.model))
    return config


def _parse_mosaics(value: Any, source: str) -> MosaicsConfig | None:
    try:
        return parse_mosaics(value)
    except OptionError as error:
        raise _fail(source, str(error)) from None


def _parse_model(value: Any, base_path: Path | None, source: str, *, where: str) -> ModelConfig:
    """One model table (``[model]`` or an entry of ``[models]``)."""
    model_raw = dict(_mapping(value, source=source, key=where))
    _check_keys(model_raw, _MODEL_KEYS, source=source, where=f"{where}.")
    model_kind = _choice(model_raw.get("kind", "demo"), _MODEL_KINDS, source=source,
                         key=f"{where}.kind")
    architecture = _choice(model_raw.get("architecture", "cnn"), DEMO_ARCHITECTURES, source=source,
                           key=f"{where}.architecture")
    if "architecture" in model_raw and model_kind != "demo":
        raise _fail(source, f"`{where}.architecture` picks a demo network; it needs {where}.kind = "
                            f"'demo', but got {model_kind!r}.")
    model = ModelConfig(
        kind=model_kind,
        factory=model_raw.get("factory"),
        state_dict=_resolve(model_raw.get("state_dict"), base_path, source=source,
                            key=f"{where}.state_dict"),
        path=_resolve(model_raw.get("path"), base_path, source=source, key=f"{where}.path"),
        kwargs=dict(_mapping(model_raw.get("kwargs", {}), source=source, key=f"{where}.kwargs")),
        train=dict(_mapping(model_raw.get("train", {}), source=source, key=f"{where}.train")),
        architecture=architecture,
        explainer_options=dict(_mapping(model_raw.get("explainer_options", {}), source=source,
                                        key=f"{where}.explainer_options")),
        **_model_output(model_raw, source),
    )
    if model.kind == "factory" and not (isinstance(model.factory, str) and ":" in model.factory):
        raise _fail(source, f"expected `{where}.factory` as 'package.module:function', but got "
                            f"{model.factory!r}.")
    if model.kind in ("torchscript", "exported") and model.path is None:
        raise _fail(source, f"expected `{where}.path` (the model file) for {where}.kind = "
                            f"{model.kind!r}.")
    try:
        check_explainer_options(model.explainer_options, base=base_path,
                                where=f"{where}.explainer_options")
    except OptionError as error:
        raise _fail(source, str(error)) from None
    return model


def _parse_models(raw: Mapping[str, Any], base_path: Path | None,
                  source: str) -> dict[str, ModelConfig]:
    """``[models]``: name -> model table, for runs that compare several models (none: ``{}``)."""
    if "models" not in raw:
        return {}
    if "model" in raw:
        raise _fail(source, "expected either `model` (one model) or `models` (a table of named "
                            "models), but got both.")
    table = _mapping(raw["models"], source=source, key="models")
    if not table:
        raise _fail(source, "expected `models` to name at least one model, but it is empty.")
    models = {}
    for name, value in table.items():
        if not isinstance(name, str) or not name or "/" in name or name != name.strip():
            raise _fail(source, "expected model names without '/' or surrounding spaces (they "
                                "prefix the explainer names, e.g. 'vit/rollout'), but got "
                                f"{name!r}.")
        models[name] = _parse_model(value, base_path, source, where=f"models.{name}")
    return models


def check_config_files(config: RunConfig) -> None:
    """Check that the files a config names exist, before any work starts.

    Checked: ``model.state_dict`` and ``model.path``, and each precomputed method's ``path`` and
    ``ids``. (Dataset files are checked by the reader when it opens them.)

    Raises:
        ConfigError: a file does not exist (the message names the config, the key and the file).
    """
    files: list[tuple[str, str | None]] = [("model.state_dict", config.model.state_dict)]
    if config.model.kind in ("torchscript", "exported"):
        files.append(("model.path", config.model.path))
    for position, method in enumerate(config.methods):
        if method.method == PRECOMPUTED:
            files.append((f"methods[{position}].path", method.options.get("path")))
            files.append((f"methods[{position}].ids", method.options.get("ids")))
    for key, value in files:
        if value is not None and not Path(value).is_file():
            raise _fail(config.source, f"`{key}`: the file {str(value)!r} does not exist.")


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read a ``.toml``, ``.yaml`` or ``.yml`` config file.

    Raises:
        ConfigError: the file does not exist, has another suffix, cannot be
            parsed, or holds a bad key or value (the message names the file).
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise _fail(source, "no such config file.")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise _fail(source, f"not valid TOML: {error}") from error
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise _fail(source, f"not valid YAML: {error}") from error
    else:
        raise _fail(source, f"expected a .toml, .yaml or .yml file, but got suffix {suffix!r}.")
    return parse_config(raw, base=path.parent, source=source)
