"""`interpolant bench solvers`, runnable from a checkout; the benchmark lives in
`src/interpolant/bench/solvers.py`."""

import sys

from interpolant.bench.solvers import main

raise SystemExit(main(sys.argv[1:]))
