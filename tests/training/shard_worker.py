"""Worker of test_shard_sampling.py, launched with ``torchrun --nproc_per_node=2``.

Usage: ``torchrun --nproc_per_node=2 shard_worker.py ARGV1 + ARGV2 + ...``: runs
``interpolant ARGV1``, then ``interpolant ARGV2``, ... in this process (one process group for
all), and exits with the first non-zero status.
"""

from __future__ import annotations

import sys

import torch

from interpolant.app.cli import main as cli


def main() -> int:
    torch.set_num_threads(1)
    commands, current = [], []
    for word in sys.argv[1:] + ["+"]:
        if word == "+":
            commands.append(current)
            current = []
        else:
            current.append(word)
    for argv in commands:
        status = cli(argv)
        if status:
            return status
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
