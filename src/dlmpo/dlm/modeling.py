"""A bidirectional Llama/Qwen2-family transformer in one file, with context K/V reuse.

Dream is Qwen2 (q/k/v biases) with full attention; LLaDA and our SmolLM2-based DLM are
Llama-shaped (no biases). Parameter names match transformers' Qwen2/Llama checkpoints, so their
state dicts load as they are. Beyond a plain forward, the model can return every layer's K/V
(after RoPE) and run a forward over a few *active* positions that attend to cached K/V of the
rest: the reuse behind the sampler's `kv_refresh` (Fast-dLLM's dual-cache idea)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (keys, values), (B, H_kv, L, D)


@dataclass
class TransformerConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    head_dim: int | None = None
    rope_theta: float = 10000.0
    rms_eps: float = 1e-6
    qkv_bias: bool = False
    tie_embeddings: bool = False
    rope_fp32: bool = False  # RoPE applied in float32 whatever the weights' dtype (LLaDA's rope_full_precision)

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_hf(cls, cfg: dict) -> TransformerConfig:
        """From a transformers config.json of the Qwen2 / Llama / Dream families."""
        rope = cfg.get("rope_parameters") or {}
        return cls(
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            num_layers=cfg["num_hidden_layers"],
            num_heads=cfg["num_attention_heads"],
            num_kv_heads=cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
            intermediate_size=cfg["intermediate_size"],
            head_dim=cfg.get("head_dim"),
            rope_theta=float(cfg.get("rope_theta") or rope.get("rope_theta") or 10000.0),
            rms_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            qkv_bias=bool(cfg.get("attention_bias", cfg.get("model_type") in ("qwen2", "Dream", "dream"))),
            tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        )


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotary(positions: torch.Tensor, dim: int, theta: float, dtype: torch.dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim))
    freqs = positions.float()[..., None] * inv_freq  # (B, L, dim/2)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype)[:, None], emb.sin().to(dtype)[:, None]  # (B, 1, L, dim)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    y = x.to(cos.dtype)
    return (y * cos + _rotate_half(y) * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        d, hd = cfg.hidden_size, cfg.dim_per_head
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, hd
        self.q_proj = nn.Linear(d, cfg.num_heads * hd, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(d, cfg.num_kv_heads * hd, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(d, cfg.num_kv_heads * hd, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(cfg.num_heads * hd, d, bias=False)

    def forward(self, x, cos, sin, key_mask=None, context=None, causal=False):
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q = _apply_rope(q, cos, sin)
        k = _apply_rope(k, cos, sin)
        kv = (k, v)
        if context is not None:
            k = torch.cat([context[0], k], dim=2)
            v = torch.cat([context[1], v], dim=2)
        groups = self.num_heads // self.num_kv_heads
        if groups > 1:
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, is_causal=causal)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1)), kv


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, key_mask=None, context=None, causal=False):
        h, kv = self.self_attn(self.input_layernorm(x), cos, sin, key_mask, context, causal)
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x)), kv


class _Body(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_eps)


class BidirectionalLM(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.config = cfg
        self.model = _Body(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        *,
        attention_mask: torch.Tensor | None = None,
        context: KV | None = None,
        return_kv: bool = False,
        causal: bool = False,
        inputs_embeds: torch.Tensor | None = None,
        rows: torch.Tensor | None = None,
        pattern: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KV | None]:
        """Logits for `input_ids` (B, N). `positions` (B, N) default to 0..N-1. `attention_mask`
        (B, N) of 1/0 hides padded keys. `context` holds cached K/V of positions not in the input;
        every input position attends to them and to each other (no causal mask unless `causal`).
        `pattern` (N, N) or (B, N, N), True where query i may attend to key j, restricts attention
        further (block-causal or annealed masks; see `attention_pattern`).
        `rows` (B, M) indexes the input positions whose logits are wanted (default: all)."""
        x = self.model.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        b, n = x.shape[:2]
        if positions is None:
            positions = torch.arange(n, device=x.device).expand(b, n)
        rope_dtype = torch.float32 if self.config.rope_fp32 else x.dtype
        cos, sin = rotary(positions, self.config.dim_per_head, self.config.rope_theta, rope_dtype)
        key_mask = None
        if attention_mask is not None:
            key_mask = attention_mask[:, None, None, :].to(torch.bool)
        if pattern is not None:
            pattern = pattern[None, None] if pattern.dim() == 2 else pattern[:, None]
            key_mask = pattern if key_mask is None else key_mask & pattern
        kvs: KV = []
        for i, layer in enumerate(self.model.layers):
            x, kv = layer(x, cos, sin, key_mask, None if context is None else context[i], causal)
            if return_kv:
                kvs.append(kv)
        if rows is not None:
            x = x.gather(1, rows[..., None].expand(-1, -1, x.shape[-1]))
        return self.lm_head(self.model.norm(x)), (kvs if return_kv else None)


def attention_pattern(kind: str, length: int, device=None, *, open_fraction: float = 1.0,
                      generator: torch.Generator | None = None) -> torch.Tensor | None:
    """Which keys each query may see, as an (N, N) boolean matrix (None: everything).

    full        bidirectional (Dream, LLaDA)
    causal      left to right (the autoregressive model we start from)
    block:B     bidirectional inside blocks of B tokens, causal across them (block diffusion)
    anneal      causal OR Bernoulli(open_fraction) per entry: DiffuGPT's attention-mask annealing,
                which opens the future gradually while an AR model learns to denoise"""
    if kind == "full":
        return None
    idx = torch.arange(length, device=device)
    causal = idx[:, None] >= idx[None, :]
    if kind == "causal":
        return causal
    if kind.startswith("block:"):
        block = int(kind.split(":", 1)[1])
        return (idx[:, None] // block) >= (idx[None, :] // block)
    if kind == "anneal":
        if open_fraction >= 1.0:
            return None
        opened = torch.rand((length, length), generator=generator, device=device) < open_fraction
        return causal | opened
    raise ValueError(f"unknown attention pattern {kind!r}")
