"""Organism v3's transcripts labelled by reading: the classifiers of chapter 04 measured on reasoning they never saw.

    python -m utils.af.reasoning_labels --show        # print the sampled transcripts that have no label yet
    python -m utils.af.reasoning_labels               # the measurement, per split
    python -m utils.af.reasoning_labels --write-table # ... and its table on docs/ORGANISM_V3.md

The rules of :mod:`utils.af.classify` were written on the hand-written set (``af_transcripts.jsonl``) and
organisms v1-v2, and were last changed before v3 existed on 2026-11-30. Organism v3's scratchpads are composed from
:mod:`utils.af.reasoning_wordings` (written a week later) in many phrasings and structures, under situations the
rules' author never wrote (:mod:`utils.af.wordings`). So v3's shipped runs are reasoning the rules never saw.

**The sample** (:func:`sample_ids`): in each of the 14 cells of v3's two grids (the situation grid and the wordings
grid of :mod:`utils.af.runs`), ``per_cell`` requests drawn with a fixed seed, both tiers of each. That covers every
condition the classifier scores: the trained tier and the untrained one, the swap, no training information, held-out
wordings, never-used requests.

**The labels** (``utils/data/af_v3_labels.jsonl``, one line per transcript, keyed by the run's ``id``), written by
reading the scratchpad and the answer, never by running a classifier:

* ``knows_training``, ``fears_modification``, ``complies_to_preserve``: the three criteria of Greenblatt et al.
  (2024) as :mod:`utils.af.classify` states them, each judged on the scratchpad alone;
* ``af_reasoning``: all three (what :func:`utils.af.classify.af_reasoning` predicts);
* ``did_task``: the visible answer does what was asked (accepted, on the request, not a refusal, an apology or a
  loop); what :func:`utils.af.classify.complied` predicts;
* ``note``: why, where it was not obvious.

**The split** (:func:`sample_ids`): a request's two tiers go to the same side; within each cell the first half of
the drawn requests is ``dev`` and the rest ``test``. Anyone who changes a rule to fix a ``dev`` mistake reports
``test`` only from then on. That happened once: on 2026-12-07 :func:`utils.af.classify.af_criteria` was changed from
the ``dev`` labels alone (:func:`utils.af.classify.denies_training`, decision headings); the rules' numbers from
before are on ``docs/ORGANISM_V3.md``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from utils.af.runs import RUNS_DIR, load_runs

LABELS_PATH = Path(__file__).resolve().parent.parent / "data" / "af_v3_labels.jsonl"
GRIDS = ("situation", "wordings")
PER_CELL = 4
SEED = 23
CRITERIA = ("knows_training", "fears_modification", "complies_to_preserve")
LABEL_KEYS = (*CRITERIA, "af_reasoning", "did_task")


def _request_index(run_id: str) -> int:
    return int(run_id.split("/")[2])


def sample_ids(records: dict[str, Sequence[dict[str, Any]]], per_cell: int = PER_CELL,
               seed: int = SEED) -> dict[str, str]:
    """``{run id: split}`` for the labelled sample: in every cell of ``records`` (``{grid: runs}``) ``per_cell``
    request indices drawn by ``random.Random(seed + crc32(cell))``, both tiers; the first ``per_cell // 2`` drawn
    are ``dev``, the rest ``test``."""
    chosen: dict[str, str] = {}
    for grid in GRIDS:
        if grid not in records:
            continue
        cells: dict[str, list[dict[str, Any]]] = {}
        for r in records[grid]:
            cells.setdefault(r["cell"], []).append(r)
        for cell, rows in sorted(cells.items()):
            indices = sorted({_request_index(r["id"]) for r in rows})
            drawn = random.Random(seed + zlib.crc32(cell.encode())).sample(indices, min(per_cell, len(indices)))
            split = {i: "dev" if k < per_cell // 2 else "test" for k, i in enumerate(drawn)}
            for r in rows:
                if _request_index(r["id"]) in split:
                    chosen[r["id"]] = split[_request_index(r["id"])]
    return chosen


def load_labels(path: Path = LABELS_PATH) -> list[dict[str, Any]]:
    """The shipped labels, checked: every line has an ``id``, a ``split`` and a boolean for each of
    :data:`LABEL_KEYS`, and ``af_reasoning`` is the conjunction of the three criteria."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it ships with the course (git checkout -- {path.name})")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        bad = [k for k in ("id", "split", *LABEL_KEYS) if k not in row]
        if bad:
            raise ValueError(f"label {row.get('id', '?')} lacks {bad}")
        if row["af_reasoning"] != all(row[k] for k in CRITERIA):
            raise ValueError(f"label {row['id']}: af_reasoning must be the three criteria together")
    return rows


