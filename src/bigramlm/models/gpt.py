"""A decoder-only transformer: the lecture's next step after the bigram.

Token and learned position embeddings feed ``n_layer`` pre-LayerNorm blocks (causal
multi-head self-attention, then a GELU MLP, each wrapped in a residual connection),
a final LayerNorm, and an output head that shares its weights with the token
embedding. It keeps the shared interface ``forward(idx, targets=None) -> (logits,
loss)`` so training, evaluation, sampling and the assistant need nothing new.

Generation can pass a ``KVCache``: every layer keeps the keys and values of the
positions it has already seen, so each new token costs one position instead of a
re-run over the whole window. Positions are absolute (learned embeddings), so once
the cache holds ``block_size`` positions it cannot slide by one; generation then
rebuilds it from the most recent part of the context (see ``generation.decoding.CachedDecoder``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from bigramlm.errors import BigramLMError
from bigramlm.models.base import LanguageModel, check_weights_fit


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    #: Biases in the Linear and LayerNorm layers. Off by default: slightly fewer
    #: parameters and no measurable loss on these small models.
    bias: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BigramLMError(f"{name} must be an integer of at least 1 (got {value!r})", param=name)
        if self.n_embd % self.n_head:
            raise BigramLMError(f"n_embd {self.n_embd} must be a multiple of n_head {self.n_head}", param=("n_embd", "n_head"))
        if not 0.0 <= self.dropout < 1.0:
            raise BigramLMError(f"dropout must be in [0, 1) (got {self.dropout})", param="dropout")
        check_weights_fit(
            self.parameter_count(),
            f"a GPT of n_layer {self.n_layer}, n_embd {self.n_embd} (vocabulary {self.vocab_size})",
            param=("n_layer", "n_embd"),
        )

    def parameter_count(self) -> int:
        """Weights of the model this config builds, without building it (biases aside)."""
        per_block = 12 * self.n_embd * self.n_embd + 2 * self.n_embd  # attention 4 C^2, MLP 8 C^2, 2 LayerNorms
        return self.n_layer * per_block + (self.vocab_size + self.block_size + 1) * self.n_embd


#: One layer's weights as the decode step uses them: (weight, bias) of ln1, attn.qkv, attn.proj, ln2, mlp.fc
#: and mlp.proj, in that order; the biases are None in a model without biases.
LayerWeights = tuple[
    torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None,
    torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None,
]


class KVCache:
    """Keys and values of the positions already processed, for every layer.

    Buffers are allocated once at full block size; ``length`` says how many slots are
    filled. Rows may hold prompts of different lengths, left-padded to one length, and a
    speculative decode leaves holes where a row rejected draft tokens that another row
    kept (``commit``). Neither is ever attended to (``valid``), and each row's positions
    count its own real tokens only: ``offset[b]`` is how many of row ``b``'s slots so far
    are not real, so a row decodes exactly as it would alone.
    """

    def __init__(self, config: GPTConfig, batch_size: int, device: torch.device, dtype: torch.dtype,
                 pad: torch.Tensor | None = None, capacity: int | None = None):
        head_dim = config.n_embd // config.n_head
        #: Slots the buffers hold: the block, or fewer for a short job (scoring label lines).
        self.capacity = config.block_size if capacity is None else min(capacity, config.block_size)
        shape = (batch_size, config.n_head, self.capacity, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0
        #: (B,): slots of each row that are not real tokens (None: none are).
        self.offset = None if pad is None or not bool(pad.any()) else pad.to(device=device, dtype=torch.long)
        #: (B, capacity): which slots hold real tokens (None: all of them).
        self.valid = None if self.offset is None else (
            torch.arange(self.capacity, device=device).unsqueeze(0) >= self.offset.unsqueeze(1)
        )
        #: Each layer's weights, gathered by the model's one-position decode step on first use.
        self.weights: list[LayerWeights] | None = None

    def reset(self) -> None:
        self.length = 0

    def select_rows(self, rows: torch.Tensor) -> None:
        """Keep these rows of the batch only (rows that finished generating leave)."""
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]
        if self.offset is not None and self.valid is not None:
            self.offset, self.valid = self.offset[rows], self.valid[rows]

    def positions(self, start: int, length: int, device: torch.device) -> torch.Tensor:
        """Position ids of the next ``length`` tokens: (T,), or (B, T) with padded rows."""
        pos = torch.arange(start, start + length, device=device)
        return pos if self.offset is None else (pos.unsqueeze(0) - self.offset.unsqueeze(1)).clamp_min(0)

    def attention_mask(self, start: int, length: int) -> torch.Tensor | None:
        """(B, 1, T, start + T) mask of the keys each new query may see, or None when
        causal order alone decides (no padding, one query)."""
        end = start + length
        if self.valid is None:
            if length == 1:
                return None
            return torch.ones(length, end, dtype=torch.bool, device=self.keys[0].device).tril(diagonal=start)
        causal = torch.ones(length, end, dtype=torch.bool, device=self.valid.device).tril(diagonal=start)
        # A padding query sees itself only: it must attend to something (an all-masked
        # row is NaN), and a NaN value would poison the real rows through 0 * NaN.
        itself = torch.zeros(length, end, dtype=torch.bool, device=self.valid.device)
        itself[torch.arange(length), torch.arange(start, end)] = True
        return (causal.unsqueeze(0) & (self.valid[:, None, :end] | itself.unsqueeze(0))).unsqueeze(1)

    def commit(self, start: int, kept: torch.Tensor) -> None:
        """After a pass over slots ``start..length``, keep the first ``kept[b]`` of them in
        row ``b`` (a speculative decode's accepted tokens): the cache ends after the longest
        kept run, and a shorter row's rejected slots become holes it never attends to."""
        kept = kept.to(self.keys[0].device)
        end = start + int(kept.max())
        holes = (end - start) - kept
        if bool(holes.any()):
            if self.valid is None or self.offset is None:
                self.valid = torch.ones(kept.size(0), self.capacity, dtype=torch.bool, device=kept.device)
                self.offset = torch.zeros(kept.size(0), dtype=torch.long, device=kept.device)
            cols = torch.arange(start, end, device=kept.device)
            self.valid[:, start:end] = cols.unsqueeze(0) < (start + kept).unsqueeze(1)
            self.offset = self.offset + holes
        self.length = end

    def extend(self, other: "KVCache") -> None:
        """Append ``other``'s rows (new prompts, run through the model on their own) after
        this cache's rows: the shorter of the two is shifted right behind padding, so every
        row's slots end at the same place and keep their positions (continuous batching)."""
        length = max(self.length, other.length)
        if length > self.capacity or other.capacity != self.capacity:
            raise ValueError(f"cannot extend a cache of {self.capacity} slots by one of {other.capacity} "
                             f"holding {other.length}")
        device = self.keys[0].device
        parts = [(self, length - self.length), (other, length - other.length)]
        offsets, valid = [], []
        for cache, shift in parts:
            rows = cache.keys[0].size(0)
            own = cache.offset if cache.offset is not None else torch.zeros(rows, dtype=torch.long, device=device)
            offsets.append(own + shift)
            real = cache.valid if cache.valid is not None else torch.ones(rows, self.capacity, dtype=torch.bool, device=device)
            valid.append(torch.cat([torch.zeros(rows, shift, dtype=torch.bool, device=device),
                                    real[:, : self.capacity - shift]], dim=1))
        # One new buffer per layer, its two parts copied in: a fresh allocation is the costly
        # part here (first-touch page faults: 0.8 s of CPU for 18 rows in a probe, where 3 copies were
        # made per buffer). Slots past ``length`` are written before any query reads them.
        rows = self.keys[0].size(0)
        for mine, theirs in ((self.keys, other.keys), (self.values, other.values)):
            for layer in range(len(mine)):
                old, new = mine[layer], theirs[layer]
                joined = old.new_empty((rows + new.size(0), *old.shape[1:]))
                for part, (cache, shift), source in ((joined[:rows], parts[0], old), (joined[rows:], parts[1], new)):
                    part[:, :, :shift].zero_()
                    part[:, :, shift:length] = source[:, :, : cache.length]
                mine[layer] = joined
        self.offset, self.valid, self.length = torch.cat(offsets), torch.cat(valid), length
        self.valid[:, length:] = True  # the slots still to fill hold real tokens, as in a new cache

    def compact(self) -> None:
        """Close the holes: each row's real slots move to the end of a left-padded layout
        (their positions do not change), so the freed slots can be filled again."""
        if self.valid is None:
            return
        valid = self.valid[:, : self.length]
        counts = valid.sum(dim=1)
        width = int(counts.max())
        slots = torch.arange(self.length, device=valid.device)
        # Each row's real slots first, in order; then gather them behind the new padding.
        real_first = torch.where(valid, slots, slots + self.length).argsort(dim=1)[:, :width]
        pad = width - counts
        source = real_first.gather(1, (torch.arange(width, device=valid.device) - pad.unsqueeze(1)).clamp_min(0))
        index = source[:, None, :, None]
        for layer in range(len(self.keys)):
            for buffers in (self.keys, self.values):
                moved = buffers[layer].gather(2, index.expand(-1, buffers[layer].size(1), -1, buffers[layer].size(3)))
                buffers[layer][:, :, :width] = moved
        self.offset = pad
        self.valid = torch.arange(self.capacity, device=valid.device).unsqueeze(0) >= pad.unsqueeze(1)
        self.length = width


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        # One matmul for queries, keys and values: fewer, larger kernels run faster.
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        dropout = self.dropout if self.training else 0.0
        if cache is None:
            if q.dtype == torch.bfloat16 and q.device.type == "cpu":
                # Under bf16 autocast the matmuls gain ~3.5x from AMX, but the CPU
                # flash-attention backward in bf16 was measured ~5x slower than in
                # fp32 (benchmarks/gpt_cpu_tuning.py): attend in fp32.
                with torch.autocast("cpu", enabled=False):
                    y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), dropout_p=dropout, is_causal=True)
                y = y.to(q.dtype)  # a model held in bf16 (not autocast) carries on in bf16
            else:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            start = cache.length
            cache.keys[layer][:, :, start : start + T] = k
            cache.values[layer][:, :, start : start + T] = v
            k = cache.keys[layer][:, :, : start + T]
            v = cache.values[layer][:, :, : start + T]
            # Query i sits at position start + i and sees the real positions <= start + i.
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=cache.attention_mask(start, T))
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Exact (erf) GELU: on this CPU its forward and backward took a third of the
        # time of the tanh approximation.
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm: normalise the input of each sublayer, add its output to the stream."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


