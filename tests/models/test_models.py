"""Reference networks: call contract, conditioning, batch independence, errors, a fit."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from interpolant import models
from interpolant.errors import InterpolantError
from interpolant.labels import NULL_LABEL
from interpolant.oracle import GaussianMixture
from interpolant.paths import VPLinear


pytestmark = pytest.mark.usefixtures("one_thread")


# small versions of every architecture: (name, config, shape of one sample)
SMALL = {
    "mlp": ({"dim": 3, "hidden": 32, "depth": 2}, (3,)),
    "dit": ({"in_channels": 2, "image_size": 8, "patch_size": 2, "hidden": 32, "depth": 2,
             "heads": 2}, (2, 8, 8)),
    "temporal": ({"channels": 3, "base_channels": 8, "channel_mults": (1, 2)}, (3, 16)),
    "unet": ({"in_channels": 2, "base_channels": 8, "channel_mults": (1, 2)}, (2, 8, 8)),
    "edm2": ({"in_channels": 2, "base_channels": 8, "channel_mults": (1, 2)}, (2, 8, 8)),
    "mmdit": ({"in_channels": 2, "image_size": 8, "patch_size": 2, "hidden": 32, "depth": 2,
               "heads": 2, "context_tokens": 3}, (2, 8, 8)),
    "dtr": ({"in_channels": 2, "image_size": 8, "patch_size": 2, "hidden": 32, "depth": 2,
             "heads": 2}, (2, 8, 8)),
    "switch-dit": ({"in_channels": 2, "image_size": 8, "patch_size": 2, "hidden": 32,
                    "depth": 2, "heads": 2, "experts": 3, "top_k": 2}, (2, 8, 8)),
    "diffussm": ({"in_channels": 2, "image_size": 8, "patch_size": 2, "hidden": 32,
                  "depth": 2, "state": 4}, (2, 8, 8)),
    "ode-unet": ({"in_channels": 2, "base_channels": 8, "channel_mults": (1, 2)}, (2, 8, 8)),
    "spectral-unet": ({"in_channels": 2, "base_channels": 8, "channel_mults": (1, 2)},
                      (2, 8, 8)),
}

# parameter counts of the default models, as stated in the report and the docs
DEFAULT_PARAMETER_COUNTS = {
    "mlp": 1_138_946, "unet": 755_009, "dit": 1_254_532, "temporal": 482_370,
}


def small(name: str, num_classes: int | None = None) -> tuple[nn.Module, tuple[int, ...]]:
    config, sample_shape = SMALL[name]
    torch.manual_seed(0)
    return models.build(name, **config, num_classes=num_classes), sample_shape


def perturb(net: nn.Module, seed: int = 0, scale: float = 0.1) -> nn.Module:
    """Move every parameter off its initial value, so zero-initialised layers pass signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return net


def inputs(sample_shape: tuple[int, ...], batch: int = 4, dtype=torch.float32, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *sample_shape, generator=g).to(dtype)
    t = torch.rand(batch, generator=g).to(dtype)
    return x, t


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_has_shape_and_dtype_of_x_and_starts_at_zero(name: str, dtype) -> None:
    net, shape = small(name)
    x, t = inputs(shape, dtype=dtype)
    out = net(x, t)
    assert out.shape == x.shape and out.dtype == dtype
    assert torch.count_nonzero(out) == 0  # zero-initialised output layer, as documented
    out = perturb(net)(x, t)
    assert out.dtype == dtype and torch.all(torch.isfinite(out)) and out.abs().max() > 0
    # a float64 net computes in float64 and agrees with the float32 net to float32 precision
    out64 = net.double()(x.double(), t.double())
    torch.testing.assert_close(out.double(), out64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(SMALL))
def test_config_is_json_and_rebuilds_the_same_architecture(name: str) -> None:
    net, shape = small(name, num_classes=5)
    config = json.loads(json.dumps(net.config))
    assert config["num_classes"] == 5
    twin = models.build(net.arch, **config)
    twin.load_state_dict(perturb(net).state_dict())  # strict: same names and shapes
    x, t = inputs(shape)
    labels = torch.tensor([0, 1, 4, NULL_LABEL])
    torch.testing.assert_close(twin(x, t, labels), net(x, t, labels))
    assert models.count_parameters(twin) == models.count_parameters(net)


@pytest.mark.parametrize("name", list(SMALL))
def test_time_and_labels_change_the_output(name: str) -> None:
    net, shape = small(name, num_classes=3)
    perturb(net)
    x, t = inputs(shape)
    y = torch.tensor([0, 1, 2, 0])
    out = net(x, t, y)
    assert (net(x, t.flip(0), y) - out).abs().amax(dim=tuple(range(1, x.ndim))).min() > 1e-4
    other = net(x, t, (y + 1) % 3)
    assert (other - out).abs().amax(dim=tuple(range(1, x.ndim))).min() > 1e-4
    null = torch.full_like(y, NULL_LABEL)
    out_null = net(x, t, null)
    assert (out_null - out).abs().max() > 1e-4
    torch.testing.assert_close(net(x, t), out_null)  # cond=None runs the NULL_LABEL branch
    torch.testing.assert_close(net(x, t, {"labels": y}), out)


