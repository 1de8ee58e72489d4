"""TensorBoard event files beside metrics.jsonl hold the same scalars at the same steps (also
across a resume); without TensorBoard nothing is written."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import interpolant as ip
from interpolant.models import MLP
from interpolant.training import TrainConfig, Trainer, events


def _trainer(run_dir, steps, resume=False):
    torch.manual_seed(0)
    x = ip.data.toy("moons", 256, seed=0)
    config = TrainConfig(target="v", steps=steps, batch_size=32, lr=1e-2, progress=False,
                         log_every=1, checkpoint_every=2, ema_halflife=100)
    return Trainer(MLP(2, hidden=16, depth=1), ip.paths.VPLinear(), x, None, config,
                   run_dir=run_dir, resume=resume)


def _scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_event_files_hold_the_logged_scalars_once_per_step(tmp_path):
    pytest.importorskip("tensorboard")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _trainer(tmp_path, 3).run()
        # as if killed before the final checkpoint: resume from step 2, so step 3, logged
        # after it, is logged again (and must not show twice)
        shutil.rmtree(tmp_path / "checkpoints" / "step_00000003")
        again = _trainer(tmp_path, 5, resume=True)
        assert again.step_count == 2
        again.run()
    finally:
        torch.set_num_threads(threads)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5]
    scalars = _scalars(tmp_path / "tensorboard")
    assert {"loss", "grad_norm", "lr", "samples_per_s"} <= set(scalars)
    assert [s for s, _ in scalars["loss"]] == [1, 2, 3, 4, 5]  # the purged step 3 once
    for (step, value), record in zip(scalars["loss"], logged):
        assert value == pytest.approx(record["loss"], rel=1e-6)  # stored as float32
    assert [v for _, v in scalars["lr"]] == pytest.approx([r["lr"] for r in logged])


def test_without_tensorboard_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "available", lambda: False)
    log = events.EventLog(tmp_path)
    log.write({"step": 1, "loss": 0.5})
    log.close()
    assert not (tmp_path / "tensorboard").exists()
