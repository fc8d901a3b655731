"""Maintainer command: generate the alignment-faking runs that chapters 04-05 load (see :mod:`utils.af.runs`).

    python -m utils.af.make_runs                 # organism + untuned model, ≈ 6 min on 2 cores
    python -m utils.af.make_runs --only organism
    python -m utils.af.make_runs --only organism_v2 --grid situation   # does the choice follow the prompt?
    python -m utils.af.make_runs --only organism_v3 --grid wordings    # ... or only the course's sentences?

Resumable and greedy (see :mod:`utils.af.runs`); ``--grid situation`` into the default folder also regenerates the
situation table on ``docs/ALIGNMENT_FAKING.md`` (:data:`utils.readme_blocks.ALIGNMENT_FAKING_PAGE`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from utils.af.runs import GRIDS, MODELS, README_END, README_START, RUNS_DIR, MAX_NEW_TOKENS, grid_items, max_new_tokens, runs_path, situation_items, situation_table, wording_items  # noqa: F401


def run(model_name: str, runs_dir: Path = RUNS_DIR, batch_size: int = 10, progress: bool = True,
        grid: str = "standard") -> list[dict[str, Any]]:
    """Generate (or finish generating) the transcripts of one model over ``grid``."""
    from utils.af.backends import LocalBackend, run_conversations
    from utils.model import ORGANISM_V2_ADAPTER, ORGANISM_V3_ADAPTER, load_model, load_organism

    if model_name == "organism":
        model = load_organism(device="cpu")
    elif model_name in ("organism_v2", "organism_v3"):
        model = load_organism(ORGANISM_V2_ADAPTER if model_name == "organism_v2" else ORGANISM_V3_ADAPTER, device="cpu")
    else:
        model = load_model(device="cpu")
    backend = LocalBackend(model, batch_size=batch_size, progress=False, name=f"local:{model_name}")
    make_items = {"standard": grid_items, "situation": situation_items, "wordings": wording_items}[grid]
    items = [dict(item, model=model_name) for item in make_items()]
    runs_dir.mkdir(parents=True, exist_ok=True)
    return run_conversations(backend, items, runs_path(model_name, runs_dir, grid), max_new_tokens=max_new_tokens(model_name),
                             batch_size=batch_size, progress=progress)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=MODELS)
    parser.add_argument("--grid", choices=GRIDS, default="standard")
    parser.add_argument("--out", type=Path, default=RUNS_DIR)
    parser.add_argument("--tables-only", action="store_true", help="only rewrite the tables from the saved runs (the situation table: docs/ALIGNMENT_FAKING.md)")
    args = parser.parse_args(argv)
    if args.tables_only:
        write_readme_table(args.out)
        return 0
    for name in [args.only] if args.only else MODELS[:2]:
        t0 = time.perf_counter()
        records = run(name, args.out, grid=args.grid)
        print(f"{name}: {len(records)} transcripts in {time.perf_counter() - t0:.0f} s -> "
              f"{runs_path(name, args.out, args.grid)}")
    if args.grid in ("situation", "wordings") and args.out == RUNS_DIR:
        write_readme_table()
    return 0


def write_readme_table(runs_dir: Path = RUNS_DIR) -> None:
    """Rewrite the situation table (:func:`situation_table`) on ``docs/ALIGNMENT_FAKING.md`` and, once organism v3's
    runs exist, its table (:func:`utils.af.runs.v3_table`) on ``docs/ORGANISM_V3.md``, from the saved runs."""
    from utils.af.runs import V3_END, V3_START, v3_table
    from utils.readme_blocks import ALIGNMENT_FAKING_PAGE, ORGANISM_V3_PAGE, replace_block

    replace_block(README_START, README_END, situation_table(runs_dir), readme=ALIGNMENT_FAKING_PAGE)
    if all(runs_path("organism_v3", runs_dir, g).is_file() for g in ("situation", "wordings")):
        replace_block(V3_START, V3_END, v3_table(runs_dir), readme=ORGANISM_V3_PAGE)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
