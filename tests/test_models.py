"""Model behaviour: shapes, independence from batch-mates and padding, overfitting a tiny batch."""

from __future__ import annotations

import pytest
import torch

from seq2seq.config import (
    AttentionConfig,
    ModelConfig,
    SearchConfig,
    SelfAttentionConfig,
    check_model,
    describe_model,
)
from seq2seq.data.batching import collate
from seq2seq.errors import ConfigError
from seq2seq.models.rnn_decoder import FixedContextDecoder, LuongDecoder, SutskeverDecoder
from seq2seq.models.seq2seq import Seq2Seq, build_model
from seq2seq.search import greedy_search

VOCAB = 12
SCORES = ["additive", "dot", "scaled_dot", "general", "cosine"]
# (decoder, score, other ModelConfig settings): every score under both placements, both
# fixed-context decoders, LSTMs and 2 layers, a unidirectional encoder, every bridge, and the
# self-attention encoder under every decoder; Luong without input feeding; the Transformer decoder
# after both encoders, tied, pre- and post-norm.
VARIANTS = [
    *[("bahdanau", score, {}) for score in SCORES],
    *[("luong", score, {}) for score in SCORES],
    ("cho", "additive", {}),
    ("sutskever", "additive", {}),
    ("bahdanau", "additive", {"rnn": "lstm", "encoder_layers": 2, "decoder_layers": 2}),
    ("luong", "general", {"rnn": "lstm", "encoder_layers": 2, "decoder_layers": 2}),
    ("cho", "additive", {"rnn": "lstm", "decoder_layers": 2, "bridge": "copy"}),
    ("sutskever", "additive", {"rnn": "lstm", "bidirectional": False}),
    ("luong", "general", {"bidirectional": False, "bridge": "zero"}),
    ("luong", "general", {"input_feeding": False}),
    ("luong", "general", {"tie_embeddings": True}),
    ("luong", "additive", {"rnn": "lstm", "bridge": "copy", "input_feeding": False, "param_init": 0.1}),
    ("bahdanau", "additive", {"encoder": "self_attention", "encoder_layers": 2}),
    ("luong", "dot", {"encoder": "self_attention", "self_attention": SelfAttentionConfig(positions="learned")}),
    ("cho", "additive", {"encoder": "self_attention"}),
    ("sutskever", "additive", {"encoder": "self_attention", "rnn": "lstm"}),
    ("transformer", "additive", {"encoder": "self_attention", "encoder_layers": 2, "decoder_layers": 2}),
    ("transformer", "additive", {"decoder_layers": 2, "tie_embeddings": True, "alignment_layer": 2}),
    (
        "transformer",
        "additive",
        {"encoder": "self_attention", "self_attention": SelfAttentionConfig(norm="post", positions="learned")},
    ),
]
IDS = [
    f"{d}-{s}-" + ("-".join(f"{k}={v}" if k != "self_attention" else "post-norm" for k, v in o.items()) or "default")
    for d, s, o in VARIANTS
]


def tiny_model(decoder: str, score: str = "additive", dropout: float = 0.0, **other: object) -> Seq2Seq:
    cfg = ModelConfig(
        decoder=decoder,
        embed_size=8,
        hidden_size=16,
        dropout=dropout,
        attention=AttentionConfig(score=score),
        **other,  # type: ignore[arg-type]
    )
    check_model(cfg)  # as the commands do: build_model trusts a checked config
    return build_model(cfg, VOCAB, VOCAB).eval()


SRC = [[4, 5, 6, 7], [8, 9], [10, 11, 4]]
TGT = [[5, 6], [7, 8, 9], [10]]


@pytest.mark.parametrize(("decoder", "score", "other"), VARIANTS, ids=IDS)
def test_shapes(decoder: str, score: str, other: dict) -> None:
    batch = collate(SRC, TGT)
    logits, weights = tiny_model(decoder, score, **other)(batch.src, batch.src_mask, batch.tgt_in)
    assert logits.shape == (3, 4, VOCAB)  # T = longest target + EOS
    assert weights.shape == (3, 4, 5)  # S = longest source + EOS
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4))
    assert torch.all(weights[1, :, 3:] == 0)  # sentence 1 has 2 words + EOS


