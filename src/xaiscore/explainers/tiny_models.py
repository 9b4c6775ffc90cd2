"""Tiny reference models with the structure the transformer and prototype explainers read.

* :class:`TinyViT`: a vision transformer (patch embedding, class token, pre-norm blocks) whose
  attention modules expose the attention probabilities the way timm's ``Attention`` does:
  ``blocks.<i>.attn.attn_drop`` is called on the softmax output ``(n, heads, T, T)`` and its
  output is what multiplies the values. The default ``attention_modules="*attn_drop"`` of
  :func:`~xaiscore.explainers.attention_rollout_explainer` finds them.
* :class:`TinyProtoPNet`: a ProtoPNet-style network (Chen et al., NeurIPS 2019): CNN backbone,
  add-on 1x1 convolutions with a sigmoid, a prototype layer ``prototype_layer`` returning
  log-similarity maps ``(n, m, *s)`` of squared L2 distances, max pooling, and a class-connection
  layer ``last_layer`` (``nn.Linear(m, K, bias=False)``), the defaults of
  :func:`~xaiscore.explainers.prototype_explainer`.

Both take 1 to 3 spatial dims, draw their initial weights from an explicit generator (never
torch's global one) and are small enough to train in seconds on two CPU cores. Every parameter
lives in a module with its own ``reset_parameters()``, so the model randomizer of the MPRT family
re-initialises them with their usual initialisation.

Example:
    >>> vit = TinyViT(1, 2, image_size=16, patch_size=4)
    >>> vit(torch.zeros(3, 1, 16, 16)).shape
    torch.Size([3, 2])
    >>> proto = TinyProtoPNet(1, 2, prototypes_per_class=2)
    >>> proto(torch.zeros(3, 1, 16, 16)).shape, proto.prototype_class_identity.shape
    (torch.Size([3, 2]), torch.Size([4, 2]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from xaiscore._checks import OptionError, check_positive_int

__all__ = ["TinyViT", "TinyProtoPNet", "PrototypeLayer", "Attention", "TokenEmbedding"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}


def _spatial_tuple(value: int | Sequence[int], spatial_dims: int, name: str) -> tuple[int, ...]:
    values = (value,) * spatial_dims if isinstance(value, int) else tuple(value)
    if len(values) != spatial_dims:
        raise OptionError(
            f"Expected `{name}` to be an int or {spatial_dims} ints, but got {value!r}."
        )
    return tuple(check_positive_int(v, name) for v in values)


def _init_from(model: nn.Module, generator: torch.Generator) -> None:
    """Re-draw the weights of every layer from ``generator`` (Kaiming-uniform, zero biases)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (TokenEmbedding, PrototypeLayer)):
                module.reset_parameters(generator)


class TokenEmbedding(nn.Module):
    """Optional convolutional stem, patch projection (strided convolution), class token, positions.

    With ``stem_channels > 0`` two 3x3 convolutions (``stem_channels`` wide, ReLU) run before the
    patch projection ("early convolutions", Xiao et al., NeurIPS 2021): a hybrid ViT that learns
    small local findings from few images; the attention layout is unchanged.
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        grid: tuple[int, ...],
        patch_size: tuple[int, ...],
        stem_channels: int = 0,
    ) -> None:
        super().__init__()
        conv = _CONV[len(grid)]
        if stem_channels:
            self.stem: nn.Module = nn.Sequential(
                conv(in_channels, stem_channels, 3, padding=1),
                nn.ReLU(),
                conv(stem_channels, stem_channels, 3, padding=1),
                nn.ReLU(),
            )
            in_channels = stem_channels
        else:
            self.stem = nn.Identity()
        self.projection = conv(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.zeros(1, 1 + math.prod(grid), dim))
        self.grid = grid

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Class token and position embeddings ~ N(0, 0.02^2) (the projection resets itself)."""
        with torch.no_grad():
            for parameter in (self.class_token, self.position):
                parameter.copy_(
                    torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype) * 0.02
                )

    def forward(self, x: Tensor) -> Tensor:
        patches = self.projection(self.stem(x)).flatten(2).transpose(1, 2)  # (n, P, dim)
        tokens = torch.cat([self.class_token.expand(x.shape[0], -1, -1), patches], dim=1)
        return tokens + self.position


