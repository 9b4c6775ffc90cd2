r"""Attention-based maps for vision transformers: attention rollout and Chefer et al.'s relevance.

Both read the attention probabilities :math:`A^{(l)}` ``(n, heads, T, T)`` of every block
(rows: queries, columns: keys; ``T`` tokens: ``prefix_tokens`` such as the class token, then the
patches in row-major order), combine them across layers into a ``(T, T)`` token-to-token matrix
and return the class token's row over the patch tokens, reshaped to the patch grid and upsampled
to the input size.

**Attention rollout** (Abnar and Zuidema, ACL 2020). Per layer the heads are fused (``mean``,
``max`` or ``min``), optionally the ``discard_ratio`` share of the lowest entries of the fused
``T x T`` matrix is set to 0 (per sample and layer; ties in the order of the flattened index,
as popularised by Gildenblat's ``vit-explain``), the residual connection is modelled by
:math:`\hat A = \tfrac12 A + \tfrac12 I`, rows are renormalised to sum to 1, and the layers are
multiplied: :math:`R = \hat A^{(L)} \cdots \hat A^{(1)}`.

**Gradient-weighted relevance** (Chefer, Gur and Wolf). The variant implemented is the
gradient-weighted attention rollout without LRP, i.e. rule (6)-(7) of "Generic
Attention-model Explainability" (ICCV 2021), which is the CVPR 2021 method ("Transformer
Interpretability Beyond Attention Visualization", eq. 13) with the LRP relevance of the
attention map replaced by the attention itself:

.. math:: \bar A^{(l)} = \mathbb{E}_h\big[(\nabla A^{(l)} \odot A^{(l)})^+\big], \qquad
          R = (I + \bar A^{(L)}) \cdots (I + \bar A^{(1)})

where :math:`\nabla A^{(l)}` is the gradient of the target-class *logit* with respect to the
attention probabilities (the ones that multiply the values) and :math:`(\cdot)^+` keeps the
positive part. The full CVPR 2021 method needs LRP rules for every layer of the transformer and
is not implemented.

**Reading the attention.** By default a forward hook on every attention-probability module:

* modules matching ``attention_modules`` (dotted names or glob patterns; default ``"*attn_drop"``)
  whose *output* is the attention probabilities ``(n, heads, T, T)`` and is what multiplies the
  values. timm's ``Attention`` has this layout (``blocks.<i>.attn.attn_drop``) when its fused
  kernel is off (``attn.fused_attn = False``; with the fused kernel the module is never called);
  :class:`~xaiscore.explainers.tiny_models.TinyViT` has it too.
* ``torch.nn.MultiheadAttention`` modules (used by default when the model has any): a
  pre-hook asks them for per-head weights (``need_weights=True, average_attn_weights=False``).
  Rollout only: these weights are a copy, so no gradient reaches them.

Any other structure: pass ``attention_fn(model, x)`` returning the list of ``L`` attention
tensors ``(n, heads, T, T)`` in forward order, or ``(logits, attentions)``; Chefer's relevance
needs the latter, with the attentions on the autograd path to the logits. For example, for a
Hugging Face ``ViTForImageClassification`` loaded with eager attention, whose attention dropout is
a function rather than a module: ``attention_fn=lambda m, x: (lambda out: (out.logits,
out.attentions))(m(pixel_values=x, output_attentions=True))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from xaiscore._checks import DTypeError, OptionError, check_fraction, check_option
from xaiscore._engine.batching import ModelOutputError, check_logits
from xaiscore._engine.explain_fn import BuiltExplainer, format_shape
from xaiscore.explainers._common import (
    UPSAMPLE_MODES,
    ModelStructureError,
    check_model,
    check_model_inputs,
    find_modules,
    module_names_hint,
    upsample,
)

__all__ = [
    "HEAD_FUSIONS",
    "AttentionFn",
    "AttentionRolloutExplainer",
    "CheferRelevanceExplainer",
    "attention_rollout_explainer",
    "chefer_relevance_explainer",
]

HEAD_FUSIONS: tuple[str, ...] = ("mean", "max", "min")
DEFAULT_ATTENTION_MODULES = "*attn_drop"
AttentionFn = Callable[[nn.Module, Tensor], Any]
"""``attention_fn(model, x) -> [A_1, ..., A_L]`` or ``(logits, [A_1, ..., A_L])``.

