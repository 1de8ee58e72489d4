"""Worker for tests/test_training_ddp.py, launched with ``torchrun --nproc_per_node=N``.

Usage: ``torchrun --nproc_per_node=2 tests/ddp_worker.py OUT_DIR BATCH_PER_RANK``.
Each rank trains the same model the test trains in one process, writes after the first step its
(all-reduced) gradients and parameters to ``OUT_DIR/rank<r>.safetensors``, then runs on to
``STEPS`` with ``run_dir=OUT_DIR/run`` (rank 0 checkpoints and logs).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import interpolant as ip
from interpolant.models import MLP
from interpolant.training import TrainConfig, Trainer

STEPS = 3


def setup(batch_size: int, run_dir: str | Path | None = None) -> Trainer:
    """The trainer both the workers and the single-process reference build."""
    torch.manual_seed(0)
    model = MLP(2, hidden=32, depth=1, num_classes=8)
    with torch.no_grad():  # non-zero output layer: every parameter gets a gradient at step 1
        model.output.weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(1))
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    x, y = gmm.sample(1024, torch.Generator().manual_seed(0), return_labels=True)
    config = TrainConfig(target="v", steps=STEPS, batch_size=batch_size, lr=1e-2,
                         density="logit-normal", weight="min-snr", label_dropout=0.3,
                         ema_halflife=256, clip_grad=None, progress=False, log_every=1)
    return Trainer(model, ip.paths.VPLinear(), x.float(), y, config, run_dir=run_dir)


def snapshot(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {}
    for name, p in trainer.module.named_parameters():
        out[f"param.{name}"] = p.detach().clone()
        out[f"grad.{name}"] = p.grad.detach().clone()
    return out


def main() -> None:
    out, batch = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    trainer = setup(batch, out / "run")
    rank, world = trainer.rank, trainer.world
    assert world == 2, f"expected 2 processes, got {world}"
    indices = trainer.batch_indices(0)
    trainer.step()
    tensors = snapshot(trainer)
    tensors["indices"] = indices
    save_file(tensors, str(out / f"rank{rank}.safetensors"))
    result = trainer.run()
    final = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
    save_file(final, str(out / f"final{rank}.safetensors"))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
