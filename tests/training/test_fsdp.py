"""FSDP under torchrun (two gloo processes on the CPU): each rank holds half of the weights,
yet the run trains as one process with both ranks' batches does (checkpoints of full tensors,
also after resuming under FSDP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from interpolant.errors import InterpolantError
from interpolant.training import TrainConfig, load_checkpoint

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import fsdp_worker  # noqa: E402
from test_ddp import _free_port  # noqa: E402


def _checkpoint(run, step):
    return load_checkpoint(run / "checkpoints" / f"step_{step:08d}")


def _assert_same(fsdp, one, what):
    for part in ("model", "ema"):
        assert fsdp.tensors[part].keys() == one.tensors[part].keys()
        for key, value in one.tensors[part].items():
            # float32 sums in another order; AdamW's first steps divide by |g| (ddp test)
            torch.testing.assert_close(fsdp.tensors[part][key], value, rtol=1e-4, atol=3e-4,
                                       msg=f"{what} {part}.{key}")
    moments = [k for k in one.tensors["optimizer"] if "exp_avg" in k]
    assert moments
    for key in moments:
        torch.testing.assert_close(fsdp.tensors["optimizer"][key],
                                   one.tensors["optimizer"][key], rtol=1e-3, atol=1e-6,
                                   msg=f"{what} optimizer {key}")


def test_two_fsdp_processes_train_as_one_process_with_both_batches(tmp_path):
    b = 32
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(HERE), str(HERE.parent.parent / "src"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           str(HERE / "fsdp_worker.py"), str(tmp_path), str(b)]
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=240)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()[-4000:]
    # sharded: each rank held part of every weight (half of its rows, rounded), the two
    # parts the whole
    held = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for name, (mine, whole) in held[0].items():
        assert mine + held[1][name][0] == whole, name
        assert 0 < mine < whole and abs(2 * mine - whole) <= whole // 4, name
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = tmp_path / "one"
        fsdp_worker.trainer(2 * b, ref, fsdp_worker.STEPS, fsdp=False).run()
        steps = fsdp_worker.STEPS + fsdp_worker.MORE
        fsdp_worker.trainer(2 * b, ref, steps, fsdp=False, resume=True).run()
    finally:
        torch.set_num_threads(threads)
    for step in (fsdp_worker.STEPS, steps):
        _assert_same(_checkpoint(tmp_path / "run", step), _checkpoint(ref, step), f"step {step}")
    # control: the training moved the weights well beyond the tolerance
    start = _checkpoint(ref, fsdp_worker.STEPS).tensors["model"]
    end = _checkpoint(ref, steps).tensors["model"]
    assert max(float((end[k] - start[k]).abs().max()) for k in end) > 1e-2


def test_train_fsdp_is_recorded_and_one_process_trains_as_usual(tmp_path, capsys):
    from support.cli import run_cli

    threads = torch.get_num_threads()
    try:
        code, _, err = run_cli(capsys, "train", "--run-dir", tmp_path / "r", "--data", "moons",
                               "--model", "mlp", "--steps", "1", "--batch-size", "8",
                               "--fsdp", "--no-progress", "--threads", "1")
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["fsdp"] is True
    assert load_checkpoint(tmp_path / "r" / "checkpoints").step == 1


def test_fsdp_refuses_the_power_emas_it_does_not_shard():
    with pytest.raises(InterpolantError, match="fsdp does not shard"):
        TrainConfig(fsdp=True, ema_sigma_rels=(0.05, 0.1))
