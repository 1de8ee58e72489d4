"""`interpolant bench training`, runnable from a checkout; the benchmark lives in
`src/interpolant/bench/training.py`."""

import sys

from interpolant.bench.training import main

raise SystemExit(main(sys.argv[1:]))