class Attention(nn.Module):
    """Multi-head self-attention passing its probabilities through ``attn_drop`` (timm's layout).

    ``attn_drop`` receives the softmax output ``(n, heads, T, T)``; its output multiplies the
    values, so a forward hook on it reads the attention and its output's gradient is the
    attention's.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise OptionError(
                f"Expected `dim` divisible by `heads`, but got dim={dim}, heads={heads}."
            )
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens: Tensor) -> Tensor:
        n, length, dim = tokens.shape
        qkv = (
            self.qkv(tokens)
            .reshape(n, length, 3, self.heads, dim // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        query, key, value = qkv[0], qkv[1], qkv[2]
        attention = torch.softmax((query @ key.transpose(-2, -1)) * self.scale, dim=-1)
        attention = self.attn_drop(attention)
        return self.proj((attention @ value).transpose(1, 2).reshape(n, length, dim))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, tokens: Tensor) -> Tensor:
        tokens = tokens + self.attn(self.norm1(tokens))
        return tokens + self.mlp(self.norm2(tokens))


class TinyViT(nn.Module):
    """A tiny vision transformer: patches, class token, pre-norm blocks, the class token's head.

    Args:
        in_channels: Input channels ``C``.
        num_classes: Output classes ``K``.
        image_size: The input's spatial size (an int or one per dim; position embeddings are fixed).
        patch_size: Patch side (an int or one per dim), dividing ``image_size``.
        dim: Token width.
        depth: Number of blocks.
        heads: Attention heads per block.
        mlp_ratio: Hidden width of the MLPs relative to ``dim``.
        spatial_dims: 1, 2 or 3.
        stem_channels: 0 (default): patches are projected directly, as in ViT; ``> 0``: two 3x3
            convolutions of this width first (a hybrid ViT; see :class:`TokenEmbedding`).
        input_mean, input_std: The input is standardised as ``(x - mean) / std`` first (buffers).
        generator: Source of the initial weights (default: seeded with 0).

    Shape:
        - input: ``(n, C, *image_size)``; output: ``(n, K)`` logits.

    Example:
        >>> model = TinyViT(3, 4, image_size=(8, 12), patch_size=4, depth=1)
        >>> model(torch.zeros(2, 3, 8, 12)).shape, model.num_tokens
        (torch.Size([2, 4]), 7)
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        *,
        image_size: int | Sequence[int] = 32,
        patch_size: int | Sequence[int] = 8,
        dim: int = 32,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        spatial_dims: int = 2,
        stem_channels: int = 0,
        input_mean: float = 0.5,
        input_std: float = 0.25,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims not in _CONV:
            raise OptionError(f"Expected `spatial_dims` in (1, 2, 3), but got {spatial_dims!r}.")
        size = _spatial_tuple(image_size, spatial_dims, "image_size")
        patch = _spatial_tuple(patch_size, spatial_dims, "patch_size")
        if any(s % p for s, p in zip(size, patch)):
            raise OptionError(f"Expected `patch_size` {patch} to divide `image_size` {size}.")
        check_positive_int(depth, "depth")
        if stem_channels:
            check_positive_int(stem_channels, "stem_channels")
        with torch.random.fork_rng(devices=[]):  # the layers' constructors draw from the global RNG
            grid = tuple(s // p for s, p in zip(size, patch))
            self.embedding = TokenEmbedding(in_channels, dim, grid, patch, stem_channels)
            self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, num_classes)
        self.register_buffer("input_mean", torch.tensor(float(input_mean)))
        self.register_buffer("input_std", torch.tensor(float(input_std)))
        self.image_size, self.patch_size = size, patch
        self.patch_grid = self.embedding.grid
        self.num_tokens = 1 + math.prod(self.patch_grid)
        _init_from(self, generator if generator is not None else torch.Generator().manual_seed(0))

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.embedding((x - self.input_mean) / self.input_std)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens)[:, 0])