@pytest.mark.parametrize("name", list(SMALL))
def test_samples_do_not_interact_within_a_batch(name: str) -> None:
    net, shape = small(name, num_classes=3)
    # float64, so that a batched kernel's different summation order (float32 rounding, ~1e-6
    # here) cannot be mistaken for samples interacting (an O(1) effect)
    perturb(net).double().train()  # also in training mode: no batch statistics anywhere
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    x, t = inputs(shape, batch=6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, NULL_LABEL, 1, 0])
    full = net(x, t, y)
    for i in (0, 3, 5):
        alone = net(x[i : i + 1], t[i : i + 1], y[i : i + 1])
        torch.testing.assert_close(alone[0], full[i], rtol=1e-10, atol=1e-12)
    perm = torch.tensor([5, 2, 0, 4, 1, 3])
    torch.testing.assert_close(net(x[perm], t[perm], y[perm]), full[perm], rtol=1e-10,
                               atol=1e-12)
    x2 = x.clone()
    x2[1:] = torch.randn_like(x2[1:]) * 10  # wildly different companions
    torch.testing.assert_close(net(x2, t, y)[0], full[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(SMALL))
def test_bad_inputs_raise_clear_errors(name: str) -> None:
    net, shape = small(name, num_classes=3)
    x, t = inputs(shape)
    with pytest.raises(InterpolantError, match=r"t must be a floating tensor of shape \(B,\)"):
        net(x, t[0])  # 0-d
    with pytest.raises(InterpolantError, match="one time per sample"):
        net(x, 0.5)
    with pytest.raises(InterpolantError, match=r"\(4,\)"):
        net(x, t[:2])
    with pytest.raises(InterpolantError, match="floating"):
        net(x, (t * 1000).long())
    with pytest.raises(InterpolantError, match="expects x of shape"):
        net(x[..., :-1], t)
    with pytest.raises(InterpolantError, match=r"labels must lie in \[0, 3\) or be NULL_LABEL"):
        net(x, t, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(InterpolantError, match=r"labels must lie in \[0, 3\)"):
        net(x, t, torch.tensor([0, -2, 1, 0]))
    with pytest.raises(InterpolantError, match="int64 class labels"):
        net(x, t, torch.zeros(4))
    unconditional, _ = small(name)
    with pytest.raises(InterpolantError, match="unconditional"):
        unconditional(x, t, torch.zeros(4, dtype=torch.int64))


def test_build_rejects_unknown_names() -> None:
    names = ["diffussm", "dit", "dtr", "edm2", "mlp", "mmdit", "ode-unet", "spectral-unet",
             "switch-dit", "temporal", "tokens", "unet"]
    assert models.available() == names
    with pytest.raises(InterpolantError, match="unknown model 'resnet'.*" + ", ".join(names)):
        models.build("resnet")


def test_mlp_learns_the_exact_mixture_posterior_mean() -> None:
    """Regress the closed-form E[x0 | x_t] of the 'aniso2d' mixture on VPLinear for t in
    [0.2, 0.8]: a deterministic target. After 150 Adam steps the test error must be below 5%
    of that of the best least-squares fit on the features (x, t, x t, 1) (measured: ~0.5%);
    a net that ignored x or t, or could not represent the bends of the posterior mean,
    would fail."""
    gmm, path = GaussianMixture.preset("aniso2d"), VPLinear()
    g = torch.Generator().manual_seed(0)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x0 = gmm.sample(n, g)
        t = 0.2 + 0.6 * torch.rand(n, generator=g, dtype=torch.float64)
        noise = torch.randn(n, 2, generator=g, dtype=torch.float64)
        xt = path.alpha(t)[:, None] * x0 + path.sigma(t)[:, None] * noise
        target = gmm.posterior_mean(xt, path.alpha(t), path.sigma(t))
        return xt.float(), t.float(), target.float()

    (x, t, target), (x_test, t_test, target_test) = draw(4096), draw(1024)

    def features(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, t[:, None], x * t[:, None], torch.ones_like(x[:, :1])], dim=1)

    coef = torch.linalg.lstsq(features(x, t), target).solution
    linear_err = (features(x_test, t_test) @ coef - target_test).pow(2).sum(1).mean()
    torch.manual_seed(0)
    net = models.MLP(2, hidden=64, depth=2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(150):
        index = torch.randint(0, 4096, (256,), generator=g)
        loss = (net(x[index], t[index]) - target[index]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        err = (net(x_test, t_test) - target_test).pow(2).sum(1).mean()
    assert err < 0.05 * linear_err, (float(err), float(linear_err))


def test_unet_features_and_deepcache_partial_forward() -> None:
    net, shape = small("unet", num_classes=3)
    perturb(net)
    x, t = inputs(shape)
    y = torch.tensor([0, 1, 2, NULL_LABEL])
    out, feats = net(x, t, y, return_features=True)
    torch.testing.assert_close(out, net(x, t, y))
    assert feats["encoder.0"].shape == (4, 8, 8, 8) and feats["mid"].shape == (4, 16, 4, 4)
    assert feats["decoder_in.0"].shape == (4, 16, 8, 8)  # upsampled deep branch
    # the shallow pass around a cache from the same call reproduces the full forward ...
    cached = net.forward_cached(x, t, y, cached=feats["decoder_in.0"], level=0)
    torch.testing.assert_close(cached, out, rtol=1e-5, atol=1e-6)
    # ... and the cache is really used: a cache from another time gives another output
    _, stale = net(x, t.flip(0), y, return_features=True)
    assert (net.forward_cached(x, t, y, cached=stale["decoder_in.0"]) - out).abs().max() > 1e-4
    with pytest.raises(InterpolantError, match="level must be in 0..0"):
        net.forward_cached(x, t, y, cached=feats["decoder_in.1"], level=1)


def test_unet_sizes_channels_and_rejections() -> None:
    net = models.UNet(in_channels=3, base_channels=8, channel_mults=(1, 2, 2),
                      attention_levels=True, out_channels=6)
    x = torch.randn(2, 3, 16, 16)
    assert net(x, torch.rand(2)).shape == (2, 6, 16, 16)
    with pytest.raises(InterpolantError, match="divisible by 4"):
        net(torch.randn(2, 3, 10, 10), torch.rand(2))
    with pytest.raises(InterpolantError, match=r"expects x of shape \(B, 3, H, W\)"):
        net(torch.randn(2, 1, 16, 16), torch.rand(2))
    with pytest.raises(InterpolantError, match="attention_levels"):
        models.UNet(attention_levels=(2,))
    assert models.UNet(attention_levels=False).config["attention_levels"] == []


def test_attention_is_exact_and_commutes_with_permutations_of_positions() -> None:
    """Self-attention has no positional input, so permuting the H*W positions of its input
    permutes its output the same way (a wrong reshape between channels and positions breaks
    this); and it matches softmax(q k^T / sqrt(d)) v written out with einsum."""
    from interpolant.models.layers import SelfAttention

    attn = perturb(SelfAttention(16, head_dim=8), seed=3, scale=0.3)
    h = torch.randn(2, 16, 4, 4)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    permute = lambda a: a.flatten(2)[:, :, perm].reshape(a.shape)  # noqa: E731
    torch.testing.assert_close(attn(permute(h)), permute(attn(h)), rtol=1e-5, atol=1e-5)
    qkv = attn.qkv(attn.norm(h)).flatten(2)  # (B, 3C, HW)
    q, k, v = (part.reshape(2, 2, 8, 16) for part in qkv.chunk(3, dim=1))  # (B, heads, d, HW)
    weights = torch.softmax(torch.einsum("bhdi,bhdj->bhij", q, k) / 8**0.5, dim=-1)
    y = torch.einsum("bhij,bhdj->bhdi", weights, v).reshape(2, 16, 4, 4)
    torch.testing.assert_close(attn(h), h + attn.proj(y), rtol=1e-5, atol=1e-5)


def test_dit_tokens_map_back_to_their_own_patches() -> None:
    """Without blocks no token sees another, so changing one 2x2 patch of the input may only
    change the same patch of the output: patchify and unpatchify agree on the patch order."""
    net = perturb(models.DiT(in_channels=2, image_size=8, patch_size=2, hidden=32, depth=0))
    x, t = inputs((2, 8, 8))
    x2 = x.clone()
    x2[:, :, 2:4, 4:6] += 1.0  # patch (row 1, column 2)
    changed = (net(x2, t) - net(x, t)).abs().amax(dim=(0, 1)) > 1e-6
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:4, 4:6] = True
    assert torch.equal(changed, expected)
    # with attention blocks the change spreads to every patch
    deep = perturb(models.DiT(in_channels=2, image_size=8, patch_size=2, hidden=32, depth=1))
    assert ((deep(x2, t) - deep(x, t)).abs().amax(dim=(0, 1)) > 1e-6).all()


def test_dit_blocks_start_as_identity_and_rejects_bad_sizes() -> None:
    net = models.DiT(in_channels=1, image_size=8, patch_size=2, hidden=32, depth=2, heads=2)
    h, c = torch.randn(3, 16, 32), torch.randn(3, 32)
    for block in net.blocks:  # adaLN-Zero: gates start at zero
        torch.testing.assert_close(block(h, c), h)
    with pytest.raises(InterpolantError, match=r"expects x of shape \(B, 1, 8, 8\)"):
        net(torch.randn(2, 1, 16, 16), torch.rand(2))
    with pytest.raises(InterpolantError, match="patch_size dividing image_size"):
        models.DiT(image_size=8, patch_size=3)


def test_default_models_have_the_documented_sizes() -> None:
    counts = {name: models.count_parameters(models.build(name, **kw)) for name, kw in
              [("mlp", {"dim": 2}), ("unet", {}), ("dit", {}), ("temporal", {"channels": 2})]}
    assert counts == DEFAULT_PARAMETER_COUNTS
