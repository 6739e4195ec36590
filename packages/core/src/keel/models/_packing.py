"""Batch layout for an encoder pass: padded (``pad_batch``, which training uses too) or
packed without padding, several texts in one row kept apart by the attention mask.

A padded batch spends the encoder's linear layers (most of its compute) on padding
tokens: a batch of short queries padded to its longest text wastes a third or more.
Packing puts the batch's tokens end to end in one row, restarts the position ids at
each text, and gives attention a block-diagonal mask, so every token attends to its
own text only. The result is the padded batch's embedding (same weights, same
positions, same attended tokens; float rounding aside) for the tokens' cost alone.

Attention then costs ``tokens²`` per pack, so a pack holds at most ``max_tokens``
tokens (a text longer than that is a pack of its own), and packing loses to padding
when the texts are long and of similar length (a pack of twelve 41-token tweets spends
more on masked attention pairs than their padding would cost): ``forward_cost``
estimates both plans and the caller runs the cheaper. Only encoders whose position ids
are plain offsets from zero can be packed: BERT and its descendants (MiniLM, e5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: Tokens per pack. Measured on 2 cores (MiniLM-L6, Banking77 queries of ~15 tokens):
#: 256 to 512 were the fastest; 1,024 lets attention's ``tokens²`` cost show.
PACK_TOKENS = 512

#: ``config.model_type`` values whose position ids are absolute offsets from 0, so a
#: text keeps its positions when it starts mid-row (RoBERTa-style encoders offset them
#: by the padding index; MPNet derives relative buckets from them).
PACKABLE_MODEL_TYPES = frozenset({"bert"})


#: A forward call's fixed cost (Python dispatch, small kernels), in tokens' worth of
#: compute: a batch-1 pass of a 15-token query on fp32 MiniLM takes about twice its
#: share of a large batch's time (2 cores).
CALL_TOKENS = 16


def forward_cost(calls: Sequence[tuple[int, int]], hidden_size: int) -> float:
    """Relative compute of forward calls, each ``(rows, row_length)``.

    Per layer a token costs ``24·d²`` multiply-adds in the linear layers and a pair of
    tokens in one row ``4·d`` in attention, so a call costs ``rows·L·(1 + L/(6d))``
    token-equivalents, plus ``CALL_TOKENS``. A padded batch is ``(texts, longest)``; a
    pack is ``(1, its tokens)`` (its masked pairs cost as much as the attended ones).
    """
    per_pair = 1.0 / (6 * hidden_size)
    return sum(CALL_TOKENS + rows * length * (1.0 + per_pair * length) for rows, length in calls)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest sequence: ``(input_ids, attention_mask)`` int64 tensors."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def can_pack(model: Any) -> bool:
    """Whether ``model`` (a transformers encoder) accepts packed rows."""
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) in PACKABLE_MODEL_TYPES and getattr(
        config, "position_embedding_type", "absolute"
    ) in (None, "absolute")


def pack_groups(lengths: Sequence[int], max_tokens: int = PACK_TOKENS) -> list[list[int]]:
    """Positions, in order, cut into packs of at most ``max_tokens`` tokens in all."""
    packs: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i, length in enumerate(lengths):
        if current and total + length > max_tokens:
            packs.append(current)
            current, total = [], 0
        current.append(i)
        total += length
    if current:
        packs.append(current)
    return packs


def packed_mean_pool(
    model: Any,
    input_ids: Sequence[Sequence[int]],
    token_type_ids: Sequence[Sequence[int]] | None = None,
    *,
    device: str = "cpu",
) -> torch.Tensor:
    """Mean-pooled token vectors ``[len(input_ids), dim]`` of texts run as one packed row.

    ``input_ids`` are the texts' unpadded token ids (with their special tokens), all of
    them in one pack: cut a long batch with ``pack_groups`` first. Call under
    ``torch.inference_mode()``.
    """
    import torch

    lengths = torch.tensor([len(ids) for ids in input_ids], dtype=torch.long)
    if int(lengths.min()) < 1:
        raise ValueError("every packed text needs at least one token")
    flat = torch.tensor([t for ids in input_ids for t in ids], dtype=torch.long)
    types = (
        torch.tensor([t for ids in token_type_ids for t in ids], dtype=torch.long)
        if token_type_ids is not None
        else torch.zeros_like(flat)
    )
    segment = torch.repeat_interleave(torch.arange(len(input_ids)), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    positions = torch.arange(flat.numel()) - torch.repeat_interleave(starts, lengths)
    dtype = next(model.parameters()).dtype
    dtype = dtype if dtype.is_floating_point else torch.float32
    blocked = segment[:, None] != segment[None, :]
    mask = torch.zeros(blocked.shape, dtype=dtype).masked_fill_(blocked, torch.finfo(dtype).min)
    hidden = model(
        input_ids=flat[None].to(device),
        token_type_ids=types[None].to(device),
        position_ids=positions[None].to(device),
        attention_mask=mask[None, None].to(device),
    ).last_hidden_state[0]
    sums = torch.zeros(len(input_ids), hidden.shape[-1], dtype=hidden.dtype, device=device)
    sums.index_add_(0, segment.to(device), hidden)
    return sums / lengths.to(device=device, dtype=hidden.dtype)[:, None]
