"""Mean pooling: the one way Keel turns token vectors into a sentence embedding."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors where ``attention_mask`` is 1 (sentence-transformers pooling).

    Training, the torch backend, distillation and the ONNX export all pool with this
    function, so an exported or compressed model computes the embedding it was trained on.

    Args:
        hidden: token vectors ``[batch, tokens, dim]``.
        attention_mask: ``[batch, tokens]``, 1 for real tokens, 0 for padding.

    Returns:
        ``[batch, dim]`` in the dtype of ``hidden``.
    """
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
