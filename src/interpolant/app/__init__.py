"""The command line and what only it uses: run directories (:mod:`.runs`), the train / sample /
eval / demo workflows (:mod:`.workflows`, :mod:`.evaluate`), the HTML report (:mod:`.report`)
and the ``interpolant`` command itself (:mod:`.cli`).

The library (paths, solvers, training, metrics, ...) never imports from here.
"""
