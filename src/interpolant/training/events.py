"""TensorBoard event files beside ``metrics.jsonl``: the same scalars, when TensorBoard is
installed (the optional extra ``pip install 'interpolant[tensorboard]'``); nothing otherwise.

The trainer hands every logged record to :meth:`EventLog.write` (rank 0): each number in it
but ``step`` becomes a scalar of that name at that step, in ``RUN/tensorboard/``. View them
with ``tensorboard --logdir RUN``. A resumed run starts its writer with ``purge_step`` at its
first new step, so the steps logged after the checkpoint and before a kill are dropped from
the event files as ``metrics.jsonl`` drops them, not shown twice.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["EventLog", "available"]

FOLDER = "tensorboard"


def available() -> bool:
    """Whether the ``tensorboard`` package (which writes the event files) is installed."""
    return importlib.util.find_spec("tensorboard") is not None


class EventLog:
    """``EventLog(run_dir)``: writes records to ``run_dir/tensorboard`` (opened on the first
    record, only where TensorBoard is installed)."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.folder = Path(run_dir) / FOLDER
        self.enabled = available()
        self._writer: Any = None

    def write(self, record: dict[str, Any]) -> None:
        """The record's numbers (not ``step``) as scalars at ``record["step"]``."""
        if not self.enabled:
            return
        step = int(record["step"])
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.folder), purge_step=step)
        for name, value in record.items():
            if name != "step" and isinstance(value, (int, float)) and not isinstance(
                    value, bool) and math.isfinite(value):
                self._writer.add_scalar(name, value, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