Each ``A_l`` is ``(n, heads, T, T)``.
"""


def _force_weights(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Pre-hook of nn.MultiheadAttention: per-head attention weights, whatever the caller asked."""
    args = list(args)
    for position, name, value in ((4, "need_weights", True), (6, "average_attn_weights", False)):
        if len(args) > position:
            args[position] = value
        else:
            kwargs[name] = value
    return tuple(args), kwargs


class _AttentionReader:
    """Runs the model once; returns its logits and the attention maps of every block in order."""

    def __init__(
        self,
        model: nn.Module,
        attention_modules: str | Sequence[str] | None,
        attention_fn: AttentionFn | None,
        *,
        method: str,
        needs_gradient: bool,
    ) -> None:
        self.model = model
        self.attention_fn = attention_fn
        self.method = method
        self.needs_gradient = needs_gradient
        if attention_fn is not None:
            if attention_modules is not None:
                raise OptionError(
                    "Expected at most one of `attention_modules` and `attention_fn`, but got both."
                )
            if not callable(attention_fn):
                raise DTypeError(
                    "Expected `attention_fn` to be callable, but got "
                    f"{type(attention_fn).__name__}."
                )
            self.modules: list[tuple[str, nn.Module]] = []
            return
        if attention_modules is None:
            modules = [
                (n, m) for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)
            ]
            modules = modules or find_modules(model, DEFAULT_ATTENTION_MODULES)
        else:
            modules = find_modules(model, attention_modules)
        if not modules:
            where = (
                f"named {attention_modules!r}"
                if attention_modules is not None
                else f"named {DEFAULT_ATTENTION_MODULES!r} or of type nn.MultiheadAttention"
            )
            raise ModelStructureError(
                f"Expected {type(model).__name__} to have attention modules {where} whose output "
                "is the "
                f"attention probabilities (n, heads, T, T), but found none among its submodules "
                f"{module_names_hint(model)}. Pass `attention_modules` (names or glob patterns) or "
                "`attention_fn(model, x)`."
            )
        if needs_gradient and any(isinstance(m, nn.MultiheadAttention) for _, m in modules):
            raise ModelStructureError(
                "Expected attention modules whose output is the attention that multiplies the "
                f"values for {method}, but got nn.MultiheadAttention, whose returned weights are a "
                "copy without "
                "gradient. Pass `attention_fn(model, x) -> (logits, attentions)` instead."
            )
        self.modules = modules

    def read(self, x: Tensor) -> tuple[Tensor | None, list[Tensor]]:
        if self.attention_fn is not None:
            logits, maps = self._from_function(self.attention_fn(self.model, x))
        else:
            maps = []
            handles = []
            fastpath = torch.backends.mha.get_fastpath_enabled()
            try:
                # nn.TransformerEncoderLayer's fused inference path never calls its attention.
                torch.backends.mha.set_fastpath_enabled(False)
                for _, module in self.modules:
                    if isinstance(module, nn.MultiheadAttention):
                        handles.append(
                            module.register_forward_pre_hook(_force_weights, with_kwargs=True)
                        )
                        handles.append(
                            module.register_forward_hook(lambda m, a, out: maps.append(out[1]))
                        )
                    else:
                        handles.append(
                            module.register_forward_hook(lambda m, a, out: maps.append(out))
                        )
                logits = self.model(x)
            finally:
                torch.backends.mha.set_fastpath_enabled(fastpath)
                for handle in handles:
                    handle.remove()
            if not maps:
                names = [name for name, _ in self.modules][:6]
                raise ModelStructureError(
                    f"Expected the attention modules {names} to be called during the forward "
                    "pass, but none was (timm: set `attn.fused_attn = False` in every block; or "
                    "pass `attention_fn`)."
                )
        # Rollout never looks at the output (it may be e.g. a dict); the relevance needs logits.
        logits = check_logits(logits, x, name="model") if self.needs_gradient else None
        return logits, self._check_maps(maps, x)

    def _from_function(self, result: Any) -> tuple[Tensor | None, list[Tensor]]:
        if (
            isinstance(result, tuple)
            and len(result) == 2
            and isinstance(result[0], Tensor)
            and result[0].ndim == 2
            and isinstance(result[1], (list, tuple))
        ):
            return result[0], list(result[1])
        if isinstance(result, (list, tuple)) and all(isinstance(a, Tensor) for a in result):
            if self.needs_gradient:
                raise ModelOutputError(
                    f"Expected `attention_fn` to return (logits, attentions) for {self.method}, "
                    "which needs "
                    "the gradient of the target logit, but got only the attentions."
                )
            return None, list(result)
        raise ModelOutputError(
            "Expected `attention_fn` to return a list of attention tensors (n, heads, T, T) or "
            f"(logits, attentions), but got {type(result).__name__}."
        )

    def _check_maps(self, maps: list[Any], x: Tensor) -> list[Tensor]:
        if not maps:
            raise ModelOutputError("Expected at least one attention map, but got none.")
        first = maps[0]
        for index, a in enumerate(maps):
            if (
                not isinstance(a, Tensor)
                or a.ndim != 4
                or a.shape[0] != x.shape[0]
                or a.shape[2] != a.shape[3]
                or (isinstance(first, Tensor) and a.shape[2:] != first.shape[2:])
            ):
                shape = format_shape(a.shape) if isinstance(a, Tensor) else type(a).__name__
                raise ModelOutputError(
                    f"Expected every attention map to have shape ({x.shape[0]}, heads, T, T) with "
                    "the same T in "
                    f"every layer, but got {shape} for layer {index}."
                )
        return maps


