"""Two processes under torchrun (gloo, CPU) compute what one process computes on both batches."""

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

from interpolant.training import load_checkpoint

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import ddp_worker  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_with_batch_b_equal_one_process_with_batch_2b(tmp_path):
    b = 32
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           str(HERE / "ddp_worker.py"), str(tmp_path), str(b)]
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=240)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()[-4000:]
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(2)]

    reference = ddp_worker.setup(2 * b)
    indices = reference.batch_indices(0)
    # the ranks' shards are the two halves of the single process's batch: disjoint, complete
    assert torch.equal(torch.cat([ranks[0]["indices"], ranks[1]["indices"]]), indices)
    reference.step()
    expected = ddp_worker.snapshot(reference)
    for rank in ranks:
        for key, value in expected.items():
            # all-reduced gradient = gradient of the mean loss over the 2b samples. Parameters
            # after AdamW's first step move by lr g / (|g| + 1e-8): for the odd |g| ~ 1e-8 that
            # amplifies float32 summation-order differences, hence atol 1e-4 = 1% of lr there.
            atol = 1e-7 if key.startswith("grad.") else 1e-4
            torch.testing.assert_close(rank[key], value, rtol=1e-5, atol=atol, msg=key)
    # control: one rank's own (un-reduced) gradient differs from the global one
    local = ddp_worker.setup(b)
    local.step()
    own = ddp_worker.snapshot(local)
    for key, value in expected.items():
        if key.startswith("grad."):
            assert value.abs().max() > 0, key  # no parameter passes the test trivially
    assert not torch.allclose(own["grad.input.weight"], expected["grad.input.weight"], rtol=1e-3)

    result = reference.run()
    for r in range(2):
        final = load_file(str(tmp_path / f"final{r}.safetensors"))
        for key, value in result.model.state_dict().items():
            torch.testing.assert_close(final[key], value, rtol=1e-4, atol=3e-4, msg=key)
    # rank 0 alone wrote the checkpoint and the metrics: each step of run() logged once
    assert load_checkpoint(tmp_path / "run" / "checkpoints").step == ddp_worker.STEPS
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert [r["step"] for r in logged] == list(range(2, ddp_worker.STEPS + 1))
    for got, ref in zip(logged, result.history):  # the logged loss is the mean over ranks
        assert got["loss"] == pytest.approx(ref["loss"], rel=1e-4)
