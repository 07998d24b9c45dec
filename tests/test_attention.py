"""Step 1 (scores) against numbers worked out by hand; steps 2-3 (masked softmax, weighted sum)."""

from __future__ import annotations

import math

import pytest
import torch

from seq2seq.models.attention import (
    SCORES,
    AdditiveScore,
    Attention,
    CosineScore,
    DotScore,
    GeneralScore,
    ScaledDotScore,
    build_score,
    entmax15,
    normalize,
    sparsemax,
)

QUERY = torch.tensor([[[1.0, 2.0]]])  # (B=1, T=1, 2)
VALUES = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # (B=1, S=3, 2)


def test_dot_score_by_hand() -> None:
    scores = DotScore()(QUERY, VALUES)
    assert torch.allclose(scores, torch.tensor([[[1.0, 2.0, 3.0]]]))


def test_scaled_dot_score_by_hand() -> None:
    scores = ScaledDotScore()(QUERY, VALUES)
    assert torch.allclose(scores, torch.tensor([[[1.0, 2.0, 3.0]]]) / math.sqrt(2))


def test_general_score_by_hand() -> None:
    score = GeneralScore(2, 2)
    with torch.no_grad():
        score.key_proj.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, -1.0]]))  # W
    keys = score.project_keys(VALUES)  # W h_j: (2, 0), (0, -1), (2, -1)
    assert torch.allclose(score(QUERY, keys), torch.tensor([[[2.0, -2.0, 0.0]]]))


def test_additive_score_by_hand() -> None:
    score = AdditiveScore(query_size=2, key_size=2, attention_size=2)
    with torch.no_grad():
        score.key_proj.weight.copy_(torch.eye(2))  # U = I
        score.query_proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))  # W q = (q_1, 0)
        score.query_proj.bias.zero_()
        score.v.weight.copy_(torch.tensor([[1.0, -1.0]]))
    keys = score.project_keys(VALUES)
    # v . tanh(W q + U h_j) with W q = (1, 0): tanh(2) - tanh(0), tanh(1) - tanh(1), tanh(2) - tanh(1)
    expected = torch.tensor([[[math.tanh(2), 0.0, math.tanh(2) - math.tanh(1)]]])
    assert torch.allclose(score(QUERY, keys), expected, atol=1e-6)


def test_cosine_score_by_hand() -> None:
    score = CosineScore(temperature=0.5, learn_temperature=False)
    keys = score.project_keys(VALUES)
    norm_q = math.sqrt(5)
    expected = torch.tensor([[[1 / norm_q, 2 / norm_q, 3 / (norm_q * math.sqrt(2))]]]) / 0.5
    assert torch.allclose(score(QUERY, keys), expected, atol=1e-6)


def test_attention_weights_and_context_by_hand() -> None:
    attention = Attention(DotScore(), "softmax")
    mask = torch.ones(1, 1, 3, dtype=torch.bool)
    context, weights = attention(QUERY, VALUES, VALUES, mask)
    e = torch.exp(torch.tensor([1.0, 2.0, 3.0]))
    expected_w = e / e.sum()
    assert torch.allclose(weights[0, 0], expected_w)
    expected_c = expected_w[0] * VALUES[0, 0] + expected_w[1] * VALUES[0, 1] + expected_w[2] * VALUES[0, 2]
    assert torch.allclose(context[0, 0], expected_c)


def make(kind: str, size: int = 4, normalizer: str = "softmax") -> Attention:
    return Attention(
        build_score(kind, query_size=size, key_size=size, attention_size=size, temperature=0.5, learn_temperature=True),
        normalizer,
    )


@pytest.mark.parametrize("kind", SCORES)
def test_padding_gets_exactly_zero_weight_and_weights_sum_to_one(kind: str) -> None:
    attention = make(kind)
    values = torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]]).unsqueeze(1)  # (B, 1, S)
    _, weights = attention(torch.randn(2, 3, 4), attention.project_keys(values), values, mask)
    assert weights.shape == (2, 3, 5)
    assert torch.all(weights[1, :, 3:] == 0.0)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3))


