"""Unit u06: models.

A decoder-only language model (GPT) is the blocks of unit u05 stacked
between a lookup table at the bottom and a linear map back to the
vocabulary at the top:

    x      = tok_emb(idx) + pos_emb(0 .. T-1)      (B, T, d_model); no pos_emb with RoPE
    x      = blocks[n_layer - 1](... blocks[0](x))  causal pre-norm DecoderBlocks
    logits = lm_head(norm_f(x))                     (B, T, vocab_size)
    loss   = cross_entropy(logits, targets)         the mean over all B*T positions

`targets` are the next tokens: targets[b, t] = idx[b, t + 1] of a longer
sequence. A target of -100 is skipped (torch's ignore_index, the value of
scratchllm.data.IGNORE_INDEX). The blocks are pre-norm, so nothing
normalises the residual stream on its way up: `norm_f` does, once, before
the head (the GPT-2 report added this final norm).

Weight tying (tie_weights=True): lm_head.weight *is* tok_emb.weight, one
Parameter used twice, (vocab_size, d_model). Row v scores token v on the
way out and represents it on the way in.

Parameters, counted by num_parameters() (every Parameter once, so a tied
matrix counts once; learned position embeddings count, RoPE has none):

    V*d                   tok_emb           (V = vocab_size, d = d_model)
  + block_size*d          pos_emb, learned positions only
  + n_layer * (4*d*d      attn: q, k, v, out projections, no bias
               + 2*n      norm1, norm2: n = 2*d for LayerNorm, d for RMSNorm
               + f)       ffn: 2*d*d_ff + d_ff + d for GELU, 3*d*d_ff for SwiGLU
  + n                     norm_f
  + V*d                   lm_head, only when not tied

GPT-2 initialisation (gpt2_init_): every weight matrix (the embeddings
included) is drawn from N(0, 0.02^2) and every bias is 0 (norm gains keep
their 1). The projections that write into the residual stream, each
block's attn.out_proj and ffn.down, are drawn with std 0.02 / sqrt(2 *
n_layer) instead: the stream is a sum of 2 * n_layer such contributions,
and this keeps its variance at initialisation from growing with depth.

The encoder-decoder (Seq2SeqTransformer) follows "Attention Is All You
Need": an encoder reads the source with full (not causal) self-attention;
a decoder reads the target so far with causal self-attention and looks at
the encoder's output through cross-attention. Its blocks are pre-norm,
like GPT's, where the paper's were post-norm.

state_dict names, fixed so that any correct implementation loads any
other's checkpoint (u03, u04 and u05 fix the names inside each part):

    GPT
      tok_emb.weight                        (V, d)
      pos_emb.weight                        (block_size, d), learned positions only
      blocks.{i}.norm1.weight [.bias]       LayerNorm has a bias, RMSNorm not
      blocks.{i}.attn.{q,k,v,out}_proj.weight
      blocks.{i}.norm2.weight [.bias]
      blocks.{i}.ffn.up.weight, .up.bias, .down.weight, .down.bias          (gelu)
      blocks.{i}.ffn.gate.weight, .up.weight, .down.weight                  (swiglu)
      norm_f.weight [.bias]
      lm_head.weight                        (V, d); listed even when tied
    Seq2SeqTransformer
      tok_emb.weight                        shared by source, target and lm_head
      encoder.{i}.norm1, .attn, .norm2, .ffn        (EncoderBlock)
      enc_norm.weight, enc_norm.bias
      decoder.{i}.norm1, .self_attn, .norm2, .cross_attn, .norm3, .ffn   (CrossDecoderBlock)
      dec_norm.weight, dec_norm.bias
      lm_head.weight                        tied to tok_emb.weight
    RoPE and the sinusoids are recomputed, never stored.

Read exercises/units/u06_models/README.md first. Check your work with
`llmfs check u06` or `pytest exercises/tests -m u06`. Units u03 (embeddings),
u04 (attention) and u05 (layers) must work first: this file builds on them.
Not allowed here: torch's ready-made Transformer classes (see course.toml).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .embeddings import Embedding, LearnedPositionalEmbedding, RotaryEmbedding, sinusoidal_positions
from .layers import CrossDecoderBlock, DecoderBlock, EncoderBlock, make_norm

# Parameters whose output is added straight into the residual stream.
RESIDUAL_PROJECTIONS = ("out_proj.weight", "ffn.down.weight")


@dataclass
class GPTConfig:
    """The shape of a GPT. The defaults are a small model for a laptop."""

    vocab_size: int = 256
    block_size: int = 128       # the longest sequence the model reads
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    d_ff: int = 512             # hidden width of each feed-forward
    dropout: float = 0.0
    positions: str = "learned"  # "learned" (GPT-2) | "rope" (LLaMA)
    norm: str = "layer"         # "layer" (GPT-2) | "rms" (LLaMA)
    ffn: str = "gelu"           # "gelu" (GPT-2) | "swiglu" (LLaMA)
    tie_weights: bool = True


def gpt2_init_(model: nn.Module, n_residual: int, std: float = 0.02) -> None:
    """GPT-2 initialisation of `model`'s parameters, in place.

    Matrices (dim >= 2) ~ N(0, std^2), except the residual projections (names
    ending in RESIDUAL_PROJECTIONS) ~ N(0, (std / sqrt(n_residual))^2).
    Biases are set to 0; other vectors (norm gains) are left as they are.
    """
    # TODO(u06): Loop over model.named_parameters():
    #   - a matrix (p.dim() >= 2): nn.init.normal_ with std, or with
    #     std / math.sqrt(n_residual) if name.endswith(RESIDUAL_PROJECTIONS);
    #   - a vector whose name ends in "bias": nn.init.zeros_;
    #   - any other vector (a norm's weight): leave it alone.
    raise NotImplementedError("u06: gpt2_init_")


class GPT(nn.Module):
    """A decoder-only Transformer language model (GPT-2, or LLaMA-style by config).

    Submodules: tok_emb (Embedding), pos_emb (LearnedPositionalEmbedding, or
    None with RoPE), drop (nn.Dropout), blocks (nn.ModuleList of
    DecoderBlock, all sharing one RotaryEmbedding with RoPE), norm_f,
    lm_head (nn.Linear(d_model, vocab_size, bias=False)).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        # TODO(u06): Keep the config as self.config, then create, in this order:
        #   1. tok_emb = Embedding(vocab_size, d_model)
        #   2. learned positions: pos_emb = LearnedPositionalEmbedding(block_size, d_model);
        #      rope: pos_emb = None and one RotaryEmbedding(d_model // n_head, block_size)
        #      for all blocks to share (any other `positions` is a ValueError)
        #   3. drop = nn.Dropout(dropout)
        #   4. blocks = nn.ModuleList of n_layer DecoderBlock(d_model, n_head, d_ff,
        #      dropout, norm, ffn, rope)
        #   5. norm_f = make_norm(norm, d_model)
        #   6. lm_head = nn.Linear(d_model, vocab_size, bias=False)
        # If tie_weights, make lm_head.weight the very same Parameter as
        # tok_emb.weight (assign it; do not copy it). Finally gpt2_init_(self, 2 * n_layer).
        raise NotImplementedError("u06: GPT.__init__")

    def forward(self, idx: Tensor,  # (B, T) int64, T <= block_size
                targets: Tensor | None = None,  # (B, T) int64; -100 = skip
                ) -> tuple[Tensor, Tensor | None]:  # logits (B, T, vocab_size), loss () or None
        # TODO(u06): The forward pass in the module docstring:
        #   1. T > block_size is a ValueError.
        #   2. x = tok_emb(idx), plus pos_emb(torch.arange(T)) with learned positions
        #      (RoPE happens inside the blocks); then drop.
        #   3. every block in turn; then norm_f; then lm_head: the logits.
        #   4. loss: None without targets, else F.cross_entropy over all B*T
        #      positions (flatten logits to (B*T, vocab_size), targets to (B*T,)).
        raise NotImplementedError("u06: GPT.forward")

    def num_parameters(self) -> int:
        """How many numbers training adjusts: each Parameter once, tied ones included once."""
        # TODO(u06): Sum numel() over self.parameters(), which lists a tied
        # Parameter once. (state_dict() would list it twice.)
        raise NotImplementedError("u06: GPT.num_parameters")


