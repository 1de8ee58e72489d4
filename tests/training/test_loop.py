"""The training loop: learning the exact denoiser, exact resume, label dropout, guards."""

from __future__ import annotations

import json

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.labels import NULL_LABEL
from interpolant.models import MLP
from interpolant.training import TrainConfig, Trainer, load_checkpoint, train


def _data(n=512, seed=0):
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    x, y = gmm.sample(n, torch.Generator().manual_seed(seed), return_labels=True)
    return gmm, x.float(), y


def _mlp(seed, num_classes=None):
    torch.manual_seed(seed)
    return MLP(2, hidden=32, depth=1, num_classes=num_classes)


def test_learned_denoiser_approaches_the_exact_posterior_mean():
    # 250 steps of v-prediction on the 8-component aniso2d mixture. Held-out (x0, t, eps)
    # with t ~ U[0, 1]; the reference is the exact E[x0 | x_t]. The bound 5% of the MSE of the
    # trivial predictor E[x0] (which is the exact answer only as t -> 1) asks the net to capture
    # 95% of the posterior mean's variation. The untrained net (v = 0, i.e. x0_hat = alpha x_t,
    # the exact denoiser of N(0, I) data) scores about 0.25, five times the bound.
    torch.manual_seed(0)
    gmm, data, _ = _data(8192)
    path = ip.paths.VPLinear()
    model = MLP(2, hidden=64, depth=2)
    g = torch.Generator().manual_seed(1)
    x0 = gmm.sample(4000, g)
    t = torch.rand(4000, generator=g, dtype=torch.float64)
    xt = path.sample(x0, t, torch.randn(4000, 2, generator=g, dtype=torch.float64))
    exact = gmm.posterior_mean(xt, path.alpha(t), path.sigma(t))
    trivial = (exact - data.double().mean(0)).pow(2).sum(1).mean()

    def mse(net):
        with torch.no_grad():
            pred = ip.Denoiser(net, path, "v")(xt.float(), t.float(), target="x0")
        return float((pred.double() - exact).pow(2).sum(1).mean() / trivial)

    assert mse(model) > 0.2
    result = train(model, path, data, target="v", steps=250, batch_size=256, lr=3e-3, warmup=50,
                   ema_halflife=20_000, ema_rampup=0.1, progress=False, log_every=50)
    assert mse(result.ema_model) < 0.05
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def _config(**kw):
    base = dict(target="v", steps=12, batch_size=64, lr=2e-3, warmup=3, ema_halflife=500,
                label_dropout=0.3, coupling="immiscible", density="logit-normal",
                weight="min-snr", progress=False, log_every=1)
    base.update(kw)
    return base


def test_resume_is_bitwise_identical_to_a_straight_run(tmp_path):
    # 6 steps + checkpoint + 6 more == 12 straight (8 steps per epoch: crosses an epoch).
    _, data, labels = _data(512)
    path = ip.paths.VPLinear()
    straight = train(_mlp(0, 8), path, data, labels, **_config())
    train(_mlp(0, 8), path, data, labels, run_dir=tmp_path, **_config(steps=6))
    torch.manual_seed(123)
    torch.rand(7)  # disturb the global RNG: the checkpoint restores it
    resumed = train(_mlp(99, 8), path, data, labels, run_dir=tmp_path, resume=True, **_config())
    for a, b in ((straight.model, resumed.model), (straight.ema_model, resumed.ema_model)):
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(va, vb), k
    assert [h["loss"] for h in straight.history[6:]] == [h["loss"] for h in resumed.history]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 13))
    assert set(json.loads(lines[0])) >= {"step", "loss", "grad_norm", "lr", "samples_per_s"}
    assert load_checkpoint(tmp_path / "checkpoints").step == 12


def test_resume_after_a_kill_logs_every_step_once(tmp_path):
    # killed after step 11 was logged, before the step-12 checkpoint: resume goes back to the
    # step-8 checkpoint, cuts the log back to it, and logs steps 9-12 once each
    _, data, labels = _data(512)
    path = ip.paths.VPLinear()
    options = _config(checkpoint_every=4)
    train(_mlp(0, 8), path, data, labels, run_dir=tmp_path, **options)
    step_12 = tmp_path / "checkpoints" / "step_00000012"
    for file in step_12.iterdir():
        file.unlink()
    step_12.rmdir()
    (tmp_path / "checkpoints" / "LATEST").write_text("step_00000012")  # names a lost one
    resumed = Trainer(_mlp(1, 8), path, data, labels, TrainConfig(**options), tmp_path, True)
    assert resumed.step_count == 8 and resumed.resumed_from.name == "step_00000008"
    resumed.run()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 13))