@pytest.mark.parametrize(("decoder", "score", "other"), VARIANTS, ids=IDS)
def test_output_does_not_depend_on_batch_mates_or_padding(decoder: str, score: str, other: dict) -> None:
    model = tiny_model(decoder, score, **other)
    alone = collate(SRC[1:2], TGT[1:2])
    together = collate(SRC, TGT)
    with torch.no_grad():
        logits_alone, w_alone = model(alone.src, alone.src_mask, alone.tgt_in)
        logits_all, w_all = model(together.src, together.src_mask, together.tgt_in)
    assert torch.allclose(logits_alone[0], logits_all[1, : logits_alone.size(1)], atol=1e-5)
    assert torch.allclose(w_alone[0], w_all[1, : w_alone.size(1), : w_alone.size(2)], atol=1e-6)


@pytest.mark.parametrize(("decoder", "score", "other"), VARIANTS, ids=IDS)
def test_translation_does_not_depend_on_batch_mates(decoder: str, score: str, other: dict) -> None:
    model = tiny_model(decoder, score, **other)
    alone = collate(SRC[1:2])
    together = collate(SRC)
    h_alone = greedy_search(model, alone.src, alone.src_mask, SearchConfig())[0]
    h_all = greedy_search(model, together.src, together.src_mask, SearchConfig())[1]
    assert h_alone.tokens == h_all.tokens
    assert torch.allclose(h_alone.weights, h_all.weights, atol=1e-6)


@pytest.mark.parametrize(("decoder", "score", "other"), VARIANTS, ids=IDS)
def test_forward_equals_looping_step(decoder: str, score: str, other: dict) -> None:
    model = tiny_model(decoder, score, **other)
    batch = collate(SRC, TGT)
    with torch.no_grad():
        logits, weights = model(batch.src, batch.src_mask, batch.tgt_in)
        memory = model.encode(batch.src, batch.src_mask)
        state = model.decoder.init_state(memory)
        for t in range(batch.tgt_in.size(1)):
            step_logits, state, step_weights = model.decoder.step(batch.tgt_in[:, t], state, memory)
            assert torch.allclose(step_logits, logits[:, t], atol=1e-5)
            assert torch.allclose(step_weights, weights[:, t], atol=1e-6)


@pytest.mark.parametrize("decoder", ["cho", "sutskever"])
def test_fixed_context_weights_are_uniform_over_the_source(decoder: str) -> None:
    model = tiny_model(decoder)
    assert isinstance(model.decoder, FixedContextDecoder)
    batch = collate(SRC, TGT)
    _, weights = model(batch.src, batch.src_mask, batch.tgt_in)
    assert torch.allclose(weights[1, :, :3], torch.full((4, 3), 1 / 3))


def test_sutskever_reads_the_source_only_through_the_first_state() -> None:
    model = tiny_model("sutskever")
    assert isinstance(model.decoder, SutskeverDecoder)
    batch = collate(SRC, TGT)
    memory = model.encode(batch.src, batch.src_mask)
    state = model.decoder.init_state(memory)
    other = model.encode(batch.src.flip(0), batch.src_mask.flip(0))  # another source, same first state
    with torch.no_grad():
        a, _, _ = model.decoder.step(batch.tgt_in[:, 0], state, memory)
        b, _, _ = model.decoder.step(batch.tgt_in[:, 0], state, other)
    assert torch.equal(a, b)


