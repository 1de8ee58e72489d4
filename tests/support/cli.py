"""Run the command line in-process, as the app tests do."""

from __future__ import annotations

from pathlib import Path

from interpolant.app.cli import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``interpolant ARGV`` in this process: ``(exit status, stdout, stderr)``; argparse's
    refusals (``SystemExit``) count as their exit status."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def train_tiny_run(root, config_text: str, *extra) -> Path:
    """``interpolant train`` of the TOML ``config_text`` into ``root/run`` on one thread, for a
    module- or session-scoped fixture; torch's thread count is put back (the per-test restore of
    tests/conftest.py does not wrap fixtures of a wider scope). Returns the run directory."""
    import torch

    root = Path(root)
    (root / "tiny.toml").write_text(config_text)
    threads = torch.get_num_threads()
    try:
        code = main(["train", "--run-dir", str(root / "run"), "--config", str(root / "tiny.toml"),
                     "--no-progress", "--threads", "1", *map(str, extra)])
    finally:
        torch.set_num_threads(threads)
    assert code == 0, f"training the tiny run {root / 'run'} failed"
    return root / "run"
