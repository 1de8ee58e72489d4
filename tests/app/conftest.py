"""A tiny class-conditional digits run, trained once per test session (about 20 s on one
core), shared by the guidance, restoration, edit and demo-page tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cli import train_tiny_run

TINY_DIGITS = ('model_options = { base_channels = 16, attention_levels = [] }\n[train]\n'
               'steps = 120\nbatch_size = 64\nlr = 3e-3\nwarmup = 20\nema_halflife = 20\n'
               'log_every = 60\ncheckpoint_every = 120\n')


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A finished class-conditional U-Net run on the digits (CFG label dropout 0.1)."""
    return train_tiny_run(tmp_path_factory.mktemp("digits"), TINY_DIGITS)


def _files(folder: Path) -> set[Path]:
    return {p for p in Path(folder).rglob("*") if p.is_file()}


@pytest.fixture
def files_under():
    """``files_under(folder)``: every file below it (a refused command writes nothing)."""
    return _files
