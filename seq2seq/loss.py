"""The training loss: token cross-entropy under teacher forcing, summed over a batch, padding
ignored; with guided alignment, plus a weighted cross-entropy of the attention against gold links."""

from __future__ import annotations

import torch
from torch import nn

from seq2seq.constants import PAD_ID
from seq2seq.data.batching import Batch, bucket_batches, collate
from seq2seq.models.seq2seq import Seq2Seq


def sequence_loss(logits: torch.Tensor, tgt_out: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Summed token cross-entropy, padding ignored. ``logits (B, T, V)``, ``tgt_out (B, T)``
    (or ``(N, V)`` and ``(N,)``)."""
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),  # (B * T, V)
        tgt_out.reshape(-1),  # (B * T,)
        ignore_index=PAD_ID,
        reduction="sum",
        label_smoothing=label_smoothing,
    )


def alignment_loss(weights: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of the attention ``weights (B, T, S)`` against the ``gold (B, T, S)``
    distributions (:func:`seq2seq.data.links.gold_weights`): ``-sum gold * log(weights)``, so a
    target piece without gold links (an all-zero row) adds nothing. Weights are clamped at 1e-9
    first: a sparse normalizer's exact zeros on a gold link cost log(1e-9), not infinity."""
    return -(gold * torch.log(weights.float().clamp(min=1e-9))).sum()


def batch_loss(model: Seq2Seq, batch: Batch, label_smoothing: float = 0.0, guided: float = 0.0) -> torch.Tensor:
    """The batch's summed loss under teacher forcing (a scalar). The output layer (the biggest
    matrix) runs on the real target positions only, not on padding.

    1. encode ``batch.src (B, S)`` into the decoder's memory;
    2. run the decoder over ``batch.tgt_in (B, T)`` (BOS y_1 .. y_n) up to its output layer:
       features ``(B, T, F)`` and the attention weights ``(B, T, S)``;
    3. keep the N real positions of ``batch.tgt_out (B, T)`` (y_1 .. y_n EOS): features ``(N, F)``;
    4. logits ``(N, V)`` and their summed cross-entropy against the N target ids;
    5. with ``guided`` > 0 and ``batch.gold``: plus ``guided`` times :func:`alignment_loss`
       (OpenNMT-py's and Marian's guided alignment), on the weights the model shows.
    """
    features, weights = model.decoder.features(batch.tgt_in, model.encode(batch.src, batch.src_mask))  # (B, T, F)
    real = batch.tgt_out != PAD_ID  # (B, T)
    logits = model.decoder.logits(features[real])  # (N, V)
    loss = sequence_loss(logits, batch.tgt_out[real], label_smoothing)
    if guided > 0 and batch.gold is not None:
        loss = loss + guided * alignment_loss(weights, batch.gold)
    return loss


@torch.no_grad()
def mean_loss(
    model: Seq2Seq, src_ids: list[list[int]], tgt_ids: list[list[int]], batch_size: int, device: torch.device
) -> float:
    """The loss per target token (EOS included) of a whole corpus of ids, in eval mode, no label smoothing."""
    model.eval()
    loss, n = 0.0, 0
    for index in bucket_batches([len(s) for s in src_ids], batch_size):
        batch = collate([src_ids[i] for i in index], [tgt_ids[i] for i in index]).to(device)
        loss += float(batch_loss(model, batch))
        n += batch.n_tgt_tokens
    return loss / max(n, 1)


class LossOf(nn.Module):
    """The summed training loss of a batch as a module's forward, for DistributedDataParallel
    (which exchanges gradients when its module's forward and backward run)."""

    def __init__(self, model: Seq2Seq, label_smoothing: float, guided: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.label_smoothing = label_smoothing
        self.guided = guided

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor,
        tgt_in: torch.Tensor,
        tgt_out: torch.Tensor,
        gold: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch = Batch(src, src_mask, tgt_in, tgt_out, gold)
        return batch_loss(self.model, batch, self.label_smoothing, self.guided)
