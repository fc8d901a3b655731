"""``python -m utils.grade``: see :mod:`utils.grade.batch`."""

from utils.grade.batch import main

raise SystemExit(main())
