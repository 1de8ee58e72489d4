"""TokenTransformer: the call contract, bad input, and training that approaches the oracle."""

from __future__ import annotations

import math

import pytest
import torch

from interpolant import discrete as dd
from interpolant import models
from interpolant.errors import InterpolantError
from interpolant.labels import NULL_LABEL

SMALL = {"num_tokens": 4, "length": 3, "hidden": 32, "depth": 1, "heads": 2}


def test_contract_zero_init_and_rebuild():
    """Logits (B, L, K), zero at initialisation (the uniform law), rebuilt from its config."""
    torch.manual_seed(0)
    net = models.build("tokens", **SMALL)
    x = torch.tensor([[0, 4, 2], [4, 4, 4]])
    out = net(x, torch.rand(2), None)
    assert out.shape == (2, 3, 4) and bool((out == 0).all())
    again = models.build(net.arch, **net.config)
    assert again.config == net.config and "tokens" in models.available()


def test_batch_independence_and_labels():
    """Each sequence's logits depend on its own tokens, time and label only (float64)."""
    torch.manual_seed(1)
    net = models.TokenTransformer(**SMALL, num_classes=3).double()
    for p in net.parameters():  # leave the zero initialisation so the output is not trivial
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randint(0, 5, (6, 3))
    t = torch.rand(6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, NULL_LABEL, 0, 1])
    full = net(x, t, y)
    for i in range(6):
        torch.testing.assert_close(net(x[i : i + 1], t[i : i + 1], y[i : i + 1]), full[i : i + 1])
    assert not torch.allclose(net(x, t, torch.zeros_like(y)), full)


def test_local_convolution_sees_exactly_its_window():
    """Before the first block, position i mixes the tokens i - w//2 .. i + w//2 and no others:
    the Jacobian of the stem over the token embeddings is banded with half-width w // 2."""
    torch.manual_seed(2)
    net = models.TokenTransformer(num_tokens=5, length=12, hidden=8, depth=1, heads=2, local=5)
    e = torch.randn(1, 12, 8)
    stem = lambda e: e + net.local(e.transpose(1, 2)).transpose(1, 2)  # noqa: E731
    jac = torch.autograd.functional.jacobian(stem, e)[0, :, :, 0, :, :]  # (12, 8, 12, 8)
    reach = jac.abs().sum((1, 3)) > 0  # reach[i, j]: output i depends on input j
    band = (torch.arange(12)[:, None] - torch.arange(12)[None, :]).abs() <= 2
    assert bool((reach == band).all())
    with pytest.raises(InterpolantError, match="odd"):
        models.TokenTransformer(**SMALL, local=4)


def test_local_convolution_learns_a_neighbour_copy_task():
    """Sequences of doubled tokens (a a b b c c ...): a masked token is its visible partner.
    A hundred Adam steps with the convolution bring the cross-entropy on masked tokens (t = 0.3)
    far below the unigram law log K = 2.08 nats, to the predictor that knows both neighbours
    but not yet which is the partner (0.3 log 8 + 0.7 log 2 = 1.11); the same net without
    the convolution (local=0) stays at log K (measured: 1.01 against 2.05 nats)."""
    g = torch.Generator().manual_seed(0)
    pairs = torch.randint(0, 8, (2048, 8), generator=g)
    data = pairs.repeat_interleave(2, dim=1)  # (N, 16)
    process = dd.Masked("linear", 8)

    def masked_ce(local: int) -> float:
        torch.manual_seed(0)
        net = models.TokenTransformer(num_tokens=8, length=16, hidden=32, depth=1, heads=2,
                                      local=local)
        dd.train_tokens(net, process, data, steps=100, batch_size=64, lr=5e-3)
        t = torch.full((512,), 0.3, dtype=torch.float64)
        x_t = process.noise(data[:512], t, torch.Generator().manual_seed(1))
        with torch.no_grad():
            logp = torch.log_softmax(net(x_t, t, None), -1)
        ce = -logp.gather(-1, data[:512, :, None])[..., 0]
        return float(ce[x_t == process.mask_id].mean())

    with_conv, without = masked_ce(5), masked_ce(0)
    assert with_conv < 0.6 * math.log(8) and without > 0.9 * math.log(8), (with_conv, without)