class Seq2SeqTransformer(nn.Module):
    """An encoder-decoder Transformer ("Attention Is All You Need"), pre-norm.

    Source and target share one vocabulary and one embedding table, which is
    also the output layer (lm_head.weight is tok_emb.weight), as in the
    paper's section 3.4. Token vectors are multiplied by sqrt(d_model) and
    the sinusoidal positions of u03 are added. Sequences of any length work:
    there is no position table. Initialisation: gpt2_init_, with n_residual
    = 2 * n_encoder_layers for the encoder and 3 * n_decoder_layers for the
    decoder (its blocks add three times to the stream).

    Submodules: tok_emb, drop, encoder (nn.ModuleList of EncoderBlock),
    enc_norm (LayerNorm), decoder (nn.ModuleList of CrossDecoderBlock),
    dec_norm (LayerNorm), lm_head (nn.Linear(d_model, vocab_size, bias=False)).
    """

    def __init__(self, vocab_size: int, d_model: int = 128, n_head: int = 4,
                 n_encoder_layers: int = 2, n_decoder_layers: int = 2, d_ff: int = 512,
                 dropout: float = 0.0):
        super().__init__()
        # TODO(u06): Keep d_model as self.d_model, then create, in this order:
        #   tok_emb = Embedding(vocab_size, d_model); drop = nn.Dropout(dropout);
        #   encoder = nn.ModuleList of n_encoder_layers EncoderBlock(d_model, n_head, d_ff, dropout);
        #   enc_norm = make_norm("layer", d_model);
        #   decoder = nn.ModuleList of n_decoder_layers CrossDecoderBlock(d_model, n_head, d_ff, dropout);
        #   dec_norm = make_norm("layer", d_model);
        #   lm_head = nn.Linear(d_model, vocab_size, bias=False), its weight tied to tok_emb.weight.
        # Initialise: tok_emb.weight ~ N(0, 0.02^2); gpt2_init_(self.encoder,
        # 2 * n_encoder_layers); gpt2_init_(self.decoder, 3 * n_decoder_layers).
        raise NotImplementedError("u06: Seq2SeqTransformer.__init__")

    def embed(self, ids: Tensor,  # (B, T) int64
              ) -> Tensor:  # (B, T, d_model)
        """tok_emb(ids) * sqrt(d_model) + sinusoidal positions 0 .. T-1, then dropout."""
        # TODO(u06): sinusoidal_positions(T, d_model), moved to tok_emb.weight's
        # dtype and device (.to(self.tok_emb.weight)), added to
        # tok_emb(ids) * math.sqrt(d_model); then drop.
        raise NotImplementedError("u06: Seq2SeqTransformer.embed")

    def encode(self, src: Tensor,  # (B, S) int64
               ) -> Tensor:  # (B, S, d_model)
        """The encoder's output ("memory"): every source token sees every other."""
        # TODO(u06): embed, every encoder block (no mask: no token is hidden), enc_norm.
        raise NotImplementedError("u06: Seq2SeqTransformer.encode")

    def decode(self, tgt: Tensor,  # (B, T) int64
               memory: Tensor,  # (B, S, d_model), from encode
               ) -> Tensor:  # (B, T, vocab_size)
        """Logits for the token after each target position, given the source's memory."""
        # TODO(u06): embed, every decoder block with the memory, dec_norm, lm_head.
        raise NotImplementedError("u06: Seq2SeqTransformer.decode")

    def forward(self, src: Tensor,  # (B, S) int64
                tgt: Tensor,  # (B, T) int64, the target so far (starting with a BOS token)
                ) -> Tensor:  # (B, T, vocab_size)
        # TODO(u06): decode the target against the encoded source.
        raise NotImplementedError("u06: Seq2SeqTransformer.forward")