def test_luong_feeds_the_attentional_state_to_the_next_step() -> None:
    model = tiny_model("luong", "general")
    assert isinstance(model.decoder, LuongDecoder)
    batch = collate(SRC, TGT)
    memory = model.encode(batch.src, batch.src_mask)
    state = model.decoder.init_state(memory)
    assert state.feed is not None and torch.equal(state.feed, torch.zeros(3, 1, 16))  # ĥ_0 = 0
    with torch.no_grad():
        _, after, _ = model.decoder.step(batch.tgt_in[:, 0], state, memory)
        context, _ = model.decoder.attention(after.hidden[-1].unsqueeze(1), memory.keys, memory.values, memory.mask)
        expected = torch.tanh(model.decoder.combine(torch.cat([context, after.hidden[-1].unsqueeze(1)], dim=-1)))
    assert after.feed is not None and torch.allclose(after.feed, expected, atol=1e-6)


@pytest.mark.parametrize("bridge", ["linear", "copy", "zero"])
def test_bridge_sets_the_first_decoder_state(bridge: str) -> None:
    model = tiny_model("bahdanau", bridge=bridge)
    batch = collate(SRC, TGT)
    memory = model.encode(batch.src, batch.src_mask)
    hidden = model.decoder.init_state(memory).hidden  # (1, B, H)
    if bridge == "copy":
        assert torch.equal(hidden[0], memory.context)
    elif bridge == "zero":
        assert torch.equal(hidden, torch.zeros(1, 3, 16))
    else:
        assert torch.allclose(hidden[0], torch.tanh(model.decoder.bridge(memory.context)))


@pytest.mark.parametrize(("decoder", "score", "other"), VARIANTS, ids=IDS)
def test_every_variant_overfits_a_tiny_batch(decoder: str, score: str, other: dict) -> None:
    torch.manual_seed(0)
    model = tiny_model(decoder, score, **other)
    assert overfit(model) < 0.05
    batch = collate(SRC, TGT)
    hyps = greedy_search(model, batch.src, batch.src_mask, SearchConfig())
    assert [h.tokens for h in hyps] == TGT


def overfit(model: Seq2Seq, steps: int = 150) -> float:
    """Train ``model`` on the tiny batch (SRC -> TGT) with Adam; the last loss, the model left in eval mode."""
    model.train()
    batch = collate(SRC, TGT)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        logits, _ = model(batch.src, batch.src_mask, batch.tgt_in)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), batch.tgt_out.reshape(-1), ignore_index=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return loss.item()


def test_attention_keys_are_projected_once_per_batch() -> None:
    model = tiny_model("bahdanau", "additive")
    calls = []
    model.decoder.attention.score.key_proj.register_forward_hook(lambda *_: calls.append(1))
    batch = collate(SRC, TGT)
    model(batch.src, batch.src_mask, batch.tgt_in)
    assert len(calls) == 1


def test_unknown_decoder_is_rejected() -> None:
    with pytest.raises(ConfigError, match="bahdanau, luong, transformer, cho, sutskever"):
        check_model(ModelConfig(decoder="lstm"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rnn": "rnn_tanh"}, "model.rnn='rnn_tanh' is not valid: choose one of gru, lstm"),
        ({"encoder": "cnn"}, "choose one of rnn, self_attention"),
        ({"bridge": "mean"}, "choose one of linear, copy, zero"),
        ({"decoder": "sutskever", "bridge": "zero"}, "leaves it blind"),
        ({"encoder": "self_attention", "self_attention": SelfAttentionConfig(heads=5)}, "not divisible"),
        (
            {"encoder": "self_attention", "self_attention": SelfAttentionConfig(positions="rotary")},
            "sinusoidal, learned",
        ),
        ({"encoder": "self_attention", "self_attention": SelfAttentionConfig(heads=0)}, "heads=0 is too small"),
        ({"decoder_layers": 0}, "model.decoder_layers=0 is too small: at least 1"),
        ({"dropout": 1.0}, r"model.dropout=1.0 must lie in \[0, 1\)"),
        ({"bidirectional": False, "bridge": "copy", "hidden_size": 16}, None),  # builds: C is 16 wide
        ({"bridge": "copy", "hidden_size": 17}, "model.bridge=copy needs the summary C"),
    ],
)
def test_bad_model_settings_name_the_valid_ones(settings: dict, message: str | None) -> None:
    if message is None:
        check_model(ModelConfig(**settings))
        build_model(ModelConfig(**settings), VOCAB, VOCAB)  # type: ignore[arg-type]
        return
    with pytest.raises(ConfigError, match=message):
        check_model(ModelConfig(**settings))