def test_bad_tokens_raise():
    net = models.TokenTransformer(**SMALL)
    with pytest.raises(InterpolantError, match=r"\[0, 5\)"):
        net(torch.tensor([[0, 1, 5]]), torch.rand(1))
    with pytest.raises(InterpolantError, match="int64"):
        net(torch.zeros(1, 3), torch.rand(1))
    with pytest.raises(InterpolantError, match=r"shape \(B, 3\)"):
        net(torch.zeros(1, 4, dtype=torch.long), torch.rand(1))
    with pytest.raises(InterpolantError, match="shape"):
        net(torch.zeros(2, 3, dtype=torch.long), torch.rand(()))


def test_training_approaches_the_oracle_bound(oracle):
    """A few dozen Adam steps on the MD4 objective close most of the gap between the untrained
    net (uniform logits: log K per token) and the exact denoiser (the data entropy), measured on
    the same held-out draws (common random numbers, 8192 sequences)."""
    process = dd.Masked("linear", 4)
    g = torch.Generator().manual_seed(0)
    data = oracle.support[torch.multinomial(oracle.probs, 4096, True, generator=g)]
    held = oracle.support[torch.multinomial(oracle.probs, 8192, True, generator=g)]
    torch.manual_seed(0)
    net = models.TokenTransformer(**SMALL)

    def held_out(model) -> float:
        with torch.no_grad():
            loss = dd.masked_elbo(model, process, held, torch.Generator().manual_seed(9))
        return float(loss.mean()) / 3

    before = held_out(net)
    losses = dd.train_tokens(net, process, data, steps=40, batch_size=128, lr=5e-3)
    after, best = held_out(net), held_out(oracle.model(process))
    assert len(losses) == 40
    assert abs(before - math.log(4)) < 0.05  # uniform logits: log K per token, by MC
    assert after - best < 0.5 * (before - best), (before, after, best)


def test_digit_tokens_are_the_raw_intensities():
    from sklearn.datasets import load_digits

    tokens, labels = dd.digit_tokens("all")
    raw = torch.from_numpy(load_digits().images).reshape(-1, 64)
    assert tokens.dtype == torch.int64 and tokens.shape == (1797, 64)
    assert bool((tokens == raw.long()).all()) and int(tokens.max()) == dd.DIGIT_LEVELS - 1
    assert labels.shape == (1797,)
    train, _ = dd.digit_tokens("train")
    assert train.shape == (1500, 64)
    from interpolant.data.images import digits

    torch.testing.assert_close(dd.digit_images(train), digits("train")[0])


def test_train_tokens_rejects_bad_data():
    net = models.TokenTransformer(**SMALL)
    with pytest.raises(InterpolantError, match="training tokens"):
        dd.train_tokens(net, dd.Masked("linear", 4), torch.full((8, 3), 4), steps=1)
    with pytest.raises(InterpolantError, match="labels"):
        dd.train_tokens(net, dd.Masked("linear", 4), torch.zeros(8, 3, dtype=torch.long),
                        steps=1, labels=torch.zeros(7, dtype=torch.long))


def test_text_tokens_round_trip_the_documentation():
    """Character tokens decode back to pydoc_data's text (ASCII topics), and the held-out topics
    are not in the training text."""
    from pydoc_data.topics import topics

    train, test = dd.text_tokens(32), dd.text_tokens(32, "test")
    assert len(dd.TEXT_VOCAB) == 96 and train.dtype == torch.int64 and train.shape[1] == 32
    names = sorted(topics)
    joined = "\n".join(topics[n] for i, n in enumerate(names) if i % 10 != 9)
    decoded = "".join(dd.decode_text(train[:50]))
    want = "".join(c if c in dd.TEXT_VOCAB else "?" for c in joined[: len(decoded)])
    assert decoded == want
    held_out = "".join(dd.decode_text(test))
    assert topics[names[9]][:200].replace("\t", "?") in held_out
    assert abs(dd.bits(math.log(2.0)) - 1.0) < 1e-12
    with pytest.raises(InterpolantError, match="unknown text split"):
        dd.text_tokens(32, "valid")


def test_evaluate_bound_of_the_oracle_is_the_entropy(oracle):
    """evaluate_bound's mean at the exact denoiser is the data entropy per token (tight MD4
    bound), within 4.5 of its standard errors."""
    process = dd.Masked("cosine", 4)
    g = torch.Generator().manual_seed(3)
    x = oracle.support[torch.multinomial(oracle.probs, 4000, True, generator=g)]
    mean, se = dd.evaluate_bound(oracle.model(process), process, x, repeats=2)
    entropy = float(oracle.probs @ oracle.nll(oracle.support)) / 3
    assert abs(mean - entropy) < 4.5 * se