@pytest.mark.parametrize("kind", SCORES)
def test_padding_values_do_not_change_the_context(kind: str) -> None:
    attention = make(kind)
    values = torch.randn(1, 4, 4)
    mask = torch.tensor([[[True, True, False, False]]])
    query = torch.randn(1, 2, 4)
    other = values.clone()
    other[:, 2:] = 100.0
    c1, _ = attention(query, attention.project_keys(values), values, mask)
    c2, _ = attention(query, attention.project_keys(other), other, mask)
    assert torch.allclose(c1, c2)


@pytest.mark.parametrize("kind", SCORES)
def test_gradcheck_float64(kind: str) -> None:
    attention = make(kind, size=3).double()
    mask = torch.tensor([[[True, True, False]]])

    def f(query: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return attention(query, attention.project_keys(values), values, mask)

    query = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)
    values = torch.randn(1, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (query, values))


def test_build_score_trusts_the_config_checks_and_asserts_them() -> None:
    sizes = {"attention_size": 4, "temperature": 0.1, "learn_temperature": True}
    with pytest.raises(AssertionError):  # the config names the fix: seq2seq.config.check_model
        build_score("dot", query_size=4, key_size=6, **sizes)
    with pytest.raises(AssertionError):
        build_score("bilinear-ish", query_size=4, key_size=4, **sizes)


