"""Alignment faking (chapters 04-05): the harness, request sets, transcript parsing, classifiers, statistics, backends,
the saved runs, and the interpretability helpers of chapter 05. Maintainer commands (``make_runs``,
``train_organism``, ``make_inside``) live here too but are never imported by the notebooks' helpers."""