class PrototypeLayer(nn.Module):
    r"""Prototype similarity maps: :math:`\log((d + 1) / (d + \epsilon))` of squared L2 distances.

    For features ``z`` ``(n, D, *s)`` and prototypes ``p_j`` ``(D,)`` (1x1 patches, as ProtoPNet's
    default), :math:`d_j(u) = \lVert z(u) - p_j \rVert^2` at every position ``u``, clamped at 0.

    Shape:
        - input: ``(n, D, *s)``; output: ``(n, m, *s)``.
    """

    def __init__(self, n_prototypes: int, channels: int, epsilon: float = 1e-4) -> None:
        super().__init__()
        self.prototypes = nn.Parameter(torch.zeros(n_prototypes, channels))
        self.epsilon = epsilon

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Prototypes uniform on [0, 1) (ProtoPNet's initialisation)."""
        with torch.no_grad():
            self.prototypes.copy_(
                torch.rand(self.prototypes.shape, generator=generator, dtype=self.prototypes.dtype)
            )

    def distances(self, features: Tensor) -> Tensor:
        flat = features.flatten(2)  # (n, D, U)
        squared = (
            (flat**2).sum(1, keepdim=True)
            - 2 * torch.einsum("jd,ndu->nju", self.prototypes, flat)
            + (self.prototypes**2).sum(1)[None, :, None]
        )
        return squared.clamp(min=0).reshape(features.shape[:1] + (-1,) + features.shape[2:])

    def forward(self, features: Tensor) -> Tensor:
        distances = self.distances(features)
        return torch.log((distances + 1) / (distances + self.epsilon))


class TinyProtoPNet(nn.Module):
    """A tiny ProtoPNet: conv backbone, add-on layers, prototypes, max pooling, class connections.

    ``logits = last_layer(max_u prototype_layer(add_on(backbone(x)))(u))``. The class-connection
    weights start as ProtoPNet's: 1 from a prototype to its own class, ``-0.5`` to the others;
    :attr:`prototype_class_identity` ``(m, K)`` (a buffer) says which class each prototype
    belongs to.

    Args:
        in_channels: Input channels ``C``.
        num_classes: Output classes ``K``.
        prototypes_per_class: ``m / K``.
        width: Channels of the backbone (and the prototype depth).
        spatial_dims: 1, 2 or 3.
        input_mean, input_std: Input standardisation (buffers).
        generator: Source of the initial weights (default: seeded with 0).

    Shape:
        - input: ``(n, C, *S)``, each side at least 4 (two max-pools: the maps have ``S / 4``);
          output: ``(n, K)`` logits.

    Example:
        >>> model = TinyProtoPNet(1, 3, prototypes_per_class=2, spatial_dims=1)
        >>> model(torch.zeros(2, 1, 16)).shape, model.prototype_layer.prototypes.shape
        (torch.Size([2, 3]), torch.Size([6, 8]))
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        *,
        prototypes_per_class: int = 3,
        width: int = 8,
        spatial_dims: int = 2,
        input_mean: float = 0.5,
        input_std: float = 0.25,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims not in _CONV:
            raise OptionError(f"Expected `spatial_dims` in (1, 2, 3), but got {spatial_dims!r}.")
        check_positive_int(prototypes_per_class, "prototypes_per_class")
        conv, pool = _CONV[spatial_dims], _POOL[spatial_dims]
        n_prototypes = num_classes * prototypes_per_class
        with torch.random.fork_rng(devices=[]):
            self.backbone = nn.Sequential(
                conv(in_channels, width, 3, padding=1),
                nn.ReLU(),
                pool(2),
                conv(width, width, 3, padding=1),
                nn.ReLU(),
                pool(2),
            )
            self.add_on = nn.Sequential(
                conv(width, width, 1), nn.ReLU(), conv(width, width, 1), nn.Sigmoid()
            )
            self.prototype_layer = PrototypeLayer(n_prototypes, width)
            self.last_layer = nn.Linear(n_prototypes, num_classes, bias=False)
        identity = torch.zeros(n_prototypes, num_classes)
        identity[torch.arange(n_prototypes), torch.arange(n_prototypes) // prototypes_per_class] = (
            1.0
        )
        self.register_buffer("prototype_class_identity", identity)
        self.register_buffer("input_mean", torch.tensor(float(input_mean)))
        self.register_buffer("input_std", torch.tensor(float(input_std)))
        _init_from(self, generator if generator is not None else torch.Generator().manual_seed(0))
        with torch.no_grad():
            self.last_layer.weight.copy_(identity.t() * 1.5 - 0.5)

    def similarity_maps(self, x: Tensor) -> Tensor:
        """The prototype layer's output ``(n, m, *s)``."""
        return self.prototype_layer(
            self.add_on(self.backbone((x - self.input_mean) / self.input_std))
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.last_layer(self.similarity_maps(x).flatten(2).amax(2))