class GPT(LanguageModel):
    #: Generation decodes one position per new token from a ``KVCache``.
    supports_kv_cache = True

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        # The output head is tied to the token embedding (see forward): it scores a token
        # by the same vector that embeds it, which saves V x C parameters and helps
        # small models learn faster. Using the one matrix (not a second Linear sharing
        # it) also keeps the state dict free of aliases, which safetensors refuses.
        self.apply(self._init_weights)
        # GPT-2's scaling: each residual branch's output projection starts smaller by
        # sqrt(2 * n_layer), so the residual stream's variance does not grow with depth.
        for name, param in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, include_positions: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if include_positions else n - self.pos_emb.weight.numel()

    def new_cache(self, batch_size: int, pad: torch.Tensor | None = None, capacity: int | None = None) -> KVCache:
        weight = self.tok_emb.weight
        return KVCache(self.config, batch_size, weight.device, weight.dtype, pad, capacity)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > (cache.capacity if cache is not None else self.config.block_size):
            raise BigramLMError(
                f"sequence of {start + T} tokens is longer than the block size {self.config.block_size}; crop the context"
            )
        if cache is not None and not self.training:
            return self._decode_step(idx, cache), None
        pos = cache.positions(start, T, idx.device) if cache is not None else torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        if cache is not None:
            cache.length = start + T
        logits = F.linear(self.ln_f(x), self.tok_emb.weight)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(B * T, -1).float(), targets.reshape(B * T))
        return logits, loss

    def optimizer_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: decay the matrices (linear weights, embeddings), not the
        gains and biases, which only shift and scale and gain nothing from shrinking."""
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for param in self.parameters():
            if param.requires_grad:
                (decay if param.dim() >= 2 else no_decay).append(param)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


    def _decode_step(self, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits (B, T, V) for ``T`` new positions per row: ``forward``'s arithmetic, op for op.

        A cached step's matmuls are a few rows each, so most of its time went to Python
        (module calls, attribute lookups, reshapes, dropout no-ops, a mask built in every
        layer). This path calls the functional ops with the weights gathered once per
        cache and the mask built once per step: same kernels as ``forward``, so the same
        numbers (a test checks it bit for bit), in 0.78-0.86x the time for one position
        (benchmarks/gpt_generation.py); a speculative decode verifies its drafts through it.
        """
        if cache.weights is None:
            cache.weights = [
                (b.ln1.weight, b.ln1.bias, b.attn.qkv.weight, b.attn.qkv.bias, b.attn.proj.weight, b.attn.proj.bias,
                 b.ln2.weight, b.ln2.bias, b.mlp.fc.weight, b.mlp.fc.bias, b.mlp.proj.weight, b.mlp.proj.bias)
                for b in cast("Iterable[Block]", self.blocks)
            ]
        (B, T), C, H = idx.shape, self.config.n_embd, self.config.n_head
        start, shape = cache.length, (C,)
        end = start + T
        mask = cache.attention_mask(start, T)
        x = self.tok_emb.weight[idx] + self.pos_emb.weight[cache.positions(start, T, idx.device)]
        for keys, values, (ln1_w, ln1_b, qkv_w, qkv_b, attn_w, attn_b, ln2_w, ln2_b, fc_w, fc_b, proj_w, proj_b) in zip(
            cache.keys, cache.values, cache.weights
        ):
            q, k, v = F.linear(F.layer_norm(x, shape, ln1_w, ln1_b), qkv_w, qkv_b).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
            # narrow rather than slicing syntax: Python index parsing cost more than the copies themselves.
            keys.narrow(2, start, T).copy_(k)
            values.narrow(2, start, T).copy_(v)
            y = F.scaled_dot_product_attention(q, keys.narrow(2, 0, end), values.narrow(2, 0, end), attn_mask=mask)
            x = x + F.linear(y.transpose(1, 2).reshape(B, T, C), attn_w, attn_b)
            x = x + F.linear(F.gelu(F.linear(F.layer_norm(x, shape, ln2_w, ln2_b), fc_w, fc_b)), proj_w, proj_b)
        cache.length = end
        return F.linear(F.layer_norm(x, shape, self.ln_f.weight, self.ln_f.bias), self.tok_emb.weight)
