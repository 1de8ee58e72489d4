"""Checkpoints: round trip, refusal of damaged files, atomicity under a crash mid-save."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from interpolant.errors import InterpolantError
from interpolant.training import checkpoint as ckpt_mod
from interpolant.training import load_checkpoint, save_checkpoint


def _state(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.95))
    model(torch.randn(5, 4)).pow(2).sum().backward()
    opt.step()
    return model, opt


def _save(d, step, seed):
    model, opt = _state(seed)
    save_checkpoint(d, step, model, optimizer=opt, rng={"g": torch.Generator().get_state()},
                    config={"seed": seed})
    return model, opt


def test_round_trip_restores_model_and_optimizer(tmp_path):
    model, opt = _save(tmp_path, 3, 0)
    ck = load_checkpoint(tmp_path)
    assert ck.step == 3 and ck.config == {"seed": 0}
    for k, v in model.state_dict().items():
        assert torch.equal(ck.tensors["model"][k], v)
    fresh = torch.optim.AdamW(torch.nn.Linear(4, 3).parameters())
    fresh.load_state_dict(ck.optimizer_state())
    ref, got = opt.state_dict(), fresh.state_dict()
    assert got["param_groups"] == ref["param_groups"]  # betas back as a tuple, lr, ...
    for pid, entry in ref["state"].items():
        for name, value in entry.items():
            assert torch.equal(got["state"][pid][name], value)
    assert not list(tmp_path.glob(".tmp-*"))


def test_truncated_or_corrupted_checkpoint_is_refused(tmp_path):
    _save(tmp_path, 1, 0)
    step_dir = tmp_path / "step_00000001"
    target = step_dir / "model.safetensors"
    good = target.read_bytes()
    target.write_bytes(good[:-7])
    with pytest.raises(InterpolantError, match="truncated: model.safetensors"):
        load_checkpoint(tmp_path)
    flipped = bytearray(good)
    flipped[-3] ^= 0x01  # same size, one bit of a weight changed
    target.write_bytes(bytes(flipped))
    with pytest.raises(InterpolantError, match="corrupted: the SHA-256 of model.safetensors"):
        load_checkpoint(tmp_path)
    target.write_bytes(good)
    load_checkpoint(tmp_path)  # intact again
    manifest = step_dir / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])
    with pytest.raises(InterpolantError, match="unreadable"):
        load_checkpoint(tmp_path)


def test_a_failing_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model1, _ = _save(tmp_path, 1, 0)
    real = ckpt_mod._write_file
    calls = []

    def broken(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 2:  # second file: half written, then the disk "fails"
            path.write_bytes(data[: len(data) // 2])
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(ckpt_mod, "_write_file", broken)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, 2, 1)
    monkeypatch.setattr(ckpt_mod, "_write_file", real)
    ck = load_checkpoint(tmp_path)
    assert ck.step == 1 and torch.equal(ck.tensors["model"]["weight"], model1.weight.detach())
    _save(tmp_path, 2, 1)  # the leftover temporary directory does not get in the way
    assert load_checkpoint(tmp_path).step == 2


def test_a_process_killed_mid_save_leaves_the_previous_checkpoint(tmp_path):
    script = textwrap.dedent(f"""
        import os, torch
        from interpolant.training import checkpoint as c
        d = {str(tmp_path)!r}
        torch.manual_seed(0)
        m = torch.nn.Linear(4, 3)
        c.save_checkpoint(d, 1, m, config={{"n": 1}})
        real, n = c._write_file, []
        def dying(path, data):
            n.append(1)
            if len(n) == 2:
                with open(path, "wb") as f:
                    f.write(data[: len(data) // 3]); f.flush()
                os._exit(17)  # killed: no cleanup, no exception handlers
            real(path, data)
        c._write_file = dying
        with torch.no_grad():
            m.weight.add_(1.0)
        c.save_checkpoint(d, 2, m, ema=m, config={{"n": 2}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 17, proc.stderr.decode()[-2000:]
    assert list(tmp_path.glob(".tmp-step_00000002-*"))  # the half-written attempt is there
    ck = load_checkpoint(tmp_path)
    torch.manual_seed(0)
    assert ck.step == 1 and ck.config == {"n": 1}
    assert torch.equal(ck.tensors["model"]["weight"], torch.nn.Linear(4, 3).weight.detach())
    assert json.loads((tmp_path / "step_00000001" / "manifest.json").read_text())["step"] == 1


def test_old_checkpoints_are_pruned_only_after_a_new_one_is_complete(tmp_path):
    for step in (1, 2, 3):
        _save(tmp_path, step, step)
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert names == ["step_00000002", "step_00000003"]
    assert (tmp_path / "LATEST").read_text() == "step_00000003"
    with pytest.raises(InterpolantError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def test_a_manifest_without_its_files_is_refused_not_a_key_error(tmp_path):
    _save(tmp_path, 1, 0)
    manifest = tmp_path / "step_00000001" / "manifest.json"
    raw = json.loads(manifest.read_text())
    del raw["files"]
    manifest.write_text(json.dumps(raw))
    with pytest.raises(InterpolantError, match="manifest.json lacks"):
        load_checkpoint(tmp_path)


def test_newest_valid_skips_damaged_checkpoints_and_ignores_a_lost_latest(tmp_path):
    from interpolant.training.checkpoint import newest_valid

    assert newest_valid(tmp_path / "none") == (None, [])
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, torch.nn.Linear(2, 2), config={"step": step}, keep=3)
    (tmp_path / "LATEST").unlink()
    assert newest_valid(tmp_path)[0].step == 3  # LATEST lost: the newest directory still counts
    weights = tmp_path / "step_00000003" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1])
    found, skipped = newest_valid(tmp_path)
    assert found.step == 2 and len(skipped) == 1 and "step_00000003" in skipped[0]
    for step in (1, 2):
        (tmp_path / f"step_{step:08d}" / "manifest.json").write_text("{")
    with pytest.raises(InterpolantError, match="no checkpoint in .* verifies"):
        newest_valid(tmp_path)
