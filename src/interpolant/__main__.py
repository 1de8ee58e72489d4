"""``python -m interpolant``: the command line."""

from .app.cli import main

raise SystemExit(main())
