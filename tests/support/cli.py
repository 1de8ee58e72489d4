"""Run the command line in-process, as the app tests do."""

from __future__ import annotations

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
