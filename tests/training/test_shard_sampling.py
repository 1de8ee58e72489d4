"""Sampling and evaluation shared by two processes under torchrun (gloo, CPU) give bitwise
what one process gives: the same samples, the same eval.json, written once by rank 0."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from interpolant.app.cli import main
from interpolant.app import user_cli
from interpolant.app.draw import BATCH as DEFAULT_BATCH, shard

HERE = Path(__file__).parent
TINY = ('data = "aniso2d"\nn = 2000\nmodel = "mlp"\nmodel_options = { hidden = 32, depth = 2 }\n'
        '[train]\nsteps = 10\nbatch_size = 64\nlog_every = 10\ncheckpoint_every = 10\n')
# 150 samples in batches of 64: three batches, rank 0 draws two (one of 22), rank 1 one
N, BATCH = 150, 64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_command_line_default_batch_is_the_library_default():
    assert user_cli.BATCH == DEFAULT_BATCH


@pytest.mark.parametrize("world", [1, 2, 3])
def test_the_ranks_batches_cover_every_sample_once(world):
    ranges = [r for rank in range(world) for r in shard(N, BATCH, rank, world)]
    covered = torch.cat([torch.arange(lo, hi) for lo, hi in ranges])
    assert torch.equal(covered.sort().values, torch.arange(N))
    assert all(hi - lo <= BATCH for lo, hi in ranges)


def test_two_processes_sample_and_evaluate_exactly_as_one(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(TINY)
    run = tmp_path / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "--run-dir", str(run), "--config", str(tmp_path / "tiny.toml"),
                     "--no-progress", "--threads", "1"]) == 0
        for out in ("one", "two"):
            (tmp_path / out).mkdir()
        sample = ["sample", "--run-dir", str(run), "--n", str(N), "--batch", str(BATCH),
                  "--solver", "ddpm", "--nfe", "5", "--seed", "3"]
        evaluate = ["eval", "--run-dir", str(run), "--solvers", "dpm++2m,euler-maruyama",
                    "--nfe", "4", "--n", str(N), "--batch", str(BATCH), "--no-progress"]
        # two processes first: their eval.json is moved aside before one process writes its own.
        # "--" ends torchrun's options (else it reads --n as an abbreviation of its own)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--nnodes=1", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
               str(HERE / "shard_worker.py"), "--", *sample, "--out", str(tmp_path / "two"), "+",
               *evaluate]
        proc = subprocess.run(cmd, env=env, capture_output=True, timeout=240, text=True)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        assert proc.stdout.count(f"{N} samples, ddpm") == 1  # rank 0 alone prints (and writes)
        two_eval = json.loads((run / "eval.json").read_text())
        (run / "eval.json").unlink()
        assert main([*sample, "--out", str(tmp_path / "one")]) == 0
        assert main(evaluate) == 0
        one_eval = json.loads((run / "eval.json").read_text())
        capsys.readouterr()
        assert main([*sample, "--batch", "0", "--out", str(tmp_path / "one")]) == 2
        assert "--batch" in capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)
    one = load_file(str(tmp_path / "one" / "ddpm_5.safetensors"))["samples"]
    two = load_file(str(tmp_path / "two" / "ddpm_5.safetensors"))["samples"]
    assert one.shape == (N, 2)
    assert torch.equal(one, two)  # bitwise, stochastic solver included
    assert not torch.equal(one[:BATCH], one[BATCH:2 * BATCH])  # the batches differ
    for row in (*one_eval["rows"], *two_eval["rows"]):
        row.pop("seconds")
    assert one_eval == two_eval  # every measure and the noise floor, to the last digit