def _patch_grid(
    n_patches: int, spatial: tuple[int, ...], patch_grid: Sequence[int] | None
) -> tuple[int, ...]:
    if patch_grid is not None:
        grid = tuple(int(g) for g in patch_grid)
        if len(grid) != len(spatial) or math.prod(grid) != n_patches:
            raise ModelStructureError(
                f"Expected `patch_grid` with {len(spatial)} sides whose product is the "
                f"{n_patches} patch tokens, "
                f"but got {grid!r}."
            )
        return grid
    for side in range(1, min(spatial) + 1):
        if (
            all(s % side == 0 for s in spatial)
            and math.prod(s // side for s in spatial) == n_patches
        ):
            return tuple(s // side for s in spatial)
    raise ModelStructureError(
        f"Expected the {n_patches} patch tokens to tile the input {format_shape(spatial)} with "
        "square patches, but no patch size does; pass `patch_grid` (patches per spatial dim) or "
        "check `prefix_tokens`."
    )


def _fuse_heads(attention: Tensor, fusion: str) -> Tensor:
    if fusion == "mean":
        return attention.mean(1)
    return attention.amax(1) if fusion == "max" else attention.amin(1)


def _discard_lowest(fused: Tensor, ratio: float) -> Tensor:
    """Zero the ``floor(ratio * T^2)`` smallest entries of every ``(T, T)`` matrix.

    Ties: the lower flat index first.
    """
    n, tokens = fused.shape[0], fused.shape[1]
    k = int(ratio * tokens * tokens)
    if k == 0:
        return fused
    flat = fused.reshape(n, -1)
    lowest = torch.sort(flat, dim=1, stable=True).indices[:, :k]
    return flat.scatter(1, lowest, 0.0).reshape(fused.shape)


class _TransformerExplainer(BuiltExplainer):
    method = ""
    needs_gradient = False

    def __init__(
        self,
        model: nn.Module,
        attention_modules: str | Sequence[str] | None,
        attention_fn: AttentionFn | None,
        prefix_tokens: int,
        class_token: int,
        patch_grid: Sequence[int] | None,
        upsample_mode: str,
    ) -> None:
        self.model = check_model(model)
        if (
            isinstance(prefix_tokens, bool)
            or not isinstance(prefix_tokens, int)
            or prefix_tokens < 1
        ):
            raise OptionError(
                f"Expected `prefix_tokens` to be an int >= 1 (the class token and any other "
                f"non-patch tokens), but got {prefix_tokens!r}."
            )
        if (
            isinstance(class_token, bool)
            or not isinstance(class_token, int)
            or not 0 <= class_token < prefix_tokens
        ):
            raise OptionError(
                f"Expected `class_token` in [0, {prefix_tokens}) (a prefix token), "
                f"but got {class_token!r}."
            )
        check_option(upsample_mode, "upsample", UPSAMPLE_MODES)
        self.prefix_tokens, self.class_token = prefix_tokens, class_token
        self.patch_grid = tuple(patch_grid) if patch_grid is not None else None
        self.upsample = upsample_mode
        self._reader = _AttentionReader(
            model,
            attention_modules,
            attention_fn,
            method=self.method,
            needs_gradient=self.needs_gradient,
        )

    def _to_map(self, row: Tensor, x: Tensor) -> Tensor:
        """The class token's row ``(n, T)`` over the patches as an ``(n, 1, *S)`` map."""
        spatial = tuple(x.shape[2:])
        patches = row[:, self.prefix_tokens :]
        if patches.shape[1] < 1:
            raise ModelStructureError(
                f"Expected patch tokens after the {self.prefix_tokens} prefix token(s), but "
                f"the attention has only {row.shape[1]} tokens."
            )
        grid = _patch_grid(patches.shape[1], spatial, self.patch_grid)
        maps = patches.reshape((row.shape[0], 1) + grid).to(x.dtype)
        return upsample(maps, spatial, self.upsample)

    def _class_row(self, n: int, tokens: int, like: Tensor) -> Tensor:
        if tokens <= self.class_token:
            raise ModelStructureError(
                f"Expected more than {self.class_token} tokens, but the attention has {tokens}."
            )
        row = torch.zeros(n, 1, tokens, dtype=like.dtype, device=like.device)
        row[:, 0, self.class_token] = 1.0
        return row


class AttentionRolloutExplainer(_TransformerExplainer):
    """Attention rollout as an explain function; see :func:`attention_rollout_explainer`."""

    method = "AttentionRollout"

    def __init__(
        self,
        model: nn.Module,
        /,
        *,
        head_fusion: str = "mean",
        discard_ratio: float = 0.0,
        attention_modules: str | Sequence[str] | None = None,
        attention_fn: AttentionFn | None = None,
        prefix_tokens: int = 1,
        class_token: int = 0,
        patch_grid: Sequence[int] | None = None,
        upsample: str = "linear",
    ) -> None:
        check_option(head_fusion, "head_fusion", HEAD_FUSIONS)
        self.head_fusion = head_fusion
        self.discard_ratio = check_fraction(discard_ratio, "discard_ratio", high_inclusive=False)
        super().__init__(
            model, attention_modules, attention_fn, prefix_tokens, class_token, patch_grid, upsample
        )

    def __repr__(self) -> str:
        return (
            f"attention_rollout_explainer({type(self.model).__name__}, "
            f"head_fusion={self.head_fusion!r}, "
            f"discard_ratio={self.discard_ratio})"
        )

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        x, target = check_model_inputs(x, target)
        with torch.inference_mode():
            _, maps = self._reader.read(x)
            tokens = maps[0].shape[-1]
            identity = torch.eye(tokens, dtype=maps[0].dtype, device=maps[0].device)
            row = self._class_row(x.shape[0], tokens, maps[0])
            for attention in reversed(maps):  # row R = e_cls^T A_L ... A_1, applied from the left
                fused = _discard_lowest(
                    _fuse_heads(attention, self.head_fusion), self.discard_ratio
                )
                mixed = 0.5 * fused + 0.5 * identity
                mixed = mixed / mixed.sum(-1, keepdim=True)
                row = torch.bmm(row, mixed)
            out = self._to_map(row[:, 0], x)
        return out.clone()


class CheferRelevanceExplainer(_TransformerExplainer):
    """Chefer et al.'s gradient-weighted relevance; see :func:`chefer_relevance_explainer`."""

    method = "CheferRelevance"
    needs_gradient = True

    def __init__(
        self,
        model: nn.Module,
        /,
        *,
        attention_modules: str | Sequence[str] | None = None,
        attention_fn: AttentionFn | None = None,
        prefix_tokens: int = 1,
        class_token: int = 0,
        patch_grid: Sequence[int] | None = None,
        upsample: str = "linear",
    ) -> None:
        super().__init__(
            model, attention_modules, attention_fn, prefix_tokens, class_token, patch_grid, upsample
        )

    def __repr__(self) -> str:
        return f"chefer_relevance_explainer({type(self.model).__name__})"

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        x, target = check_model_inputs(x, target)
        with torch.inference_mode(False), torch.enable_grad():
            inputs = (x.clone() if x.is_inference() else x.detach()).requires_grad_(True)
            logits, maps = self._reader.read(inputs)
            if target.is_inference():
                target = target.clone()
            score = logits.gather(1, target.reshape(-1, 1)).sum()
            if not score.requires_grad:
                raise ModelStructureError(
                    "Expected the model's logits to depend on its input through autograd, "
                    "but they carry no gradient."
                )
            gradients = torch.autograd.grad(score, maps, allow_unused=True)
        unused = [i for i, g in enumerate(gradients) if g is None]
        if unused:
            raise ModelStructureError(
                "Expected every attention map to lie on the autograd path to the logits, but "
                f"layer(s) {unused} do not (a hooked module whose output is not the attention "
                "that multiplies the values?)."
            )
        with torch.no_grad():
            tokens = maps[0].shape[-1]
            row = self._class_row(x.shape[0], tokens, maps[0])
            for attention, gradient in zip(reversed(maps), reversed(gradients)):
                weighted = (gradient * attention).clamp(min=0).mean(1)  # E_h[(grad A * A)^+]
                row = row + torch.bmm(row, weighted.detach())
            out = self._to_map(row[:, 0].detach(), x)
        return out


def attention_rollout_explainer(
    model: nn.Module,
    /,
    *,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    attention_modules: str | Sequence[str] | None = None,
    attention_fn: AttentionFn | None = None,
    prefix_tokens: int = 1,
    class_token: int = 0,
    patch_grid: Sequence[int] | None = None,
    upsample: str = "linear",
) -> AttentionRolloutExplainer:
    r"""Attention rollout (Abnar and Zuidema 2020) of a vision transformer as an explain function.

    :math:`R = \hat A^{(L)} \cdots \hat A^{(1)}` with :math:`\hat A = \mathrm{rows}(\tfrac12
    \mathrm{fuse}(A) + \tfrac12 I)`; the map is the class token's row of ``R`` over the patch
    tokens, upsampled to the input. It ignores ``target`` (the attention does not depend on the
    class). One forward pass under ``torch.inference_mode()``. See the module docstring for how
    the attention is read and what the model must look like.

    Args:
        model: The vision transformer.
        head_fusion: ``"mean"`` (Abnar and Zuidema), ``"max"`` or ``"min"`` over heads.
        discard_ratio: Share in ``[0, 1)`` of the lowest fused attention entries per layer set to 0.
        attention_modules: Dotted names or glob patterns of the modules whose output is the
            attention probabilities (default ``"*attn_drop"``, or every
            ``nn.MultiheadAttention`` if any).
        attention_fn: Instead: ``attention_fn(model, x)`` returning the attention maps.
        prefix_tokens: Tokens before the patch tokens (class, distillation or register tokens).
        class_token: Index of the token whose row gives the map.
        patch_grid: Patch tokens per spatial dim (default: inferred for square patches).
        upsample: ``"linear"`` ((bi/tri)linear), ``"nearest"`` or ``"bicubic"`` (2-D).

    Raises:
        ModelStructureError: no attention modules, or the tokens do not tile the input.
        ModelOutputError: the attention maps are not ``(n, heads, T, T)``.

    Shape:
        - x: ``(n, C, *S)``; target: ``(n,)``; output: ``(n, 1, *S)`` in the dtype of ``x``.

    Example:
        >>> from xaiscore.explainers.tiny_models import TinyViT
        >>> model = TinyViT(1, 2, image_size=8, patch_size=4).eval()
        >>> a = attention_rollout_explainer(model)(torch.rand(2, 1, 8, 8), torch.tensor([0, 1]))
        >>> a.shape, bool((a > 0).all())
        (torch.Size([2, 1, 8, 8]), True)
    """
    return AttentionRolloutExplainer(
        model,
        head_fusion=head_fusion,
        discard_ratio=discard_ratio,
        attention_modules=attention_modules,
        attention_fn=attention_fn,
        prefix_tokens=prefix_tokens,
        class_token=class_token,
        patch_grid=patch_grid,
        upsample=upsample,
    )


def chefer_relevance_explainer(
    model: nn.Module,
    /,
    *,
    attention_modules: str | Sequence[str] | None = None,
    attention_fn: AttentionFn | None = None,
    prefix_tokens: int = 1,
    class_token: int = 0,
    patch_grid: Sequence[int] | None = None,
    upsample: str = "linear",
) -> CheferRelevanceExplainer:
    r"""Chefer et al.'s gradient-weighted attention relevance of a vision transformer.

    :math:`R = (I + \bar A^{(L)}) \cdots (I + \bar A^{(1)})` with :math:`\bar A =
    \mathbb{E}_h[(\nabla A \odot A)^+]`, the gradient taken of the target-class logit; the map
    is the class token's row of ``R`` over the patch tokens, upsampled to the input. This is the
    gradient-weighted rollout of Chefer, Gur and Wolf (ICCV 2021), i.e. the CVPR 2021 method with
    the attention in place of its LRP relevance (see the module docstring). One forward and one
    backward pass; gradients are taken only with respect to the attention maps, so the model's
    parameters never accumulate ``.grad``.

    Args:
        model: The vision transformer.
        attention_modules: Dotted names or glob patterns of the modules whose output is the
            attention probabilities that multiply the values (default ``"*attn_drop"``).
        attention_fn: Instead: ``attention_fn(model, x) -> (logits, attentions)`` with the
            attentions on the autograd path to the logits.
        prefix_tokens: Tokens before the patch tokens.
        class_token: Index of the token whose row gives the map.
        patch_grid: Patch tokens per spatial dim (default: inferred for square patches).
        upsample: ``"linear"``, ``"nearest"`` or ``"bicubic"`` (2-D).

    Raises:
        ModelStructureError: no suitable attention modules (``nn.MultiheadAttention`` does not
            expose the attention it uses), or an attention map off the path to the logits.
        ModelOutputError: the attention maps are not ``(n, heads, T, T)`` or the logits not
            ``(n, K)``.

    Shape:
        - x: ``(n, C, *S)``; target: ``(n,)``; output: ``(n, 1, *S)`` in the dtype of ``x``.

    Example:
        >>> from xaiscore.explainers.tiny_models import TinyViT
        >>> model = TinyViT(1, 2, image_size=8, patch_size=4).eval()
        >>> explain = chefer_relevance_explainer(model)
        >>> a = explain(torch.rand(2, 1, 8, 8), torch.tensor([0, 1]))
        >>> a.shape, bool((a >= 0).all()), all(p.grad is None for p in model.parameters())
        (torch.Size([2, 1, 8, 8]), True, True)
    """
    return CheferRelevanceExplainer(
        model,
        attention_modules=attention_modules,
        attention_fn=attention_fn,
        prefix_tokens=prefix_tokens,
        class_token=class_token,
        patch_grid=patch_grid,
        upsample=upsample,
    )
