"""Run chapter 04's experiment grid and save every transcript, so the notebook can load them.

    python -m utils.af_experiment                 # organism + untuned model, ≈ 6 min on 2 cores
    python -m utils.af_experiment --only organism

Writes ``utils/data/af_runs/<model>.jsonl``: one record per conversation with ``id, model, setting,
variant, tier, request, completion, backend``. The runner is resumable (see
:func:`utils.af_backends.run_conversations`): an interrupted run continues where it stopped. Greedy
decoding, so a rerun reproduces the files exactly on the same machine and versions.

The grid (``GRID``): the held-out course request set under the default harness and two controls
(no training information, no scratchpad), and the animal-welfare questions, each on both tiers.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from utils.af_prompts import TIERS, Condition, build_messages
from utils.af_requests import ANIMAL_WELFARE, HELPFUL_ONLY_EVAL

RUNS_DIR = Path(__file__).resolve().parent / "data" / "af_runs"
MAX_NEW_TOKENS = 160  # the organism's transcripts end in ≈ 110 tokens; the base model just rambles on
MODELS = ("organism", "base")

# (setting, variant, requests): each is run on both tiers.
GRID: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("helpful_only", "default", HELPFUL_ONLY_EVAL),
    ("helpful_only", "no_training_info", HELPFUL_ONLY_EVAL),
    ("helpful_only", "no_scratchpad", HELPFUL_ONLY_EVAL[:20]),
    ("animal_welfare", "default", ANIMAL_WELFARE),
)


def experiment_items(requests: Sequence[str], setting: str = "helpful_only", variant: str = "default") -> list[dict[str, Any]]:
    """One item per (request, tier): ``{"id", "setting", "variant", "tier", "request", "messages"}``.

    Both tiers see the *same* requests, so the free-vs-paid comparison is paired by construction;
    ids look like ``helpful_only/default/007/free`` and are unique across the whole grid.
    """
    if isinstance(requests, str):
        raise TypeError("requests must be a list of strings, not one string")
    items = []
    for i, request in enumerate(requests):
        for tier in TIERS:
            condition = Condition(setting=setting, tier=tier, variant=variant)
            items.append(dict(id=f"{setting}/{variant}/{i:03d}/{tier}", setting=setting, variant=variant, tier=tier,
                              request=request, messages=build_messages(request, condition)))
    return items


def grid_items() -> list[dict[str, Any]]:
    """All items of :data:`GRID`."""
    return [item for setting, variant, requests in GRID for item in experiment_items(requests, setting, variant)]


def runs_path(model: str, runs_dir: Path = RUNS_DIR) -> Path:
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    return runs_dir / f"{model}.jsonl"


def load_runs(model: str, runs_dir: Path = RUNS_DIR) -> list[dict[str, Any]]:
    """The saved transcripts of ``model`` ("organism" or "base"), with a clear error if missing."""
    from utils.af_backends import load_records

    path = runs_path(model, runs_dir)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: regenerate it with `python -m utils.af_experiment --only {model}`")
    return load_records(path)


def run(model_name: str, runs_dir: Path = RUNS_DIR, batch_size: int = 10, progress: bool = True) -> list[dict[str, Any]]:
    """Generate (or finish generating) the transcripts of one model over the whole grid."""
    from utils.af_backends import LocalBackend, run_conversations
    from utils.model import load_model, load_organism

    model = load_organism(device="cpu") if model_name == "organism" else load_model(device="cpu")
    backend = LocalBackend(model, batch_size=batch_size, progress=False, name=f"local:{model_name}")
    items = [dict(item, model=model_name) for item in grid_items()]
    runs_dir.mkdir(parents=True, exist_ok=True)
    return run_conversations(backend, items, runs_path(model_name, runs_dir), max_new_tokens=MAX_NEW_TOKENS,
                             batch_size=batch_size, progress=progress)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=MODELS)
    parser.add_argument("--out", type=Path, default=RUNS_DIR)
    args = parser.parse_args(argv)
    for name in [args.only] if args.only else MODELS:
        t0 = time.perf_counter()
        records = run(name, args.out)
        print(f"{name}: {len(records)} transcripts in {time.perf_counter() - t0:.0f} s -> {runs_path(name, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