class _Recorder(torch.nn.Module):
    def __init__(self, net, fail_at=None):
        super().__init__()
        self.net, self.fail_at, self.conds, self.calls = net, fail_at, [], 0
        self.config = net.config

    def forward(self, x, t, cond=None):
        self.calls += 1
        self.conds.append(cond.clone())
        out = self.net(x, t, cond)
        return out * float("nan") if self.calls == self.fail_at else out


def test_label_dropout_replaces_labels_by_null_with_probability_p():
    _, data, labels = _data(4096)
    model = _Recorder(_mlp(0, 8))
    trainer = Trainer(model, ip.paths.VPLinear(), data, labels,
                      TrainConfig(**_config(steps=40, label_dropout=0.25, coupling="independent")))
    kept = []
    for step in range(40):
        idx = trainer.batch_indices(step)
        trainer.step()
        cond = model.conds[-1]
        keep = cond != NULL_LABEL
        assert torch.equal(cond[keep], labels[idx][keep])  # kept labels are the batch's own
        kept.append(keep)
    frac = 1 - torch.cat(kept).float().mean()
    n = 40 * 64
    assert abs(float(frac) - 0.25) < 5 * (0.25 * 0.75 / n) ** 0.5


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    _, data, labels = _data(512)
    model = _Recorder(_mlp(0, 8), fail_at=3)
    with pytest.raises(InterpolantError, match="non-finite loss at step 3"):
        train(model, ip.paths.VPLinear(), data, labels, run_dir=tmp_path,
              **_config(checkpoint_every=1))
    ck = load_checkpoint(tmp_path / "checkpoints")
    assert ck.step == 2
    assert all(torch.isfinite(v).all() for v in ck.tensors["model"].values())
    assert all(torch.isfinite(p).all() for p in model.parameters())  # no poisoned update


def test_bad_input_is_refused_and_nothing_saved_is_lost(tmp_path):
    _, data, labels = _data(512)
    path = ip.paths.VPLinear()
    train(_mlp(0, 8), path, data, labels, run_dir=tmp_path, **_config(steps=2))
    saved = (tmp_path / "checkpoints" / "step_00000002" / "model.safetensors").read_bytes()
    nan_data = data.clone()
    nan_data[7, 1] = float("nan")
    bad = [
        (dict(data=data.long()), "floating tensor"),
        (dict(data=data[:, 0]), "floating tensor"),
        (dict(data=nan_data), "non-finite values .first at sample 7"),
        (dict(labels=labels.float()), "int64"),
        (dict(labels=labels[:-1]), "int64"),
        (dict(labels=torch.where(labels == 3, 8, labels)), r"labels must lie in \[0, 8\)"),
        (dict(target="noise"), "unknown prediction target"),
        (dict(density="beta"), "unknown time density"),
        (dict(weight="p7"), "unknown loss weight"),
        (dict(coupling="sinkhorn"), "unknown coupling"),
        (dict(lr=2e-2), "cannot resume: settings differ.*lr"),
        (dict(resume=False), "already holds checkpoints"),
        (dict(batch_size=1024), "cannot fill one batch"),
        (dict(learning_rate=1.0), "unknown training option"),
    ]
    for change, message in bad:
        kw = dict(data=data, labels=labels, resume=True, **_config(steps=4))
        kw.update(change)
        with pytest.raises(InterpolantError, match=message):
            train(_mlp(0, 8), path, kw.pop("data"), kw.pop("labels"), run_dir=tmp_path, **kw)
    with pytest.raises(InterpolantError, match="num_classes"):
        train(_mlp(0), path, data, labels, **_config())
    assert load_checkpoint(tmp_path / "checkpoints").step == 2
    assert (tmp_path / "checkpoints" / "step_00000002" / "model.safetensors").read_bytes() == saved


def test_bf16_autocast_changes_rounding_but_not_the_loss():
    _, data, _ = _data(512)
    path = ip.paths.VPLinear()
    losses = {}
    for bf16 in (False, True):
        model = _mlp(0)
        with torch.no_grad():  # a non-zero output layer, so the network's precision matters
            model.output.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
        cfg = _config(steps=1, bf16=bf16, label_dropout=0.0, coupling="independent")
        losses[bf16] = train(model, path, data, **cfg).history[0]["loss"]
    assert losses[True] != losses[False]
    assert losses[True] == pytest.approx(losses[False], rel=3e-2)