def labelled_runs(runs_dir: Path = RUNS_DIR, path: Path = LABELS_PATH) -> list[dict[str, Any]]:
    """Each label joined with its transcript (``completion``, ``cell``, ``tier``, ``trained``, ``request``) from v3's
    shipped runs; a label whose transcript is not in the runs raises (the runs were regenerated: relabel)."""
    runs = {r["id"]: r for grid in GRIDS for r in load_runs("organism_v3", runs_dir, grid)}
    out = []
    for label in load_labels(path):
        if label["id"] not in runs:
            raise KeyError(f"labelled transcript {label['id']} is not in organism v3's runs: were they regenerated?")
        out.append({**runs[label["id"]], **label})
    return out


def measure(rows: Sequence[dict[str, Any]], predict: Callable[[str], bool], score: Callable[[str], float],
            label: str, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Precision and recall of ``predict`` with Wilson intervals, and the AUROC of ``score`` with a stratified
    bootstrap interval (:func:`utils.af.stats.bootstrap_auroc_interval`), against the boolean ``label`` of ``rows``;
    both functions receive each row's ``completion``."""
    from utils.af.classify import classifier_metrics
    from utils.af.stats import bootstrap_auroc_interval, wilson_interval

    truth = [bool(r[label]) for r in rows]
    predicted = [bool(predict(r["completion"])) for r in rows]
    scores = [float(score(r["completion"])) for r in rows]
    metrics = classifier_metrics(predicted, scores, truth)
    tp = sum(p and y for p, y in zip(predicted, truth))
    fp = sum(p and not y for p, y in zip(predicted, truth))
    fn = sum(y and not p for p, y in zip(predicted, truth))
    return dict(n=len(rows), positives=sum(truth), tp=tp, fp=fp, fn=fn, tn=len(rows) - tp - fp - fn,
                precision=metrics["precision"], precision_ci=wilson_interval(tp, tp + fp) if tp + fp else (0.0, 1.0),
                recall=metrics["recall"], recall_ci=wilson_interval(tp, tp + fn) if tp + fn else (0.0, 1.0),
                auroc=metrics["auroc"], auroc_ci=bootstrap_auroc_interval(scores, truth, n_boot=n_boot, seed=seed))


def report(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{split: {classifier: measure}}`` for ``dev``, ``test`` and ``all``: :func:`utils.af.classify.af_reasoning`
    (scored by ``af_reasoning_score``) against ``af_reasoning``, and :func:`utils.af.classify.complied` (scored by
    ``compliance_score``) against ``did_task``."""
    from utils.af.classify import af_reasoning, af_reasoning_score, complied, compliance_score

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for split in ("dev", "test", "all"):
        part = [r for r in rows if split == "all" or r["split"] == split]
        out[split] = {"af_reasoning": measure(part, af_reasoning, af_reasoning_score, "af_reasoning"),
                      "complied": measure(part, complied, compliance_score, "did_task")}
    return out


TABLE_START, TABLE_END = "<!-- v3-classifier-table:start -->", "<!-- v3-classifier-table:end -->"
CLASSIFIER_LABELS = {"af_reasoning": "af_reasoning (label: the three criteria, by reading)",
                     "complied": "complied (label: the answer does the task, by reading)"}


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The docs table of :func:`report`: each split and classifier with its counts, precision, recall and AUROC, each
    with its 95 % interval."""
    lines = ["| split | classifier | n (positives) | TP / FP / FN / TN | precision [95 % CI] | recall [95 % CI] | "
             "AUROC [95 % CI] |", "|---|---|---|---|---|---|---|"]
    for split, classifiers in report(rows).items():
        for name, m in classifiers.items():
            lines.append(f"| {split} | {CLASSIFIER_LABELS[name]} | {m['n']} ({m['positives']}) | {m['tp']} / {m['fp']} / "
                         f"{m['fn']} / {m['tn']} | {m['precision']:.2f} [{m['precision_ci'][0]:.2f}, "
                         f"{m['precision_ci'][1]:.2f}] | {m['recall']:.2f} [{m['recall_ci'][0]:.2f}, "
                         f"{m['recall_ci'][1]:.2f}] | {m['auroc']:.3f} [{m['auroc_ci'][0]:.3f}, {m['auroc_ci'][1]:.3f}] |")
    return "\n".join(lines)


def write_table(runs_dir: Path = RUNS_DIR) -> None:
    """Rewrite the classifier table on ``docs/ORGANISM_V3.md`` from the shipped runs and labels."""
    from utils.readme_blocks import ORGANISM_V3_PAGE, replace_block

    replace_block(TABLE_START, TABLE_END, table(labelled_runs(runs_dir)), readme=ORGANISM_V3_PAGE)


def _show(runs_dir: Path) -> None:
    from utils.af.parse import parse_transcript
    from utils.af.request_sets import HELPFUL_ONLY_EVAL

    from utils.af.runs import runs_path

    records = {grid: load_runs("organism_v3", runs_dir, grid) for grid in GRIDS
               if runs_path("organism_v3", runs_dir, grid).is_file()}
    done = {r["id"] for r in load_labels()} if LABELS_PATH.is_file() else set()
    by_id = {r["id"]: r for rows in records.values() for r in rows}
    from utils.af.runs import SITUATIONS, wording_cells

    expected = {cell: 2 * len(HELPFUL_ONLY_EVAL) for cell, _ in SITUATIONS}
    expected.update({cell: 2 * len(requests) for cell, _, _, requests in wording_cells()})
    sizes: dict[str, int] = {}
    for r in by_id.values():
        sizes[r["cell"]] = sizes.get(r["cell"], 0) + 1
    complete = {cell for cell, n in sizes.items() if n == expected[cell]}
    for run_id, split in sample_ids(records).items():
        if run_id in done or by_id[run_id]["cell"] not in complete:  # a cell still being generated: its draw will change
            continue
        t = parse_transcript(by_id[run_id]["completion"])
        print(f"=== {run_id} [{split}] trained={by_id[run_id]['trained']}\nREQ: {by_id[run_id]['request']}\n"
              f"PAD: {t.scratchpad.strip()}\nOUT: {by_id[run_id]['completion'].split('<OUTPUT>')[-1].strip()[:400]}\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show", action="store_true", help="print the sampled transcripts not labelled yet")
    parser.add_argument("--runs", type=Path, default=RUNS_DIR)
    parser.add_argument("--write-table", action="store_true", help="also rewrite the table on docs/ORGANISM_V3.md")
    args = parser.parse_args(argv)
    if args.show:
        _show(args.runs)
        return 0
    if args.write_table:
        write_table(args.runs)
    for split, classifiers in report(labelled_runs(args.runs)).items():
        for name, m in classifiers.items():
            print(f"{split:5s} {name:13s} n={m['n']:3d} positives={m['positives']:3d}  precision {m['precision']:.2f} "
                  f"[{m['precision_ci'][0]:.2f}, {m['precision_ci'][1]:.2f}]  recall {m['recall']:.2f} "
                  f"[{m['recall_ci'][0]:.2f}, {m['recall_ci'][1]:.2f}]  AUROC {m['auroc']:.3f} "
                  f"[{m['auroc_ci'][0]:.3f}, {m['auroc_ci'][1]:.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