def reference_scores(kind: str, attention: Attention, query: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Each score from its formula, one (query step, source word) pair at a time, nothing precomputed."""
    score = attention.score
    steps, words = query.size(1), values.size(1)
    out = torch.zeros(1, steps, words, dtype=query.dtype)
    for t in range(steps):
        q = query[0, t]
        for j in range(words):
            h = values[0, j]
            if kind == "dot":
                out[0, t, j] = q @ h
            elif kind == "scaled_dot":
                out[0, t, j] = q @ h / math.sqrt(q.numel())
            elif kind == "general":
                out[0, t, j] = q @ score.key_proj.weight @ h  # q^T W h
            elif kind == "additive":
                hidden = torch.tanh(score.query_proj(q) + score.key_proj.weight @ h)  # W q + b + U h
                out[0, t, j] = score.v.weight[0] @ hidden
            else:
                out[0, t, j] = torch.nn.functional.cosine_similarity(q, h, dim=0) * score.log_scale.exp()
    return out


@pytest.mark.parametrize("kind", SCORES)
def test_keys_projected_once_give_the_scores_computed_per_step(kind: str) -> None:
    torch.manual_seed(0)
    attention = make(kind)
    query, values = torch.randn(1, 3, 4), torch.randn(1, 5, 4)
    with torch.no_grad():
        once = attention.score(query, attention.project_keys(values))  # (1, 3, 5)
        assert torch.allclose(once, reference_scores(kind, attention, query, values), atol=1e-5)


# ---------------------------------------------------------------- step 2 without softmax: exact zeros


def test_sparsemax_by_hand() -> None:
    # z = (1, 0.5, -1): 1 + 2 * 0.5 > 1.5 keeps two, 1 + 3 * (-1) > 0.5 fails: tau = (1.5 - 1) / 2 = 0.25
    weights = sparsemax(torch.tensor([[1.0, 0.5, -1.0]]))
    assert torch.allclose(weights, torch.tensor([[0.75, 0.25, 0.0]]))
    assert weights[0, 2] == 0.0  # exactly
    assert torch.allclose(sparsemax(torch.tensor([[2.0, 2.0]])), torch.tensor([[0.5, 0.5]]))  # ties share


def test_entmax15_by_hand() -> None:
    # z / 2 = (0.5, 0, -0.5); with two in the support tau = 0.25 - sqrt(0.4375) = -0.41144,
    # and -0.5 < tau leaves the third out: p = (0.5 - tau)^2, (0 - tau)^2, 0
    tau = 0.25 - math.sqrt(0.4375)
    weights = entmax15(torch.tensor([[1.0, 0.0, -1.0]]))
    assert torch.allclose(weights, torch.tensor([[(0.5 - tau) ** 2, tau**2, 0.0]]), atol=1e-6)
    assert weights[0, 2] == 0.0 and torch.allclose(weights.sum(), torch.tensor(1.0))
    uniform = entmax15(torch.zeros(1, 4))
    assert torch.allclose(uniform, torch.full((1, 4), 0.25))  # equal scores: equal weights, like softmax


@pytest.mark.parametrize("normalizer", ["sparsemax", "entmax15"])
def test_sparse_normalizers_against_an_exhaustive_search_of_the_support(normalizer: str) -> None:
    """The sorted closed form against the definition: the support is the subset whose threshold
    leaves exactly that subset positive (checked over every subset of 6 scores)."""
    import itertools

    torch.manual_seed(0)
    for _ in range(20):
        z = torch.randn(6, dtype=torch.float64) * 2
        found = None
        for size in range(1, 7):
            for subset in itertools.combinations(range(6), size):
                zs = z[list(subset)]
                if normalizer == "sparsemax":
                    tau = (zs.sum() - 1) / size
                    p = (z - tau).clamp(min=0)
                else:  # 1.5-entmax: sum((z/2 - tau)^2) = 1 over the subset, the larger root
                    h = zs / 2
                    mean = h.mean()
                    tau = mean - torch.sqrt(((1 - ((h - mean) ** 2).sum()) / size).clamp(min=0))
                    p = (z / 2 - tau).clamp(min=0) ** 2
                if set(torch.nonzero(p).flatten().tolist()) == set(subset) and abs(p.sum() - 1) < 1e-9:
                    found = p
        got = (sparsemax if normalizer == "sparsemax" else entmax15)(z.unsqueeze(0))[0]
        assert found is not None and torch.allclose(got, found, atol=1e-9), (z, got, found)


@pytest.mark.parametrize("normalizer", ["sparsemax", "entmax15"])
def test_sparse_normalizers_have_the_right_gradients(normalizer: str) -> None:
    fn = sparsemax if normalizer == "sparsemax" else entmax15
    z = torch.tensor([[1.3, 0.2, -0.4, 0.9, -2.0], [0.0, 0.0, -2.0, -2.0, -2.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(fn, (z.requires_grad_(),))  # row 2: ties, once 0/0 in entmax's gradient
    z = z[:1].detach().requires_grad_()
    weights = fn(z)
    weights[0, 0].backward()
    assert z.grad[0, 4] == 0.0  # a word outside the support moves nothing


@pytest.mark.parametrize("normalizer", ["sparsemax", "entmax15"])
@pytest.mark.parametrize("kind", SCORES)
def test_sparse_attention_masks_padding_sums_to_one_and_leaves_words_out(kind: str, normalizer: str) -> None:
    torch.manual_seed(1)
    attention = make(kind, normalizer=normalizer)
    values = torch.randn(2, 7, 4) * 3
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3]).unsqueeze(1)  # (B, 1, S)
    _, weights = attention(torch.randn(2, 3, 4) * 3, attention.project_keys(values), values, mask)
    assert torch.all(weights[1, :, 4:] == 0.0)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3), atol=1e-5)
    assert torch.all(weights >= 0)


def test_sparsemax_puts_exact_zeros_where_softmax_spreads() -> None:
    scores = torch.tensor([[[4.0, 3.5, 0.0, -1.0, -2.0]]])
    mask = torch.ones(1, 1, 5, dtype=torch.bool)
    assert torch.all(normalize(scores, mask, "softmax") > 0)
    assert (normalize(scores, mask, "sparsemax") == 0).sum() == 3
    assert (normalize(scores, mask, "entmax15") == 0).sum() >= 2


@pytest.mark.parametrize("normalizer", ["sparsemax", "entmax15"])
def test_sparse_normalizers_stay_exact_under_bf16_and_give_nan_not_a_crash_on_bad_scores(normalizer: str) -> None:
    torch.manual_seed(0)
    scores = (torch.randn(256, 40) * 3).bfloat16()
    mask = torch.ones(256, 40, dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        weights = normalize(scores, mask, normalizer)
    assert weights.dtype == torch.float32 and torch.allclose(weights.sum(-1), torch.ones(256), atol=1e-5)
    fn = sparsemax if normalizer == "sparsemax" else entmax15
    assert torch.isnan(fn(torch.tensor([[float("nan"), 1.0], [float("inf"), 1.0]]))).all()  # like softmax: skipped
    grads = (torch.randn(512, 12) * 3).bfloat16().float().requires_grad_()
    fn(grads).sum().backward()
    assert torch.isfinite(grads.grad).all()
