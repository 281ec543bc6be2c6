"""Attention layers and the mask decoder's two-way transformer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import MLP, attention, blocked_attention, dropout
from .position_encoding import apply_rope, apply_rope_channels_first, axial_rope_tables

__all__ = ["Attention", "ImageProjections", "RoPEAttention", "TwoWayAttentionBlock",
           "TwoWayTransformer"]


@dataclass(frozen=True)
class ImageProjections:
    """A two-way block's image-side projections of its input image tokens.

    Attributes:
        k: (B, nh, hw, d) token->image keys, ``k_proj(keys + key_pe)`` split into heads.
        v: (B, nh, hw, d) token->image values, ``v_proj(keys)``.
        q_t: (B, nh, d, hw) image->token queries, ``q_proj(keys + key_pe)``, transposed.
    """

    k: torch.Tensor
    v: torch.Tensor
    q_t: torch.Tensor


class Attention(nn.Module):
    """Multi-head attention with projections to an internal dim of embedding_dim / rate."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1,
                 dropout: float = 0.0, kv_in_dim: int | None = None) -> None:
        super().__init__()
        kv_in_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(f"internal dim {self.internal_dim} not divisible by {num_heads} heads")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        self.dropout_p = dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, nh, N, D/nh)."""
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        p = self.dropout_p if self.training else 0.0
        if p > 0 and q.device.type == "cpu":
            # training on CPU: the fused kernel's dropout draws Bernoulli numbers one by one
            # (a quarter of a video step); softmax, then the fast dropout on the probabilities
            probs = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
            out = dropout(probs, p) @ v
        else:
            out = attention(q, k, v, dropout_p=p)  # (B, nh, Nq, hd)
        return self.out_proj(out.transpose(1, 2).flatten(2))

    # Memory attention's cross-attention has one head of 256 over 64-wide memory tokens. Its
    # value projection is linear and each row of the attention weights sums to 1, so
    # P (v W_v^T + b_v) = (P v) W_v^T + b_v: attending to the 64-wide tokens and projecting
    # the result makes the P x V product (the largest matmul in a tracked frame after
    # Q x K^T) four times smaller. torch's fused CPU kernel needs values as wide as the
    # queries, hence ``blocked_attention``. CPU inference only: CUDA keeps its fused kernels,
    # and training keeps the path whose dropout is drawn on the attention weights.
    # Below this many scores per head (tiny at 1024 with one memory frame has 17 M) the
    # blocks' Python overhead eats the saving: sam2_demo's 256 queries over 7 memory frames
    # measured 4 % faster folded, over one memory frame 10 % slower.
    fold_min_scores = 1 << 24

    def _folds_values(self, n_queries: int, n_keys: int, device: torch.device) -> bool:
        """Whether to attend to the unprojected values (see above)."""
        return (device.type == "cpu" and not self.training
                and self.num_heads * self.v_proj.in_features < self.internal_dim
                and n_queries * n_keys >= self.fold_min_scores)

    def _keys_channels_first(self, k: torch.Tensor) -> torch.Tensor:
        """k (B, Nk, kv_in_dim) -> projected keys (B, nh, hd, Nk), channels first: the
        layout ``blocked_attention`` reads, made by the projection itself (W_k k^T)."""
        w = self.k_proj.weight
        k_t = torch.bmm(w.expand(k.shape[0], *w.shape), k.transpose(1, 2))  # (B, D, Nk)
        k_t += self.k_proj.bias.to(k_t.dtype)[:, None]
        return k_t.unflatten(1, (self.num_heads, -1))

    def _attend_unprojected_values(self, q: torch.Tensor, k_t: torch.Tensor,
                                   v: torch.Tensor) -> torch.Tensor:
        """q (B, nh, Nq, hd) projected heads, k_t (B, nh, hd, Nk) projected keys channels
        first (float32), v (B, Nk, kv_in_dim) unprojected -> (B, Nq, E)."""
        nh = self.num_heads
        if q.dtype == torch.bfloat16:  # as ``attention``: the attention itself in float32
            with torch.autocast("cpu", enabled=False):
                pv = blocked_attention(q.float(), k_t, v.float().unsqueeze(1))
            pv = pv.to(q.dtype)
        else:
            pv = blocked_attention(q, k_t, v.to(q.dtype).unsqueeze(1))  # (B, nh, Nq, kv_in)
        w_v = self.v_proj.weight.view(nh, -1, self.v_proj.in_features)  # (nh, hd, kv_in)
        out = pv @ w_v.transpose(1, 2).to(pv.dtype) + self.v_proj.bias.view(nh, 1, -1).to(pv.dtype)
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, Nq, E), k and v (B, Nk, kv_in_dim) -> (B, Nq, E)."""
        return self._attend(self._heads(self.q_proj(q)), self._heads(self.k_proj(k)),
                            self._heads(self.v_proj(v)))

    # The mask decoder's cross-attentions pair a few prompt tokens with thousands of image
    # tokens. Projecting the image side costs Nk*E*D multiply-adds per projection; folding
    # the projection into the few-token side instead costs heads*Nq*E*Nk, half as much for
    # SAM 2 (8 tokens x 8 heads vs a 128-dim projection). Same maths, float32 rounding only.
    def forward_few_queries(self, q: torch.Tensor, k: torch.Tensor,
                            v: torch.Tensor) -> torch.Tensor:
        """As :meth:`forward` for Nq << Nk (tokens attending to the image).

        scores = (q_h W_k,h) k^T (k's bias adds a per-row constant, which softmax ignores);
        output_h = (P_h v) W_v,h^T + b_v,h (rows of P sum to 1).
        """
        if self.training and self.dropout_p > 0:
            return self.forward(q, k, v)
        B, Nq, _ = q.shape
        nh = self.num_heads
        qh = self._heads(self.q_proj(q))  # (B, nh, Nq, hd)
        hd = qh.shape[-1]
        w_k = self.k_proj.weight.view(nh, hd, -1)  # (nh, hd, Ekv)
        qk = (qh * hd**-0.5) @ w_k  # (B, nh, Nq, Ekv)
        scores = qk.reshape(B, nh * Nq, -1) @ k.transpose(1, 2)  # (B, nh*Nq, Nk)
        pv = scores.softmax(dim=-1) @ v  # (B, nh*Nq, Ekv)
        w_v = self.v_proj.weight.view(nh, hd, -1)
        out = pv.view(B, nh, Nq, -1) @ w_v.transpose(1, 2) + self.v_proj.bias.view(nh, 1, hd)
        return self.out_proj(out.transpose(1, 2).reshape(B, Nq, nh * hd))

    def forward_few_keys(self, q: torch.Tensor, k: torch.Tensor,
                         v: torch.Tensor) -> torch.Tensor:
        """As :meth:`forward` for Nk << Nq (the image attending to the tokens).

        scores_h = q (W_q,h^T k_h^T) + b_q,h k_h^T; output = sum_h P_h (v_h W_out,h^T) + b_out.
        """
        if self.training and self.dropout_p > 0:
            return self.forward(q, k, v)
        B, Nq, E = q.shape
        nh = self.num_heads
        kh = self._heads(self.k_proj(k))  # (B, nh, Nk, hd)
        vh = self._heads(self.v_proj(v))
        Nk, hd = kh.shape[-2], kh.shape[-1]
        scale = hd**-0.5
        ks = kh * scale
        # scores laid out (B, nh*Nk, Nq) so that the softmax over Nk runs along a long axis
        a = (ks @ self.q_proj.weight.view(nh, hd, E)).reshape(B, nh * Nk, E)
        bias = (ks @ self.q_proj.bias.view(nh, hd, 1)).reshape(B, nh * Nk, 1)
        scores = torch.baddbmm(bias, a, q.transpose(1, 2))  # (B, nh*Nk, Nq)
        p = scores.view(B, nh, Nk, Nq).softmax(dim=2).view(B, nh * Nk, Nq)
        w_o = self.out_proj.weight.view(-1, nh, hd).permute(1, 2, 0)  # (nh, hd, E_out)
        vo = (vh @ w_o).reshape(B, nh * Nk, -1)  # (B, nh*Nk, E_out)
        return torch.baddbmm(self.out_proj.bias.view(1, 1, -1), p.transpose(1, 2), vo)


    # Block 0 of the mask decoder sees the image tokens before any prompt has touched them,
    # so its image-side projections can be computed once per image (the engine's click cache)
    # and passed in: the two methods below take them already split into heads.
    def forward_projected_kv(self, q: torch.Tensor, k_heads: torch.Tensor,
                             v_heads: torch.Tensor) -> torch.Tensor:
        """As :meth:`forward` with k and v already projected:
        q (B, Nq, E), k_heads and v_heads (B, nh, Nk, hd) -> (B, Nq, E)."""
        return self._attend(self._heads(self.q_proj(q)), k_heads, v_heads)

    def forward_projected_q(self, q_heads_t: torch.Tensor, k: torch.Tensor,
                            v: torch.Tensor) -> torch.Tensor:
        """As :meth:`forward_few_keys` with the many queries already projected:
        q_heads_t (B, nh, hd, Nq) (projected, split into heads, transposed), k and v
        (B, Nk, E) -> (B, Nq, E).

        Scores are laid out (heads, keys, Nq) so that the softmax over the few keys runs with
        Nq contiguous; the value and output projections are merged as in ``forward_few_keys``.
        """
        nh = self.num_heads
        kh = self._heads(self.k_proj(k))  # (B, nh, Nk, hd)
        vh = self._heads(self.v_proj(v))
        B, _, Nk, hd = kh.shape
        p = ((kh * hd**-0.5) @ q_heads_t).softmax(dim=2)  # (B, nh, Nk, Nq)
        w_o = self.out_proj.weight.view(-1, nh, hd).permute(1, 2, 0)  # (nh, hd, E_out)
        vo = (vh @ w_o).reshape(B, nh * Nk, -1)  # (B, nh*Nk, E_out)
        return torch.baddbmm(self.out_proj.bias.view(1, 1, -1),
                             p.reshape(B, nh * Nk, -1).transpose(1, 2), vo)


