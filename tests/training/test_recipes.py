"""Training recipes: composition, conflicts, and `interpolant train --recipe` end to end."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from support.cli import run_cli

import interpolant as ip
from interpolant.app.runs import RunConfig, load_trained
from interpolant.errors import InterpolantError
from interpolant.training import TrainConfig, recipes
from interpolant.training.calibration import CalibratedNet
from interpolant.training.etsdm import SharedTimeNet
from interpolant.training.recipes import RECIPES, Recipe
from interpolant.training.uncertainty import UncertaintyObjective


def test_recipes_compose_when_they_set_different_things():
    assert recipes.train_overrides("sd3,p2", {}) == {"density": "logit-normal", "weight": "p2"}
    assert recipes.run_overrides("sd3,p2") == {"path": "linear", "target": "velocity"}
    edm2 = recipes.train_overrides("edm2-loss,etsdm", {"steps": 400})
    assert edm2["ema_snapshot_every"] == 20 and edm2["ema_sigma_rels"] == [0.05, 0.10]
    path = ip.paths.VPLinear()
    config = TrainConfig(**{k: v for k, v in edm2.items()}, target="x0")
    assert isinstance(recipes.build_objective("edm2-loss,etsdm", path, config, None),
                      UncertaintyObjective)
    net = recipes.wrap_network("p2,etsdm", torch.nn.Linear(2, 2))
    assert isinstance(net, SharedTimeNet) and recipes.build_objective("p2", path, config,
                                                                      net) is None


def test_conflicting_or_unknown_recipes_are_refused_in_one_line(monkeypatch):
    cases = [("p2,min-snr", "recipes p2 and min-snr both set weight"),
             ("sd3,edm2-loss", "recipes sd3 and edm2-loss both set density"),
             ("sd3,cosmic", "unknown recipe 'cosmic'; choose one of: .*edm2-loss.*sd3"),
             (" ", "a recipe is a name or names joined by commas")]
    for spec, message in cases:
        with pytest.raises(InterpolantError, match=message):
            recipes.resolve(spec)
    monkeypatch.setitem(RECIPES, "needs-edm2", Recipe("test", models=("edm2",)))
    with pytest.raises(InterpolantError, match="recipe needs-edm2 needs the network edm2, but "
                                               "the run uses unet; drop --model"):
        RunConfig(recipe="p2,needs-edm2", model="unet").check()
    monkeypatch.setitem(RECIPES, "other-loss", Recipe("test", objective=lambda p, c, n: None))
    with pytest.raises(InterpolantError, match="edm2-loss and other-loss both replace the loss"):
        recipes.resolve("edm2-loss,other-loss")


def test_train_recipe_end_to_end(tmp_path, capsys):
    # E-TSDM's wrapper, EDM2's loss and power EMA, and the calibration through the command
    # line: config.json keeps the recipe and what it resolved to, snapshots and the calibration
    # were saved, the run loads for sampling (wrapper and calibration included), and --resume
    # with another recipe is refused.
    run, config = tmp_path / "run", tmp_path / "run.toml"
    config.write_text('data = "moons"\nmodel = "mlp"\nn = 256\ntarget = "x0"\n'
                      'model_options = { hidden = 16, depth = 1 }\n'
                      '[train]\nbatch_size = 64\nwarmup = 0\nlog_every = 10\n')
    code, _, err = run_cli(capsys, "train", "--run-dir", run, "--config", config,
                           "--recipe", "etsdm,edm2-loss,calibrate", "--steps", "20",
                           "--no-progress", "--threads", "1")
    assert code == 0, err
    saved = json.loads((run / "config.json").read_text())
    assert saved["recipe"] == "etsdm,edm2-loss,calibrate"
    # the snapshot interval follows --steps (20 // 20), not the default 2000 steps
    assert saved["train"]["density"] == "edm2" and saved["train"]["ema_snapshot_every"] == 1
    assert len(list((run / "ema_snapshots").iterdir())) == 20
    trained = load_trained(run)
    assert isinstance(trained.denoiser.model, CalibratedNet)
    assert isinstance(trained.denoiser.model.net, SharedTimeNet)
    assert trained.denoiser.model.calibration.eta.shape == (32, 2)
    x = torch.randn(4, 2)
    assert torch.isfinite(trained.denoiser(x, torch.full((4,), 0.05), target="x0")).all()
    # post-hoc EMA of another length from the snapshots: a new run that loads like any run
    code, out, err = run_cli(capsys, "posthoc-ema", "--run-dir", run, "--sigma-rel", "0.08",
                             "--out", tmp_path / "ema08")
    assert code == 0, err
    vec = torch.nn.utils.parameters_to_vector
    ema08 = load_trained(tmp_path / "ema08").denoiser.model
    assert isinstance(ema08.net, SharedTimeNet)
    assert not torch.equal(vec(ema08.parameters()), vec(trained.denoiser.model.parameters()))
    shutil.rmtree(run / "ema_snapshots")
    code, _, err = run_cli(capsys, "posthoc-ema", "--run-dir", run, "--sigma-rel", "0.08",
                           "--out", tmp_path / "none")
    assert code == 2 and "no post-hoc EMA snapshots in" in err and len(err.splitlines()) == 1
    code, _, err = run_cli(capsys, "train", "--run-dir", run, "--resume", "--recipe", "sd3")
    assert code == 2 and "trained with recipe 'etsdm,edm2-loss,calibrate', not 'sd3'" in err
