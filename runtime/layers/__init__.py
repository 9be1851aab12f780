"""The layers generated PyTorch modules use beyond torch.nn (`from dlc.runtime.layers import ...`).

`dlc emit torch` files import them from here; with `--standalone` the emitter copies the ones a
model uses into the file instead, by name, so each class and function is a self-contained
top-level definition (apart from the imports below, and `sinusoidal_table`, which the two
sinusoidal helpers call). State dict names match the compiler's weight names (`q_proj.weight`,
`weight_ih_l0`, ...). This module imports torch; `dlc.runtime` itself does not import it.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiheadAttention(nn.Module):
    """Batch-first multi-head attention with separate q/k/v/out projections.

    forward(q, k=None, v=None): keys default to the queries and values to the keys, so
    `attn(x)` is self-attention and `attn(q, memory)` cross-attention. With `causal`,
    query i attends to keys 0..i only.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, causal=False, kdim=None, vdim=None):
        super().__init__()
        kdim = kdim or embed_dim
        vdim = vdim or kdim
        self.num_heads = num_heads
        self.dropout = dropout
        self.causal = causal
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(kdim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(vdim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, q, k=None, v=None):
        k = q if k is None else k
        v = k if v is None else v
        b, t, e = q.shape
        q, k, v = (proj(x).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (B, heads, T, E/heads)
                   for proj, x in ((self.q_proj, q), (self.k_proj, k), (self.v_proj, v)))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                             is_causal=self.causal)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, e))