class RoPEAttention(Attention):
    """Attention with 2-D axial rotary encoding on q and the first keys.

    The query tokens must form a square grid (side sqrt(Nq)); with ``rope_k_repeat`` the
    spatial keys may cover several such grids (one per memory frame). The last
    ``num_k_exclude_rope`` keys (object-pointer tokens) are not rotated.
    """

    def __init__(self, embedding_dim: int, num_heads: int, *, rope_theta: float = 10000.0,
                 rope_k_repeat: bool = False, dropout: float = 0.0,
                 kv_in_dim: int | None = None) -> None:
        super().__init__(embedding_dim, num_heads, 1, dropout, kv_in_dim)
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat

    def _tables(self, nq: int, head_dim: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        side = int(round(nq**0.5))
        if side * side != nq:
            raise ValueError(f"RoPE attention needs a square query grid, got {nq} tokens")
        return axial_rope_tables(head_dim, side, self.rope_theta, device)

    def project_query(self, q: torch.Tensor) -> torch.Tensor:
        """q (B, Nq, E) -> (B, nh, Nq, hd): projected, split into heads and rotated, in the
        projection's dtype; ``forward(..., q_heads=...)`` takes it instead of ``q``."""
        qh = self._heads(self.q_proj(q))
        cos, sin = self._tables(qh.shape[-2], qh.shape[-1], qh.device)
        return apply_rope(qh, cos, sin).type_as(qh)

    def forward(self, q: torch.Tensor | None, k: torch.Tensor, v: torch.Tensor,
                num_k_exclude_rope: int = 0, *, q_heads: torch.Tensor | None = None
                ) -> torch.Tensor:
        """q (B, Nq, E), k and v (B, Nk, kv_in_dim) -> (B, Nq, E).

        ``q_heads``: ``project_query(q)`` computed beforehand (then ``q`` is None); the same
        operations in the same order, so the same result.
        """
        q = self.project_query(q) if q_heads is None else q_heads
        nq = q.shape[-2]
        cos, sin = self._tables(nq, q.shape[-1], q.device)
        n_rope = k.shape[-2] - num_k_exclude_rope
        if n_rope != nq and not (self.rope_k_repeat and n_rope % nq == 0):
            raise ValueError(f"{n_rope} rotated keys do not match {nq} queries")
        if self._folds_values(nq, k.shape[-2], k.device):
            k_t = apply_rope_channels_first(self._keys_channels_first(k), cos, sin, n_rope)
            return self._attend_unprojected_values(q, k_t, v)
        k = self._heads(self.k_proj(k))
        v = self._heads(self.v_proj(v))
        if num_k_exclude_rope:
            k = torch.cat([apply_rope(k[:, :, :n_rope], cos, sin).type_as(v),
                           k[:, :, n_rope:]], dim=2)
        else:
            k = apply_rope(k, cos, sin).type_as(v)
        return self._attend(q, k, v)


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token->image, MLP, image->token (post-norm each)."""

    def __init__(self, *, embedding_dim: int, num_heads: int, mlp_dim: int,
                 attention_downsample_rate: int, skip_first_layer_pe: bool) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads,
                                                   attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, 2, activation=nn.ReLU)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads,
                                                   attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
                key_pe: torch.Tensor, image_proj: ImageProjections | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, Nt, C), keys (B, hw, C) -> updated (queries, keys).

        ``image_proj``: the image-side projections of ``keys`` (see ``ImageProjections``),
        computed beforehand; only valid for these very keys.
        """
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q = queries + query_pe
        t2i, i2t = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        if image_proj is None:
            k = keys + key_pe
            att = t2i.forward_few_queries(q, k, keys)
        else:
            att = t2i.forward_projected_kv(q, image_proj.k, image_proj.v)
        queries = self.norm2(queries + att)
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        if image_proj is None:
            att = i2t.forward_few_keys(k, q, queries)
        else:
            att = i2t.forward_projected_q(image_proj.q_t, q, queries)
        keys = self.norm4(keys + att)
        return queries, keys

    def project_image(self, keys: torch.Tensor, key_pe: torch.Tensor) -> ImageProjections:
        """The image-side projections of ``keys`` (B, hw, C) with ``key_pe`` (1 or B, hw, C)."""
        t2i, i2t = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        k = keys + key_pe
        return ImageProjections(
            k=t2i._heads(t2i.k_proj(k)).contiguous(),
            v=t2i._heads(t2i.v_proj(keys)).contiguous(),
            q_t=i2t._heads(i2t.q_proj(k)).transpose(2, 3).contiguous())


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks and a final token->image attention."""

    def __init__(self, *, depth: int, embedding_dim: int, num_heads: int, mlp_dim: int,
                 attention_downsample_rate: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(embedding_dim=embedding_dim, num_heads=num_heads,
                                 mlp_dim=mlp_dim,
                                 attention_downsample_rate=attention_downsample_rate,
                                 skip_first_layer_pe=i == 0)
            for i in range(depth))
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads,
                                                   attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image_embedding: torch.Tensor, image_pe: torch.Tensor,
                point_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image (B, C, h, w), its PE (B or 1, C, h, w), tokens (B, Nt, C)
        -> tokens (B, Nt, C), image tokens (B, hw, C)."""
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        return self.run_tokens(point_embedding, keys, key_pe)

    def run_tokens(self, tokens: torch.Tensor, keys: torch.Tensor, key_pe: torch.Tensor,
                   image_proj: ImageProjections | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` on flattened image tokens: tokens (B, Nt, C), keys (B, hw, C),
        key_pe (1 or B, hw, C) -> (tokens, keys). ``image_proj``: block 0's
        ``project_image(keys, key_pe)``, when precomputed."""
        queries = tokens
        for i, layer in enumerate(self.layers):
            queries, keys = layer(queries, keys, tokens, key_pe,
                                  image_proj=image_proj if i == 0 else None)
        q = queries + tokens
        k = keys + key_pe
        queries = self.norm_final_attn(
            queries + self.final_attn_token_to_image.forward_few_queries(q, k, keys))
        return queries, keys
