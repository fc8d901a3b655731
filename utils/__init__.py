"""Helpers, reference implementations, exercise checks and the grader of the course.

Nothing here does work at import time: import the submodule you need, e.g.
``from utils.model import load_model``.
"""