class MaskedConv2d(nn.Conv2d):
    """PixelCNN convolution: each output sees only the pixels above it and to its left.

    Mask "A" also hides the centre pixel (first layer), "B" keeps it. The mask is spatial,
    shared by all channels, and not saved in the state dict.
    """

    def __init__(self, in_channels, out_channels, kernel_size, mask, stride=1, padding="same", dilation=1,
                 groups=1, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        kh, kw = self.kernel_size
        m = torch.ones(kh, kw)
        m[kh // 2, kw // 2 + (mask == "B"):] = 0  # the centre row: the centre itself (A) and everything right
        m[kh // 2 + 1:] = 0  # every row below the centre
        self.mask_type = mask
        self.register_buffer("mask", m, persistent=False)

    def forward(self, x):
        return self._conv_forward(x, self.weight * self.mask, self.bias)

    def extra_repr(self):
        return f"{super().extra_repr()}, mask={self.mask_type!r}"


class PositionalEmbedding(nn.Module):
    """Adds a learned vector per position: x + weight[:T] for x of shape (B, T, D)."""

    def __init__(self, max_len, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_len, dim))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        return x + self.weight[: x.shape[1]]


def sinusoidal_table(length, dim):
    """The (length, dim) encodings of Attention Is All You Need: sin on even, cos on odd features."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table


def add_sinusoidal_encoding(x):
    """x + the sinusoidal encodings of positions 0..T-1, for x of shape (B, T, D)."""
    return x + sinusoidal_table(x.shape[1], x.shape[2]).to(x)


class SinusoidalPositionalEncoding(nn.Module):
    """Adds fixed sinusoidal position encodings (kept in a buffer, not in the state dict)."""

    def __init__(self, dim, max_len=5000):
        super().__init__()
        self.register_buffer("table", sinusoidal_table(max_len, dim), persistent=False)

    def forward(self, x):
        return x + self.table[: x.shape[1]].to(x.dtype)


class AdditiveAttention(nn.Module):
    """Bahdanau attention: context_t = sum_i softmax_i(score(tanh(query(q_t) + key(m_i)))) m_i.

    forward(q, memory): (B, Tq, Dq), (B, Tk, Dk) -> (B, Tq, Dk).
    """

    def __init__(self, query_dim, key_dim, units):
        super().__init__()
        self.query = nn.Linear(query_dim, units, bias=False)
        self.key = nn.Linear(key_dim, units, bias=False)
        self.score = nn.Linear(units, 1, bias=False)

    def forward(self, q, memory):
        scores = self.score(torch.tanh(self.query(q).unsqueeze(2) + self.key(memory).unsqueeze(1))).squeeze(-1)
        return torch.softmax(scores, dim=-1) @ memory


def reparameterize(mu, logvar, training=True):
    """VAE sampling: mu + exp(logvar / 2) * eps, eps ~ N(0, I), while training; mu at inference."""
    if not training:
        return mu
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class LSTM(nn.LSTM):
    """A batch-first nn.LSTM: forward(x, h0=None, c0=None) returns out, or (out, h_n, c_n) with return_state."""

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0, bidirectional=False, return_state=False):
        super().__init__(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout,
                         bidirectional=bidirectional)
        self.return_state = return_state

    def forward(self, x, h0=None, c0=None):
        state = None if h0 is None else (h0, torch.zeros_like(h0) if c0 is None else c0)
        out, (h, c) = super().forward(x, state)
        return (out, h, c) if self.return_state else out


class GRU(nn.GRU):
    """A batch-first nn.GRU: forward(x, h0=None) returns out, or (out, h_n) with return_state."""

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0, bidirectional=False, return_state=False):
        super().__init__(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout,
                         bidirectional=bidirectional)
        self.return_state = return_state

    def forward(self, x, h0=None):
        out, h = super().forward(x, h0)
        return (out, h) if self.return_state else out


class Abs(nn.Module):
    """|x|."""

    def forward(self, x):
        return torch.abs(x)


class Exp(nn.Module):
    """e^x."""

    def forward(self, x):
        return torch.exp(x)


class Log(nn.Module):
    """ln x."""

    def forward(self, x):
        return torch.log(x)


class Scale(nn.Module):
    """x * factor."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def extra_repr(self):
        return f"factor={self.factor}"


class Reshape(nn.Module):
    """x.reshape(shape); the shape includes the batch dim (-1 is inferred)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(self.shape)

    def extra_repr(self):
        return f"shape={self.shape}"


class Permute(nn.Module):
    """x.permute(dims)."""

    def __init__(self, dims):
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x):
        return x.permute(self.dims)

    def extra_repr(self):
        return f"dims={self.dims}"


class Transpose(nn.Module):
    """x.transpose(dim0, dim1)."""

    def __init__(self, dim0, dim1):
        super().__init__()
        self.dim0, self.dim1 = dim0, dim1

    def forward(self, x):
        return x.transpose(self.dim0, self.dim1)

    def extra_repr(self):
        return f"dim0={self.dim0}, dim1={self.dim1}"


class Unsqueeze(nn.Module):
    """x.unsqueeze(dim)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.unsqueeze(self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Squeeze(nn.Module):
    """x.squeeze(dim)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.squeeze(self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Select(nn.Module):
    """x.select(dim, index): one index along dim, which is dropped."""

    def __init__(self, dim, index):
        super().__init__()
        self.dim, self.index = dim, index

    def forward(self, x):
        return x.select(self.dim, self.index)

    def extra_repr(self):
        return f"dim={self.dim}, index={self.index}"


class Slice(nn.Module):
    """x[start:end:step] along dim."""

    def __init__(self, dim, start=0, end=None, step=1):
        super().__init__()
        self.dim, self.start, self.end, self.step = dim, start, end, step

    def forward(self, x):
        index = [slice(None)] * (self.dim % x.dim())
        return x[tuple(index + [slice(self.start, self.end, self.step)])]

    def extra_repr(self):
        return f"dim={self.dim}, start={self.start}, end={self.end}, step={self.step}"


class Sum(nn.Module):
    """x.sum(dim, keepdim)."""

    def __init__(self, dim=-1, keepdim=False):
        super().__init__()
        self.dim, self.keepdim = dim, keepdim

    def forward(self, x):
        return x.sum(self.dim, keepdim=self.keepdim)

    def extra_repr(self):
        return f"dim={self.dim}, keepdim={self.keepdim}"


class Mean(nn.Module):
    """x.mean(dim, keepdim)."""

    def __init__(self, dim=-1, keepdim=False):
        super().__init__()
        self.dim, self.keepdim = dim, keepdim

    def forward(self, x):
        return x.mean(self.dim, keepdim=self.keepdim)

    def extra_repr(self):
        return f"dim={self.dim}, keepdim={self.keepdim}"


class Chunk(nn.Module):
    """x.chunk(chunks, dim): a tuple of equal parts."""

    def __init__(self, chunks, dim=1):
        super().__init__()
        self.chunks, self.dim = chunks, dim

    def forward(self, x):
        return x.chunk(self.chunks, self.dim)

    def extra_repr(self):
        return f"chunks={self.chunks}, dim={self.dim}"


class Split(nn.Module):
    """x.split(sizes, dim): a tuple of parts of the given sizes."""

    def __init__(self, sizes, dim=1):
        super().__init__()
        self.sizes, self.dim = list(sizes), dim

    def forward(self, x):
        return x.split(self.sizes, self.dim)

    def extra_repr(self):
        return f"sizes={self.sizes}, dim={self.dim}"


class Clamp(nn.Module):
    """torch.clamp(x, min, max) as a layer; either bound may be None (not both)."""

    def __init__(self, min=None, max=None):
        super().__init__()
        self.min = min
        self.max = max

    def forward(self, x):
        return torch.clamp(x, min=self.min, max=self.max)

    def extra_repr(self):
        return f"min={self.min}, max={self.max}"


class Bits(nn.Module):
    """x / ln 2: nats to bits."""

    def forward(self, x):
        return x / math.log(2)


class Noise(nn.Module):
    """z ~ N(0, I) (or U[0, 1)) of shape (B, *shape), B the input's batch size: a generator's latent."""

    def __init__(self, shape, dist: str = "normal") -> None:
        super().__init__()
        self.shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
        self.dist = dist

    def forward(self, x):
        sample = torch.rand if self.dist == "uniform" else torch.randn
        return sample(x.shape[0], *self.shape, device=x.device)


class Detach(nn.Module):
    """x.detach(): the same values, with no gradient flowing back."""

    def forward(self, x):
        return x.detach()


class ToLevels(nn.Module):
    """Intensities in [0, 1] to int64 levels: clamp(floor(x * levels), 0, levels - 1)."""

    def __init__(self, levels):
        super().__init__()
        self.levels = levels

    def forward(self, x):
        return (x * self.levels).floor().clamp(0, self.levels - 1).long()

    def extra_repr(self):
        return f"levels={self.levels}"


def mean_iou(logits, target, dim=1):
    """Segmentation's mean intersection over union: per class c, |pred == c & target == c| over
    |pred == c | target == c| in the whole batch (pred: the arg-max along `dim`), averaged over the
    classes present in the prediction or the target; a float32 scalar."""
    classes = torch.arange(logits.shape[dim], device=target.device).view([-1] + [1] * target.ndim)
    pred = logits.argmax(dim).unsqueeze(0) == classes  # (C, B, ...)
    true = target.unsqueeze(0) == classes
    inter = (pred & true).flatten(1).sum(1).float()
    union = (pred | true).flatten(1).sum(1).float()
    return (inter / union.clamp(min=1)).sum() / (union > 0).sum().clamp(min=1)


def drop_path(x, p, training=True):
    """Stochastic depth (Huang et al. 2016), torchvision's `stochastic_depth(x, p, "row")`: while
    training, each sample's whole tensor is zeroed with probability p and the others are scaled by
    1 / (1 - p); the identity at inference."""
    if not training or p == 0.0:
        return x
    survival = 1.0 - p
    noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device)  # (B, 1, ...)
    return x * noise.bernoulli_(survival).div_(survival)


class DropPath(nn.Module):
    """drop_path(x, p) as a layer (torchvision's StochasticDepth(p, "row")): the identity in eval mode."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return drop_path(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


def random_shift(x, pixels, training=True):
    """Data augmentation: while training, each example (.., H, W) is translated by its own random
    integer offsets dy, dx in [-pixels, pixels] (zero fill: what moves out is lost); the identity
    at inference. Draws from torch's global generator, so `torch.manual_seed` repeats it."""
    if not training or pixels == 0:
        return x
    b, (h, w) = x.shape[0], x.shape[-2:]
    offsets = torch.randint(-pixels, pixels + 1, (b, 2), device=x.device)
    padded = F.pad(x, (pixels, pixels, pixels, pixels))
    rows = torch.arange(h, device=x.device) + pixels - offsets[:, :1]  # (B, H): output row i reads row i - dy
    cols = torch.arange(w, device=x.device) + pixels - offsets[:, 1:]  # (B, W)
    flat = padded.reshape(b, -1, *padded.shape[-2:])  # (B, C.., H + 2p, W + 2p)
    picked = flat[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return picked.permute(0, 3, 1, 2).reshape(x.shape)  # (B, H, W, C) -> (B, C, H, W)


class RandomShift(nn.Module):
    """random_shift(x, pixels) as a layer: the identity in eval mode."""

    def __init__(self, pixels):
        super().__init__()
        self.pixels = pixels

    def forward(self, x):
        return random_shift(x, self.pixels, self.training)

    def extra_repr(self):
        return f"pixels={self.pixels}"


class LayerNorm2d(nn.LayerNorm):
    """ConvNeXt's channels-first layer norm, as torchvision.models.convnext.LayerNorm2d: each
    position of (B, C, H, W) normalized over its C channels; weight and bias of shape (C,)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # (B, C, H, W)


def track_grad(x):
    """x as a tensor autograd follows, for a `grad` with respect to it: x itself when it is followed
    already, else (a data field, a value computed without gradients) a leaf copy that requires them."""
    if x.requires_grad or not torch.is_grad_enabled():
        return x
    return x.detach().requires_grad_()


def input_grad(y, x):
    """d(sum y)/dx, shaped like x, with its own graph (create_graph) so that a loss may contain it;
    zeros where y does not depend on x."""
    if not torch.is_grad_enabled():
        raise RuntimeError("`grad` needs autograd: run this module under torch.enable_grad(), not torch.no_grad()")
    if not y.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


def interpolate_random(x, y):
    """eps * x + (1 - eps) * y with one eps ~ U(0, 1) per example (WGAN-GP's interpolates)."""
    eps = torch.rand([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device)  # (B, 1, ...)
    return eps * x + (1 - eps) * y


class Sign(nn.Module):
    """torch.sign(x): -1, 0 or 1."""

    def forward(self, x):
        return torch.sign(x)


class Square(nn.Module):
    """x * x."""

    def forward(self, x):
        return torch.square(x)


class Shift(nn.Module):
    """x + by, a constant."""

    def __init__(self, by):
        super().__init__()
        self.by = by

    def forward(self, x):
        return x + self.by

    def extra_repr(self):
        return f"by={self.by}"


class ExampleNorm(nn.Module):
    """The L2 norm of each example over every dim but the batch dim 0: (B, ..) -> (B,)."""

    def forward(self, x):
        return torch.linalg.vector_norm(x.flatten(1), dim=1)