def test_lstm_starts_its_cell_from_the_bridge_and_describes_itself() -> None:
    model = tiny_model("luong", "general", rnn="lstm", decoder_layers=2)
    assert isinstance(model.encoder.rnn, torch.nn.LSTM) and isinstance(model.decoder.rnn, torch.nn.LSTM)
    batch = collate(SRC, TGT)
    state = model.decoder.init_state(model.encode(batch.src, batch.src_mask))
    assert state.cell is not None and state.hidden.shape == state.cell.shape == (2, 3, 16)
    assert torch.equal(state.cell, state.hidden)  # c_0 = h_0, as JoeyNMT does
    cfg = ModelConfig(decoder="luong", rnn="lstm", decoder_layers=2, attention=AttentionConfig(score="general"))
    assert describe_model(cfg) == "luong/general decoder (2-layer lstm), 1-layer bi-lstm encoder"
    cfg.input_feeding = False
    assert describe_model(cfg) == "luong/general decoder (2-layer lstm, no input feeding), 1-layer bi-lstm encoder"


def test_luong_without_input_feeding_reads_only_the_previous_word() -> None:
    model = tiny_model("luong", "general", input_feeding=False)
    assert model.decoder.rnn.input_size == 8  # y_{i-1} alone (with feeding: 8 + 16)
    batch = collate(SRC, TGT)
    assert model.decoder.init_state(model.encode(batch.src, batch.src_mask)).feed is None


def test_self_attention_encoder_refuses_a_source_beyond_its_positions() -> None:
    model = tiny_model("bahdanau", encoder="self_attention", self_attention=SelfAttentionConfig(max_positions=4))
    batch = collate(SRC)  # the longest source has 4 words + EOS
    with pytest.raises(ConfigError, match="longer than model.self_attention.max_positions=4"):
        model.encode(batch.src, batch.src_mask)


def test_tied_embeddings_share_one_matrix() -> None:
    model = tiny_model("bahdanau", tie_embeddings=True)
    assert model.decoder.generator.weight is model.decoder.embedding.weight
    untied = tiny_model("bahdanau")
    assert model.num_parameters == untied.num_parameters - VOCAB * 8
    with pytest.raises(ConfigError, match="embed_size == model.hidden_size"):
        tiny_model("sutskever", tie_embeddings=True)
    # Luong's output layer reads ĥ_i (16 wide): tied, it goes through a 16 -> 8 projection first
    luong, luong_untied = tiny_model("luong", "general", tie_embeddings=True), tiny_model("luong", "general")
    assert luong.decoder.generator.weight is luong.decoder.embedding.weight
    assert luong.decoder.readout.weight.shape == (8, 16)
    assert luong.num_parameters == luong_untied.num_parameters - VOCAB * 16 + 16 * 8
    torch.manual_seed(0)
    cfg = ModelConfig(embed_size=256, hidden_size=64, tie_embeddings=True)
    model = build_model(cfg, 8000, 8000)
    batch = collate(SRC, TGT)
    with torch.no_grad():
        logits, _ = model(batch.src, batch.src_mask, batch.tgt_in)
    assert logits.std() < 1.0  # a start near uniform, not the N(0, 1) embeddings' logits of std ~sqrt(256)


