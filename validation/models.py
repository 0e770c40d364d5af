"""PyTorch models measured by the roofline validation.

Written for this project (not copied from third-party code) after the published descriptions:
JiT (Li & He, "Back to Basics: Let Denoising Generative Models Denoise", arXiv 2511.13720, and
its public code, github.com/LTH14/JiT, model_jit.py), the standard GPT-2 small architecture, and
the published Llama 3 8B and Mixtral 8x7B configurations (sizes as in the released model cards).

Four models:

* ``jit-b4``: the planned JiT-B/4 workload of examples/plans/jit-b4-8xh200.toml, on 64x64 RGB
  images, conditioned on a condition image.
  The condition image and the noisy target image are patch-embedded by the same bottleneck
  embedder and concatenated (256 + 256 = 512 tokens); blocks are pre-norm RMSNorm + adaLN-Zero,
  attention with qk-norm and 2-D axial RoPE, SwiGLU MLP; the final layer runs on the 256 target
  tokens only; loss = MSE between predicted and clean target patches.
* ``gpt2-124m``: GPT-2 small (causal, seq 1024, vocab 50257, learned positions, LayerNorm with
  bias, GELU MLP 4x, tied embeddings, biases everywhere). 124,439,808 parameters.
* ``llama3-8b``: Llama 3 8B (causal, seq 8192, vocab 128256, width 4096, 32 blocks, grouped-query
  attention with 32 query and 8 key/value heads of 128, 1-D RoPE on q and k, pre-norm RMSNorm,
  SwiGLU MLP hidden 14336, no biases, no position embedding, untied lm_head).
  8,030,261,248 parameters.
* ``mixtral-8x7b``: Mixtral 8x7B: the same trunk at vocab 32000 and seq 32768, with every MLP a
  sparse mixture of experts (8 SwiGLU experts of hidden 14336, top-2 routing), written with static
  shapes as a dropless grouped-GEMM layer under a balanced-routing assumption (see ``MoE``).
  46,702,792,704 parameters.

Attention implementations (``attention=`` argument), identical maths, different kernels:

* ``naive``: as the public JiT code: scores computed in fp32 with autocast disabled
  (``q.float() @ k.float().transpose(-2, -1) * scale``), a materialized bias tensor of shape
  [B, 1, L, S] added (zeros for JiT; 0 / -inf causal mask for GPT-2), fp32 softmax, then
  ``attn @ v`` under the caller's autocast (so the fp32 probabilities are cast to bf16 for it).
* ``sdpa-math``: ``F.scaled_dot_product_attention`` restricted to the MATH backend.
* ``flash2``: ``F.scaled_dot_product_attention`` restricted to the FLASH_ATTENTION backend
  (FlashAttention-2 kernels inside PyTorch). If that backend cannot run, PyTorch raises.
* ``sdpa``: SDPA with PyTorch's default backend choice (used by the count mode where the flash
  backend is not selectable).

Grouped-query attention (``llama3-8b``, ``mixtral-8x7b``): ``naive``, ``sdpa-math`` and ``sdpa``
first expand k and v to the query heads as Hugging Face's ``repeat_kv`` does (``expand`` then
``reshape``: a materialized copy); ``flash2`` passes them un-expanded with ``enable_gqa=True``, as
FlashAttention runs GQA on CUDA (no copy; PyTorch's CPU flash kernel accepts it too).

Every attention module records the backend it last ran in ``.last_backend``.

Mixed precision note: like the public JiT code, the residual stream stays fp32 under bf16
autocast, because the fp32 position embedding is added to the bf16 patch embedding and RMSNorm
multiplies its fp32-computed output by an fp32 weight. Only the matmuls/convs run in bf16.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

ATTENTION_CHOICES = ("naive", "sdpa-math", "flash2", "sdpa")
MODEL_CHOICES = ("jit-b4", "gpt2-124m", "llama3-8b", "mixtral-8x7b")


# ---------------------------------------------------------------------------------------------
# Attention core shared by all models
# ---------------------------------------------------------------------------------------------

def _sdpa_backend_context(attention: str):
    """Context manager restricting SDPA to the backend that ``attention`` names."""
    if attention == "sdpa":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"sdpa-math": SDPBackend.MATH, "flash2": SDPBackend.FLASH_ATTENTION}[attention]
    return sdpa_kernel(backend)


def attention_core(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attention: str,
                   causal: bool, enable_gqa: bool = False) -> tuple[torch.Tensor, str]:
    """softmax(q k^T / sqrt(dh) [+ mask]) v for q, k, v of shape [B, H, L, dh].

    With ``enable_gqa`` (SDPA implementations only) k and v have fewer heads than q (a divisor),
    and SDPA shares each key/value head among H / Hkv query heads without expanding them.

    Returns the output [B, H, L, dh] and the name of the implementation that ran.
    """
    if attention == "naive":
        if enable_gqa:
            raise ValueError("naive attention needs k and v expanded to the query heads (repeat_kv)")
        B, _, L, dh = q.shape
        S = k.shape[-2]
        scale = 1.0 / math.sqrt(dh)
        # Materialized additive bias, as in the public JiT code (zeros there); causal -> -inf.
        bias = torch.zeros(B, 1, L, S, dtype=torch.float32, device=q.device)
        if causal:
            keep = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
            bias = bias.masked_fill(keep.logical_not(), float("-inf"))
        with torch.autocast(device_type=q.device.type, enabled=False):
            scores = q.float() @ k.float().transpose(-2, -1) * scale
            scores = scores + bias
            probs = torch.softmax(scores, dim=-1)
        # attn @ v under the caller's autocast (bf16 matmul when autocast is on).
        return probs @ v, "naive"
    if attention in ("sdpa-math", "flash2", "sdpa"):
        # Under CUDA autocast SDPA casts its inputs to the autocast dtype; elsewhere (CPU
        # autocast, fp32 runs) make q, k, v agree on v's dtype so every backend accepts them.
        if q.dtype != v.dtype and not torch.is_autocast_enabled(q.device.type):
            q, k = q.to(v.dtype), k.to(v.dtype)
        elif q.dtype != v.dtype:
            dt = torch.get_autocast_dtype(q.device.type)
            q, k, v = q.to(dt), k.to(dt), v.to(dt)
        gqa = {"enable_gqa": True} if enable_gqa else {}
        with _sdpa_backend_context(attention):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, **gqa)
        return out, attention
    raise ValueError(f"unknown attention implementation {attention!r}; choose from {ATTENTION_CHOICES}")


def _note_backend(module: nn.Module, backend: str) -> None:
    """Remember which attention implementation ran (skipped while torch.compile traces, so the
    compiled graph has no Python side effect to guard on)."""
    if not torch.compiler.is_compiling():
        module.last_backend = backend


# ---------------------------------------------------------------------------------------------
# JiT-B/4
# ---------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    """RMSNorm with weight; statistics and normalisation in fp32, as in the JiT code."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[len(positions), dim] table: first half sin, second half cos (MAE-style)."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / (10000.0 ** omega)
    out = positions.double().reshape(-1)[:, None] * omega[None, :]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1).float()


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """Frozen 2-D sin-cos position table [grid*grid, dim]: half the channels encode the row,
    half the column."""
    rows = torch.arange(grid).repeat_interleave(grid)
    cols = torch.arange(grid).repeat(grid)
    return torch.cat([sincos_1d(dim // 2, rows), sincos_1d(dim // 2, cols)], dim=1)


def axial_rope_tables(head_dim: int, grid: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables [grid*grid, head_dim] for 2-D axial RoPE.

    Half the head dimension rotates with the row index, half with the column index; within each
    half, consecutive channel pairs (2i, 2i+1) share a frequency.
    """
    half = head_dim // 2
    freqs = 1.0 / (theta ** (torch.arange(0, half, 2, dtype=torch.float64) / half))  # half/2
    rows = torch.arange(grid, dtype=torch.float64).repeat_interleave(grid)
    cols = torch.arange(grid, dtype=torch.float64).repeat(grid)
    ang_r = (rows[:, None] * freqs[None, :]).repeat_interleave(2, dim=1)  # [N, half]
    ang_c = (cols[:, None] * freqs[None, :]).repeat_interleave(2, dim=1)
    ang = torch.cat([ang_r, ang_c], dim=1)  # [N, head_dim]
    return torch.cos(ang).float(), torch.sin(ang).float()


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)."""
    x = x.unflatten(-1, (-1, 2))
    x0, x1 = x.unbind(-1)
    return torch.stack((-x1, x0), dim=-1).flatten(-2)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [B, H, L, dh]; cos, sin: [L, dh]."""
    return x * cos + rotate_pairs(x) * sin


def timestep_sinusoid(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of a scalar timestep per sample: [B] -> [B, dim] (cos then sin)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class BottleneckPatchEmbed(nn.Module):
    """conv(3 -> bottleneck, kernel = stride = patch, no bias) then conv 1x1 (bottleneck -> d)."""

    def __init__(self, patch: int, in_chans: int, bottleneck: int, dim: int):
        super().__init__()
        self.proj1 = nn.Conv2d(in_chans, bottleneck, kernel_size=patch, stride=patch, bias=False)
        self.proj2 = nn.Conv2d(bottleneck, dim, kernel_size=1, stride=1, bias=True)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.proj2(self.proj1(img)).flatten(2).transpose(1, 2)  # [B, N, d]


class TimestepEmbedder(nn.Module):
    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_sinusoid(t, self.freq_dim))


class JiTAttention(nn.Module):
    def __init__(self, dim: int, heads: int, attention: str):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.attention = attention
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.q_norm = RMSNorm(self.head_dim)
        self.k_norm = RMSNorm(self.head_dim)
        self.proj = nn.Linear(dim, dim)
        self.last_backend: str | None = None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        qkv = self.qkv(x).reshape(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = apply_rope(self.q_norm(q), cos, sin)
        k = apply_rope(self.k_norm(k), cos, sin)
        out, backend = attention_core(q, k, v, self.attention, causal=False)
        _note_backend(self, backend)
        return self.proj(out.transpose(1, 2).reshape(B, L, D))


class SwiGLU(nn.Module):
    """w12 = gate and up projections fused; w3 = down projection."""

    def __init__(self, dim: int, hidden: int, bias: bool = True):
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden, bias=bias)
        self.w3 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class JiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_hidden: int, attention: str):
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = JiTAttention(dim, heads, attention)
        self.norm2 = RMSNorm(dim)
        self.mlp = SwiGLU(dim, mlp_hidden)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        sh_a, sc_a, g_a, sh_m, sc_m, g_m = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + g_a.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh_a, sc_a), cos, sin)
        x = x + g_m.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh_m, sc_m))
        return x


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm_final = RMSNorm(dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.linear = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


@dataclass
class JiTConfig:
    img_size: int = 64
    patch: int = 4
    in_chans: int = 3
    dim: int = 768
    depth: int = 12
    heads: int = 12
    bottleneck: int = 128
    num_classes: int = 1000  # the embedding table has num_classes + 1 rows (the CFG null class)
    in_context_len: int = 0  # JiT's optional in-context class tokens (32 in the public code)
    in_context_start: int = 4  # block index from which the in-context tokens are prepended
    condition_image: bool = True  # planned workload: 256 condition + 256 target tokens

    @property
    def grid(self) -> int:
        return self.img_size // self.patch

    @property
    def mlp_hidden(self) -> int:
        return int(int(4 * self.dim) * 2 / 3)


class JiT(nn.Module):
    """JiT-B/4 denoiser as in the planned workload (see module docstring)."""

    def __init__(self, cfg: JiTConfig | None = None, attention: str = "naive"):
        super().__init__()
        cfg = cfg or JiTConfig()
        self.cfg = cfg
        d, g = cfg.dim, cfg.grid
        self.x_embedder = BottleneckPatchEmbed(cfg.patch, cfg.in_chans, cfg.bottleneck, d)
        self.t_embedder = TimestepEmbedder(d)
        self.y_embedder = nn.Embedding(cfg.num_classes + 1, d)
        # Frozen: buffers, not parameters (the public code uses requires_grad=False parameters).
        self.register_buffer("pos_embed", sincos_2d(d, g)[None], persistent=False)
        cos, sin = axial_rope_tables(d // cfg.heads, g)
        if cfg.condition_image:  # the condition and target halves share the same 2-D grid
            cos, sin = cos.repeat(2, 1), sin.repeat(2, 1)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        if cfg.in_context_len > 0:
            self.in_context_posemb = nn.Parameter(torch.zeros(1, cfg.in_context_len, d))
            ones_c = torch.ones(cfg.in_context_len, d // cfg.heads)
            zeros_c = torch.zeros(cfg.in_context_len, d // cfg.heads)
            # In-context tokens carry no position: identity rotation (cos 1, sin 0).
            self.register_buffer("rope_cos_ic", torch.cat([ones_c, cos]), persistent=False)
            self.register_buffer("rope_sin_ic", torch.cat([zeros_c, sin]), persistent=False)
        self.blocks = nn.ModuleList(
            JiTBlock(d, cfg.heads, cfg.mlp_hidden, attention) for _ in range(cfg.depth))
        self.final_layer = FinalLayer(d, cfg.patch * cfg.patch * cfg.in_chans)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random init (adaLN not zeroed, so every path carries signal during timing)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.y_embedder.weight, std=0.02)

    def patchify(self, img: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, N, p*p*C]."""
        p, B, C = self.cfg.patch, img.shape[0], img.shape[1]
        g = img.shape[-1] // p
        x = img.reshape(B, C, g, p, g, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(B, g * g, p * p * C)

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted clean target patches [B, 256, p*p*3]."""
        cfg = self.cfg
        x = self.x_embedder(noisy) + self.pos_embed
        n_target = x.shape[1]
        if cfg.condition_image:
            if cond is None:
                raise ValueError("this JiT is configured with a condition image; pass cond=")
            x = torch.cat([self.x_embedder(cond) + self.pos_embed, x], dim=1)
        y_emb = self.y_embedder(y)
        c = self.t_embedder(t) + y_emb
        cos, sin = self.rope_cos, self.rope_sin
        for i, block in enumerate(self.blocks):
            if cfg.in_context_len > 0 and i == cfg.in_context_start:
                ic = y_emb.unsqueeze(1).expand(-1, cfg.in_context_len, -1) + self.in_context_posemb
                x = torch.cat([ic, x], dim=1)
                cos, sin = self.rope_cos_ic, self.rope_sin_ic
            x = block(x, c, cos, sin)
        x = x[:, -n_target:]  # final layer on the target tokens only
        return self.final_layer(x, c)

    def training_loss(self, batch: dict) -> torch.Tensor:
        """One denoising training loss: z = t*x + (1-t)*noise, predict x, MSE on target patches."""
        x, noise, t = batch["target"], batch["noise"], batch["t"]
        tt = t.view(-1, 1, 1, 1)
        z = tt * x + (1 - tt) * noise
        pred = self(z, t, batch["label"], batch.get("cond"))
        return F.mse_loss(pred.float(), self.patchify(x).float())

    def make_batch(self, batch_size: int, device, generator: torch.Generator | None = None) -> dict:
        cfg = self.cfg
        shape = (batch_size, cfg.in_chans, cfg.img_size, cfg.img_size)
        kw = dict(device=device, generator=generator)
        out = {
            "target": torch.randn(shape, **kw),
            "noise": torch.randn(shape, **kw),
            "t": torch.rand(batch_size, **kw),
            "label": torch.randint(0, cfg.num_classes + 1, (batch_size,), **kw),
        }
        if cfg.condition_image:
            out["cond"] = torch.randn(shape, **kw)
        return out

    @property
    def seq_len(self) -> int:
        return self.cfg.grid ** 2 * (2 if self.cfg.condition_image else 1)


# ---------------------------------------------------------------------------------------------
# GPT-2 small
# ---------------------------------------------------------------------------------------------

@dataclass
class GPT2Config:
    vocab: int = 50257
    seq: int = 1024
    dim: int = 768
    depth: int = 12
    heads: int = 12


class GPT2Attention(nn.Module):
    def __init__(self, dim: int, heads: int, attention: str):
        super().__init__()
        self.heads, self.head_dim, self.attention = heads, dim // heads, attention
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)
        self.last_backend: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.c_attn(x).reshape(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        out, backend = attention_core(q, k, v, self.attention, causal=True)
        _note_backend(self, backend)
        return self.c_proj(out.transpose(1, 2).reshape(B, L, D))


class GPT2Block(nn.Module):
    def __init__(self, dim: int, heads: int, attention: str):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = GPT2Attention(dim, heads, attention)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    def __init__(self, cfg: GPT2Config | None = None, attention: str = "naive"):
        super().__init__()
        cfg = cfg or GPT2Config()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab, cfg.dim)
        self.wpe = nn.Embedding(cfg.seq, cfg.dim)
        self.blocks = nn.ModuleList(GPT2Block(cfg.dim, cfg.heads, attention) for _ in range(cfg.depth))
        self.ln_f = nn.LayerNorm(cfg.dim)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        L = idx.shape[1]
        pos = torch.arange(L, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    def training_loss(self, batch: dict) -> torch.Tensor:
        logits = self(batch["idx"])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch["targets"].reshape(-1))

    def make_batch(self, batch_size: int, device, generator: torch.Generator | None = None) -> dict:
        kw = dict(device=device, generator=generator)
        shape = (batch_size, self.cfg.seq)
        return {"idx": torch.randint(0, self.cfg.vocab, shape, **kw),
                "targets": torch.randint(0, self.cfg.vocab, shape, **kw)}

    @property
    def seq_len(self) -> int:
        return self.cfg.seq


# ---------------------------------------------------------------------------------------------
# Llama 3 8B and Mixtral 8x7B (grouped-query attention; dense SwiGLU or mixture-of-experts MLP)
# ---------------------------------------------------------------------------------------------

def rope_tables_1d(head_dim: int, seq: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables [seq, head_dim] for 1-D RoPE over positions 0..seq-1.

    Consecutive channel pairs (2i, 2i+1) share the frequency theta^(-2i/head_dim), the pairing
    that ``rotate_pairs`` / ``apply_rope`` use (Meta's reference Llama code pairs channels the same
    way; Hugging Face's rotate_half pairs i with i + head_dim/2, a permutation of the weights).
    """
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    pos = torch.arange(seq, dtype=torch.float64)
    ang = (pos[:, None] * freqs[None, :]).repeat_interleave(2, dim=1)  # [seq, head_dim]
    return torch.cos(ang).float(), torch.sin(ang).float()


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[B, Hkv, L, dh] -> [B, Hkv * n_rep, L, dh], each key/value head repeated n_rep times in
    place, as Hugging Face's ``repeat_kv``: an expanded view reshaped, which copies."""
    if n_rep == 1:
        return x
    B, kv, L, dh = x.shape
    return x[:, :, None, :, :].expand(B, kv, n_rep, L, dh).reshape(B, kv * n_rep, L, dh)


class GQAttention(nn.Module):
    """Causal grouped-query attention: one fused qkv projection (query heads, then key heads,
    then value heads), RoPE on q and k, no biases."""

    def __init__(self, dim: int, heads: int, kv_heads: int, attention: str):
        super().__init__()
        if heads % kv_heads:
            raise ValueError(f"{heads} query heads are not a multiple of {kv_heads} key/value heads")
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.attention = attention
        self.qkv = nn.Linear(dim, (heads + 2 * kv_heads) * self.head_dim, bias=False)
        self.proj = nn.Linear(heads * self.head_dim, dim, bias=False)
        self.last_backend: str | None = None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        h, kv, dh = self.heads, self.kv_heads, self.head_dim
        q, k, v = self.qkv(x).reshape(B, L, h + 2 * kv, dh).transpose(1, 2).split([h, kv, kv], dim=1)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        if self.attention == "flash2":  # FlashAttention shares the kv heads: no expanded copy
            out, backend = attention_core(q, k, v, self.attention, causal=True, enable_gqa=kv != h)
        else:
            k, v = repeat_kv(k, h // kv), repeat_kv(v, h // kv)
            out, backend = attention_core(q, k, v, self.attention, causal=True)
        _note_backend(self, backend)
        return self.proj(out.transpose(1, 2).reshape(B, L, h * dh))


class GroupedLinear(nn.Module):
    """One weight per expert, ``weight`` [E, in, out], applied to [E, rows, in] with one ``bmm``
    (a grouped GEMM with equal groups). No bias."""

    def __init__(self, experts: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(experts, in_dim, out_dim))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x, self.weight)


class MoE(nn.Module):
    """Sparse mixture of SwiGLU experts with top-k routing, dropless, with static shapes.

    FakeTensorMode cannot run data-dependent shapes, so the layer assumes balanced routing: each
    expert receives exactly T*k/E of the T*k routed rows (T tokens). The router and the
    permutation are computed as in a real dropless grouped-GEMM layer (softmax in fp32, top-k,
    weights renormalised over the k choices, a stable argsort of the expert ids, ``index_select``
    of the routed rows, ``index_add_`` of the weighted expert outputs); the expert GEMMs then run
    on the sorted rows taken as E equal groups, whatever the router chose. The op program and
    every shape are those of a real step with perfectly balanced routing; the values are those
    of a real MoE only when the routing happens to be balanced.
    """

    def __init__(self, dim: int, hidden: int, experts: int, top_k: int):
        super().__init__()
        self.experts, self.top_k = experts, top_k
        self.router = nn.Linear(dim, experts, bias=False)
        self.w12 = GroupedLinear(experts, dim, 2 * hidden)  # gate and up, fused
        self.w3 = GroupedLinear(experts, hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        T, k, E = B * L, self.top_k, self.experts
        if (T * k) % E:
            raise ValueError(f"balanced routing needs tokens * top_k ({T * k}) divisible by {E} experts")
        x_flat = x.reshape(T, d)
        probs = torch.softmax(self.router(x_flat).float(), dim=-1)
        w, idx = probs.topk(k, dim=-1)
        w = w / w.sum(-1, keepdim=True)
        w = w.to(x.dtype)
        order = idx.reshape(-1).argsort(stable=True)  # routed rows grouped by expert
        token = order // k
        xs = x_flat.index_select(0, token).view(E, T * k // E, d)
        a, b = self.w12(xs).chunk(2, dim=-1)
        y = self.w3(F.silu(a) * b).reshape(T * k, d)
        y = y * w.reshape(-1)[order].unsqueeze(-1)
        return torch.zeros_like(x_flat).index_add_(0, token, y).reshape(B, L, d)


@dataclass
class Llama3Config:
    vocab: int = 128256
    seq: int = 8192
    dim: int = 4096
    depth: int = 32
    heads: int = 32
    kv_heads: int = 8
    mlp_hidden: int = 14336
    rope_theta: float = 500000.0
    norm_eps: float = 1e-5
    experts: int = 0  # 0: dense SwiGLU MLP; otherwise a mixture of this many SwiGLU experts
    top_k: int = 2


@dataclass
class MixtralConfig(Llama3Config):
    vocab: int = 32000
    seq: int = 32768
    rope_theta: float = 1000000.0
    experts: int = 8


class LlamaBlock(nn.Module):
    def __init__(self, cfg: Llama3Config, attention: str):
        super().__init__()
        self.norm1 = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = GQAttention(cfg.dim, cfg.heads, cfg.kv_heads, attention)
        self.norm2 = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = (MoE(cfg.dim, cfg.mlp_hidden, cfg.experts, cfg.top_k) if cfg.experts
                    else SwiGLU(cfg.dim, cfg.mlp_hidden, bias=False))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


class Llama(nn.Module):
    """Decoder-only LM with grouped-query attention: ``llama3-8b`` (dense MLP) and
    ``mixtral-8x7b`` (mixture of experts)."""

    def __init__(self, cfg: Llama3Config | None = None, attention: str = "naive"):
        super().__init__()
        cfg = cfg or Llama3Config()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab, cfg.dim)
        cos, sin = rope_tables_1d(cfg.dim // cfg.heads, cfg.seq, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.blocks = nn.ModuleList(LlamaBlock(cfg, attention) for _ in range(cfg.depth))
        self.norm_f = RMSNorm(cfg.dim, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab, bias=False)  # untied
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        L = idx.shape[1]
        x = self.wte(idx)
        cos, sin = self.rope_cos[:L], self.rope_sin[:L]
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.lm_head(self.norm_f(x))

    def training_loss(self, batch: dict) -> torch.Tensor:
        logits = self(batch["idx"])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch["targets"].reshape(-1))

    def make_batch(self, batch_size: int, device, generator: torch.Generator | None = None) -> dict:
        kw = dict(device=device, generator=generator)
        shape = (batch_size, self.cfg.seq)
        return {"idx": torch.randint(0, self.cfg.vocab, shape, **kw),
                "targets": torch.randint(0, self.cfg.vocab, shape, **kw)}

    @property
    def seq_len(self) -> int:
        return self.cfg.seq


# ---------------------------------------------------------------------------------------------

def build_model(name: str, attention: str = "naive", **kwargs) -> nn.Module:
    """Build ``jit-b4``, ``gpt2-124m``, ``llama3-8b`` or ``mixtral-8x7b`` with the given attention
    implementation.

    Extra keyword arguments go to the model's config dataclass (e.g. ``in_context_len=32``).
    """
    if attention not in ATTENTION_CHOICES:
        raise ValueError(f"unknown attention {attention!r}; choose from {ATTENTION_CHOICES}")
    if name == "jit-b4":
        return JiT(JiTConfig(**kwargs), attention=attention)
    if name == "gpt2-124m":
        return GPT2(GPT2Config(**kwargs), attention=attention)
    if name == "llama3-8b":
        return Llama(Llama3Config(**kwargs), attention=attention)
    if name == "mixtral-8x7b":
        return Llama(MixtralConfig(**kwargs), attention=attention)
    raise ValueError(f"unknown model {name!r}; choose from {MODEL_CHOICES}")


def count_parameters(model: nn.Module) -> dict:
    """Parameter counts; shared (tied) tensors are counted once, frozen buffers listed apart."""
    seen, trainable, frozen = set(), 0, 0
    for p in model.parameters():  # .parameters() already yields tied tensors once
        if id(p) in seen:
            continue
        seen.add(id(p))
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    buffers = sum(b.numel() for b in model.buffers())
    return {"trainable": trainable, "frozen_parameters": frozen, "buffers": buffers}


def attention_backends(model: nn.Module) -> list[str]:
    """Distinct implementation names the attention modules last ran with."""
    names = {getattr(m, "last_backend", None) for m in model.modules()}
    return sorted(n for n in names if n)


if __name__ == "__main__":
    for name in MODEL_CHOICES:
        with torch.device("meta"):
            m = build_model(name)
        print(name, count_parameters(m), flush=True)
