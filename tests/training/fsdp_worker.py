"""Worker of test_fsdp.py, launched with ``torchrun --nproc_per_node=2``.

Usage: ``torchrun --nproc_per_node=2 fsdp_worker.py OUT_DIR BATCH_PER_RANK``. Each rank trains
the model of ``ddp_worker.setup`` with ``fsdp=True`` for ``STEPS`` steps into ``OUT_DIR/run``
(rank 0 writes the checkpoint), records how much of each parameter it holds in
``OUT_DIR/rank<r>.json``, then resumes the run under FSDP for ``MORE`` steps.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

import ddp_worker
from interpolant.training import Trainer

STEPS, MORE = ddp_worker.STEPS, 2


def trainer(batch: int, run_dir: Path | None, steps: int, fsdp: bool,
            resume: bool = False) -> Trainer:
    """ddp_worker's trainer with gradient clipping, ``steps`` steps, FSDP on or off."""
    base = ddp_worker.setup(batch)
    config = replace(base.config, steps=steps, fsdp=fsdp, clip_grad=0.5)
    return Trainer(base.module, base.path, base.data, base.labels, config, run_dir=run_dir,
                   resume=resume)


def main() -> None:
    out, batch = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    first = trainer(batch, out / "run", STEPS, fsdp=True)
    assert first.world == 2, f"expected 2 processes, got {first.world}"
    first.run()
    held = {name: [p.to_local().numel(), p.numel()] for name, p in first.module.named_parameters()}
    (out / f"rank{first.rank}.json").write_text(json.dumps(held))
    trainer(batch, out / "run", STEPS + MORE, fsdp=True, resume=True).run()
    # both ranks finish their collectives before either tears gloo down (an early exit of one
    # rank once aborted the other with "terminate called without an active exception")
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