def test_param_init_draws_weights_uniformly_and_keeps_padding_and_norms() -> None:
    from torch import nn

    from seq2seq.tokenizer import PAD_ID

    torch.manual_seed(0)
    model = tiny_model("luong", "general", rnn="lstm", param_init=0.05)
    embeddings = [model.encoder.embedding, model.decoder.embedding]
    for module in [*embeddings, model.encoder.rnn, model.decoder.rnn, model.decoder.combine, model.decoder.generator]:
        for param in module.parameters():
            assert param.abs().max() <= 0.05
            assert param.std() > 0.02  # spread over the range (U(-a, a) has std a / sqrt(3)), not zeroed
    for embedding in embeddings:
        assert embedding.weight[PAD_ID].abs().sum() == 0
    torch.manual_seed(0)
    default = tiny_model("luong", "general", rnn="lstm")
    assert default.encoder.embedding.weight.std() > 0.5  # PyTorch's N(0, 1) when param_init=0
    tied = tiny_model("bahdanau", tie_embeddings=True, param_init=0.1)  # the output layer draws the shared matrix last
    assert tied.decoder.embedding.weight[PAD_ID].abs().sum() == 0
    attention = tiny_model("bahdanau", encoder="self_attention", param_init=0.1)
    norms = [m for m in attention.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
    assert attention.encoder.embedding.weight.abs().max() > 0.1  # its own N(0, 1/size) start, kept
    with pytest.raises(ConfigError, match="input_feeding=false applies to model.decoder=luong only"):
        tiny_model("bahdanau", input_feeding=False)
    with pytest.raises(ConfigError, match="model.param_init=-0.1"):
        tiny_model("bahdanau", param_init=-0.1)


@pytest.mark.parametrize("decoder", ["luong", "cho"])
def test_loss_on_real_positions_equals_the_padded_loss(decoder: str) -> None:
    from seq2seq.loss import batch_loss, sequence_loss

    model = tiny_model(decoder, "general")
    batch = collate(SRC, TGT)
    logits, _ = model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, vocab), padding included
    assert torch.allclose(batch_loss(model, batch, 0.1), sequence_loss(logits, batch.tgt_out, 0.1), atol=1e-5)


def test_the_example_config_sets_every_option() -> None:
    from omegaconf import OmegaConf

    from seq2seq.config import TrainConfig, config_dir

    example = OmegaConf.to_container(OmegaConf.load(config_dir() / "example.yaml"))
    schema = OmegaConf.structured(TrainConfig)

    def keys(node: dict, prefix: str = "") -> set[str]:
        found = set()
        for k, v in node.items():
            if k not in ("defaults", "hydra"):
                found |= keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
        return found

    assert keys(example) == keys(OmegaConf.to_container(schema))  # type: ignore[arg-type]
    OmegaConf.merge(schema, {k: v for k, v in example.items() if k not in ("defaults", "hydra")})  # types check


@pytest.mark.parametrize("normalizer", ["sparsemax", "entmax15"])
@pytest.mark.parametrize("decoder", ["bahdanau", "luong", "transformer"])
def test_sparse_attention_models_overfit_and_leave_source_words_out(decoder: str, normalizer: str) -> None:
    """model.attention.normalizer reaches every attention decoder (the Transformer's
    cross-attention): its maps sum to one with exact zeros, and the model still learns."""
    torch.manual_seed(0)
    cfg = ModelConfig(decoder=decoder, embed_size=8, hidden_size=16, dropout=0.0)
    cfg.attention = AttentionConfig(score="general" if decoder == "luong" else "additive", normalizer=normalizer)
    check_model(cfg)
    model = build_model(cfg, VOCAB, VOCAB)
    assert overfit(model) < 0.05
    batch = collate(SRC, TGT)
    _, weights = model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, S)
    real = batch.tgt_out != 0  # (B, T)
    assert torch.allclose(weights.sum(-1)[real], torch.ones(int(real.sum())), atol=1e-5)
    assert torch.all(weights.masked_select(~batch.src_mask.unsqueeze(1)) == 0)  # padding
    assert (weights[real] == 0).logical_and(batch.src_mask.unsqueeze(1).expand_as(weights)[real]).any()
    assert [h.tokens for h in greedy_search(model, batch.src, batch.src_mask, SearchConfig())] == TGT


def test_an_unknown_normalizer_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="choose one of softmax, sparsemax, entmax15"):
        check_model(ModelConfig(attention=AttentionConfig(normalizer="gumbel")))
