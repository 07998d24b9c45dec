"""Decoding: greedy search over ``decoder.step()``, returning the attention weights too."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seq2seq.data.batching import bucket_batches, collate
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.tokenizer import BOS_ID, EOS_ID, Tokenizer


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS/EOS
    weights: torch.Tensor  # (len(tokens), source length incl. EOS): where each output token looked
    score: float  # sum of the tokens' log-probabilities (EOS included)


@torch.no_grad()
def greedy_search(
    model: Seq2Seq,
    src: torch.Tensor,  # (B, S)
    src_mask: torch.Tensor,  # (B, S)
    max_len_a: float = 1.5,
    max_len_b: int = 10,
) -> list[Hypothesis]:
    """The most probable next token at every step until EOS or ``a * source length + b`` tokens."""
    memory = model.encode(src, src_mask)
    state = model.decoder.init_state(memory)
    batch_size = src.size(0)
    limits = (src_mask.sum(dim=1).float() * max_len_a + max_len_b).long()  # (B,)
    prev = torch.full((batch_size,), BOS_ID, dtype=torch.long, device=src.device)  # (B,)
    alive = torch.ones(batch_size, dtype=torch.bool, device=src.device)  # (B,)
    tokens, weights, scores = [], [], torch.zeros(batch_size, device=src.device)
    for t in range(int(limits.max())):
        logits, state, w = model.decoder.step(prev, state, memory)  # (B, V), (B, S)
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B, V)
        prev = log_probs.argmax(dim=-1)  # (B,)
        scores += torch.where(alive, log_probs.gather(1, prev.unsqueeze(1)).squeeze(1), 0.0)
        prev = torch.where(alive, prev, EOS_ID)
        tokens.append(prev)
        weights.append(w)
        alive &= (prev != EOS_ID) & (t + 1 < limits)
        if not alive.any():
            break
    tokens_t = torch.stack(tokens, dim=1).cpu()  # (B, T)
    weights_t = torch.stack(weights, dim=1).float().cpu()  # (B, T, S)
    lengths = src_mask.sum(dim=1).tolist()
    out = []
    for b in range(batch_size):
        seq = tokens_t[b].tolist()
        n = seq.index(EOS_ID) if EOS_ID in seq else len(seq)
        out.append(Hypothesis(seq[:n], weights_t[b, :n, : lengths[b]], float(scores[b])))
    return out


@dataclass
class Translation:
    source: str
    text: str  # detokenised output
    src_pieces: list[str]  # source tokens (EOS as "</s>")
    tgt_pieces: list[str]  # output tokens
    weights: torch.Tensor  # (len(tgt_pieces), len(src_pieces))
    score: float


def translate_sentences(
    model: Seq2Seq,
    src_tokenizer: Tokenizer,
    tgt_tokenizer: Tokenizer,
    sentences: list[str],
    batch_size: int = 64,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
    device: torch.device | str = "cpu",
) -> list[Translation]:
    """Translate many sentences: batched by length, returned in input order."""
    model.eval()
    ids = src_tokenizer.encode_batch(sentences)
    results: list[Translation | None] = [None] * len(sentences)
    for index in bucket_batches([len(s) for s in ids], batch_size):
        batch = collate([ids[i] for i in index]).to(device)
        for i, hyp in zip(index, greedy_search(model, batch.src, batch.src_mask, max_len_a, max_len_b), strict=True):
            results[i] = Translation(
                source=sentences[i],
                text=tgt_tokenizer.decode(hyp.tokens),
                src_pieces=src_tokenizer.id_to_piece(ids[i]) + ["</s>"],
                tgt_pieces=tgt_tokenizer.id_to_piece(hyp.tokens),
                weights=hyp.weights,
                score=hyp.score,
            )
    return results  # type: ignore[return-value]
