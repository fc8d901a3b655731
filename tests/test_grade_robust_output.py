"""Issue 24, items 4 and 6: every notebook reported, and output that is safe for a teacher's terminal and spreadsheet.

No kernel starts here and no model loads: the batch's per-notebook grading (``batch.grade_notebook``) is replaced
where a test needs a verdict, and the notebooks the real function sees are ones it rejects before running anything
(no chapter, not JSON). Each test shows an attack of the issue failing.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

import utils.checks
from utils.grade import batch, exports, gradescope, otter, remote
from utils.grade.batch import Record
from utils.grade.safe_text import csv_cell, printable

UNICODE_DIGITS = ["²", "²³", "٠٣", "０３", "߁", "①", "³"]  # pass str.isdigit() (or look like digits), fail int()


def write_notebook(path: Path, chapter: object = None) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if chapter is not None:
        nb.metadata["course"] = {"chapter": chapter}
    nb.cells = [nbformat.v4.new_code_cell("def add(a, b):\n    return a + b")]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def fake_records(path: Path, passed: tuple[bool, ...] = (True, False), message: str = "wrong") -> list[Record]:
    return [Record(str(path), "99", f"99.{i + 1}", f"f{i + 1}", f"Exercise {i + 1}", p, "passed" if p else message)
            for i, p in enumerate(passed)]


def names_in(records: list[dict]) -> list[str]:
    return sorted({Path(r["notebook"]).name for r in records})


def csv_cells(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


def no_control(values: object) -> bool:
    """No ESC, CR or BEL in any text of ``values`` (JSON records or CSV cells)."""
    text = json.dumps(values, ensure_ascii=False)  # escapes them as \u001b, \r, \u0007
    return not any(bad in text for bad in ("\\u001b", "\\r", "\\u0007", "\x1b", "\r", "\x07"))


# --------------------------------------------------------------------------------------------
# Item 4: chapter metadata that passes str.isdigit() but not int()


@pytest.mark.parametrize("value", UNICODE_DIGITS + ["-1", "100", "007", "3.0", "", " ", "0x3", True, -1, 100, 3.0,
                                                    None, ["03"], {"n": 3}])
def test_a_chapter_that_is_not_one_or_two_ascii_digits_is_no_chapter(value: object) -> None:
    metadata = {"course": {"chapter": value}}
    assert batch.chapter_of(Path("homework.ipynb"), metadata) is None
    assert batch.chapter_of(Path("alice_00_tour.ipynb"), metadata) == "00"  # the file name's chapter, as without one


def test_chapter_still_read_from_ascii_digits_and_names() -> None:
    assert batch.chapter_of(Path("x.ipynb"), {"course": {"chapter": " 3 "}}) == "03"
    assert batch.chapter_of(Path("x.ipynb"), {"course": {"chapter": "05"}}) == "05"
    assert batch.chapter_of(Path("x.ipynb"), {"course": {"chapter": 4}}) == "04"
    assert batch.chapter_of(Path("x.ipynb"), {"course": "²"}) is None
    assert batch.chapter_of(Path("x.ipynb"), ["not", "a", "dict"]) is None  # type: ignore[arg-type]
    assert batch.chapter_of(Path("bob_01.ipynb"), None) == "01"
    for digits in ("٠٣", "²³", "０３"):  # Unicode digits in the file name are no chapter either
        assert batch.chapter_of(Path(f"{digits}_tour.ipynb"), None) is None
        assert batch.chapter_of(Path(f"bob_{digits}.ipynb"), {}) is None


@pytest.mark.parametrize("value", ["²", "٠٣", "³"])
def test_gradescope_and_otter_refuse_unicode_digit_chapters_with_their_own_error(value: str, tmp_path: Path) -> None:
    with pytest.raises(gradescope.GradescopeError, match="no checks for chapter"):
        gradescope.normalise_chapters([value])
    with pytest.raises(otter.OtterExportError, match="no checks for chapter"):
        otter.export(value, tmp_path / "out")
    assert gradescope.normalise_chapters(["0", " 05 "]) == ["00", "05"]


def test_grade_notebook_reports_a_unicode_digit_chapter_instead_of_raising(tmp_path: Path) -> None:
    # The real grader, on the notebook: it stops at "which chapter?", before any kernel.
    path = write_notebook(tmp_path / "homework.ipynb", chapter="²")
    [record] = batch.grade_notebook(path)
    assert not record.passed and "cannot tell which chapter" in record.message


# --------------------------------------------------------------------------------------------
# Item 4: one notebook that cannot be read or graded becomes its record; the batch goes on


def run_main(args: list[str]) -> int:
    return batch.main([*args, "--no-sandbox", "--timeout", "5", "--check-timeout", "5"])


def test_a_notebook_whose_grading_raises_is_reported_and_the_batch_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    subs = tmp_path / "subs"
    write_notebook(subs / "a_sup.ipynb", chapter="²")  # the notebook (metadata chapter "²")
    (subs / "b_broken.ipynb").write_text('{"cells": [', encoding="utf-8")  # not JSON
    write_notebook(subs / "c_crash.ipynb", chapter="99")  # the grader's own code raises on this one
    write_notebook(subs / "d_solved.ipynb", chapter="99")
    write_notebook(subs / "e_exit.ipynb", chapter="99")
    real = batch.grade_notebook

    def grade(path: Path, *args: object, **kwargs: object) -> list[Record]:
        if path.name == "c_crash.ipynb":
            raise RuntimeError("boom\nsecond line of the error")
        if path.name == "e_exit.ipynb":
            raise SystemExit(3)  # e.g. a check module that calls sys.exit()
        if path.name == "d_solved.ipynb":
            return fake_records(path, (True, True))
        return real(path, *args, **kwargs)  # a_sup, b_broken: rejected before any kernel starts

    monkeypatch.setattr(batch, "grade_notebook", grade)
    out_json, out_csv, book, log = (tmp_path / "r" / n for n in ("g.json", "g.csv", "book.csv", "log.jsonl"))
    assert run_main([str(subs), "--json", str(out_json), "--csv", str(out_csv), "--gradebook", str(book),
                     "--log", str(log)]) == 0
    records = json.loads(out_json.read_text(encoding="utf-8"))
    assert names_in(records) == ["a_sup.ipynb", "b_broken.ipynb", "c_crash.ipynb", "d_solved.ipynb", "e_exit.ipynb"]
    by_name = {Path(r["notebook"]).name: r for r in records}
    assert "cannot tell which chapter" in by_name["a_sup.ipynb"]["message"]
    assert "not a valid Jupyter notebook" in by_name["b_broken.ipynb"]["message"]
    crash = by_name["c_crash.ipynb"]
    assert not crash["passed"] and crash["exercise"] == ""
    assert crash["message"].startswith("the grader could not read or grade this notebook: RuntimeError: boom")
    assert "\n" not in crash["message"]  # one line
    assert [r["passed"] for r in records if Path(r["notebook"]).name == "d_solved.ipynb"] == [True, True]
    assert "the grader could not read or grade this notebook: SystemExit: 3" in by_name["e_exit.ipynb"]["message"]
    with out_csv.open(newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == len(records)
    assert book.read_text(encoding="utf-8").splitlines() == ["student_id,chapter 99 (2),total (2)", "d_solved,2,2"]
    out = capsys.readouterr()
    assert "c_crash.ipynb: 0/0 — the grader could not read or grade this notebook" in out.out
    assert "d_solved.ipynb: 2/2" in out.out and "graded 5 notebook(s)" in out.err
    # The grader's failure is not logged as a result: a rerun with the same --log grades that notebook again.
    logged = [json.loads(line)["notebook"] for line in log.read_text(encoding="utf-8").splitlines()]
    assert sorted(Path(n).name for n in logged) == ["a_sup.ipynb", "b_broken.ipynb", "d_solved.ipynb"]
    monkeypatch.setattr(batch, "grade_notebook", lambda path, *a, **k: fake_records(path, (True, False)))
    assert run_main([str(subs), "--json", str(out_json), "--log", str(log)]) == 0
    rerun = [r for r in json.loads(out_json.read_text(encoding="utf-8")) if r["notebook"].endswith("c_crash.ipynb")]
    assert [r["exercise"] for r in rerun] == ["99.1", "99.2"]  # graded this time (e_exit too)
    assert capsys.readouterr().err.count("already in") == 3  # the three others came from the log


def test_reading_a_notebook_that_raises_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading (parse, metadata, chapter) happens inside the per-notebook handler too."""
    subs = tmp_path / "subs"
    write_notebook(subs / "a_99.ipynb", chapter="99")
    write_notebook(subs / "b_99.ipynb", chapter="99")

    def unreadable(path: Path, content: bytes | None = None) -> tuple[None, str]:
        if path.name == "a_99.ipynb":
            raise MemoryError("reading the notebook")
        return None, "not a valid Jupyter notebook (test); nothing was run"

    def no_checks(chapter: str) -> list:
        return []

    monkeypatch.setattr(batch, "_read_notebook", unreadable)
    monkeypatch.setattr(batch.grade_runtime, "exercises", no_checks)
    out_json = tmp_path / "g.json"
    assert run_main([str(subs), "--json", str(out_json)]) == 0
    by_name = {Path(r["notebook"]).name: r for r in json.loads(out_json.read_text(encoding="utf-8"))}
    assert "the grader could not read or grade this notebook: MemoryError: reading the notebook" in \
        by_name["a_99.ipynb"]["message"]
    assert "there are no checks for chapter 99" in by_name["b_99.ipynb"]["message"]


class Killed(BaseException):
    """Stands for the batch being killed (nothing after it runs, not even the final report)."""


@pytest.mark.parametrize("stop", [KeyboardInterrupt, Killed])
def test_reports_hold_each_notebook_as_soon_as_it_is_graded(
    stop: type[BaseException], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subs = tmp_path / "subs"
    for name in ("a_99.ipynb", "b_99.ipynb", "c_99.ipynb", "d_99.ipynb"):
        write_notebook(subs / name, chapter="99")
    out_json, out_csv, book, log = (tmp_path / "r" / n for n in ("g.json", "g.csv", "book.csv", "log.jsonl"))
    on_disk: dict[str, object] = {}

    def grade(path: Path, *args: object, **kwargs: object) -> list[Record]:
        if path.name == "c_99.ipynb":  # what is on disk while the third notebook is being graded
            on_disk["json"] = json.loads(out_json.read_text(encoding="utf-8"))
            with out_csv.open(newline="", encoding="utf-8") as handle:
                on_disk["csv"] = list(csv.DictReader(handle))
            on_disk["book"] = book.read_text(encoding="utf-8").splitlines()
            raise stop()
        return fake_records(path)

    monkeypatch.setattr(batch, "grade_notebook", grade)
    args = [str(subs), "--json", str(out_json), "--csv", str(out_csv), "--gradebook", str(book), "--log", str(log)]
    if stop is KeyboardInterrupt:
        assert run_main(args) == 130
    else:
        with pytest.raises(Killed):
            run_main(args)
    assert names_in(on_disk["json"]) == ["a_99.ipynb", "b_99.ipynb"]  # type: ignore[arg-type]
    assert names_in(on_disk["csv"]) == ["a_99.ipynb", "b_99.ipynb"]  # type: ignore[arg-type]
    assert on_disk["book"] == ["student_id,chapter 99 (2),total (2)", "a,1,1", "b,1,1"]
    # after the stop (Ctrl-C: the final write; killed: nothing more) the files still hold the first two
    assert names_in(json.loads(out_json.read_text(encoding="utf-8"))) == ["a_99.ipynb", "b_99.ipynb"]
    with out_csv.open(newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 4
    assert len(log.read_text(encoding="utf-8").splitlines()) == 2  # --log stays append-only, one line a notebook
    assert sorted(p.name for p in out_json.parent.iterdir()) == ["book.csv", "g.csv", "g.json", "log.jsonl"]


# --------------------------------------------------------------------------------------------
# Item 6: errors of the grader's own reply parser are the grader's


class DeepReplyKernel:
    """Stands for a graded kernel (:class:`utils.grade.batch._Kernel`) whose notebook answers every call with JSON
    nested far deeper than the parser's recursion limit; it says its function is defined."""

    def __init__(self) -> None:
        self.client = SimpleNamespace(nb=SimpleNamespace(cells=[]))
        self.deep = base64.b64encode(("[" * 100_000 + "]" * 100_000).encode()).decode("ascii")

    def hidden(self, code: str, seconds: float) -> tuple[object, bool]:
        nonce = re.search(r"'(ANSWER-[0-9a-f]+:)'", code).group(1)  # type: ignore[union-attr]
        text = nonce + ("yes" if "_a.defined(" in code else self.deep) + "\n"
        cell = nbformat.v4.new_code_cell(code)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        self.client.nb.cells.append(cell)
        return cell, False

    def responsive(self) -> bool:
        return True


def test_a_deeply_nested_reply_is_the_graders_error_not_the_learners() -> None:
    """``json.loads`` raises RecursionError in the grader on the reply: not "your code raised RecursionError"."""
    handle = batch._remote_kernel(DeepReplyKernel(), 5)  # type: ignore[arg-type]
    with pytest.raises(remote.TransportError, match="RecursionError"):  # not an Exception: checks let it through
        remote.RemoteFunction(handle, "add")(1, 2)

    def check(fn: object) -> str:
        if fn(1, 2) != 3:  # type: ignore[operator]
            utils.checks.fail("add(1, 2) is not 3")
        return ""

    wrapped = utils.checks.exercise("97", 1, "add", "Add two numbers")(check)
    try:
        exercise = next(e for e in utils.checks._REGISTRY["97"] if e.check is wrapped)
        passed, message, fatal = batch._remote_check(handle, exercise)
    finally:
        utils.checks._REGISTRY.pop("97", None)
    assert "your code raised" not in message, message
    assert not passed and fatal is None and "\n" not in message
    assert "the grader could not read the kernel's reply" in message and "RecursionError" in message


def test_an_argument_the_grader_cannot_send_is_the_graders_error() -> None:
    kernel = DeepReplyKernel()
    handle = batch._remote_kernel(kernel, 5)  # type: ignore[arg-type]
    with pytest.raises(batch.GraderReplyError, match="WireError") as raised:
        remote.RemoteFunction(handle, "add")(object())
    assert raised.value.reading is False and kernel.client.nb.cells == []  # the kernel was never asked

    def check(fn: object) -> str:
        fn(object())  # type: ignore[operator]
        return ""

    wrapped = utils.checks.exercise("97", 1, "add", "Add two numbers")(check)
    try:
        exercise = next(e for e in utils.checks._REGISTRY["97"] if e.check is wrapped)
        passed, message, _ = batch._remote_check(handle, exercise)
    finally:
        utils.checks._REGISTRY.pop("97", None)
    assert not passed and "the grader could not send the call to the kernel: WireError" in message, message
    assert "your code raised" not in message


# --------------------------------------------------------------------------------------------
# Item 6: nothing a notebook writes can drive the teacher's terminal


@pytest.mark.parametrize("attack, shown", [
    ("\x1b[2K\r  99.1   add    PASS  passed", "  99.1   add    PASS  passed"),  # erase line, back to its start
    ("\x1b[1A\x1b[2Kalice: 3/3", "alice: 3/3"),  # cursor up, rewrite the score line
    ("\x1b[32mgreen\x1b[0m", "green"),
    ("\x1b]0;window title\x07text", "text"),  # OSC ended by BEL
    ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink ended by ST
    ("\x1bPq#0;2;0;0;0\x1b\\after", "after"),  # DCS (sixel)
    ("\x1bc\x1b7reset", "reset"),  # two-character escapes
    ("\x9b31mC1 CSI", "C1 CSI"),
    ("a\rb\x00c\x07d\x08e\x7ff\x85g\x0bh\x0ci", "abcdefghi"),
    ("FAIL\u202eSSAP", "FAILSSAP"),  # bidirectional override
    ("end\x1b", "end"), ("\x1b\x1b[31mred", "red"),  # a lone ESC
    ("name \udcff.ipynb", "name \ufffd.ipynb"),  # an undecodable file name
])
def test_printable_removes_terminal_control(attack: str, shown: str) -> None:
    assert printable(attack) == shown
    assert printable(shown) == shown


def test_printable_keeps_text_newlines_tabs_and_letters() -> None:
    text = "Exercise 02.3 `f` failed: café, naïve, 日本語, Ελληνικά, emoji 🙂\n\tline two — ok ½ ² ٣"
    assert printable(text) == text
    assert printable(42) == "42"


def test_format_table_and_reports_strip_control_sequences(tmp_path: Path) -> None:
    evil = "\x1b[2K\r\x1b[1A"
    records = [Record(f"{evil}subs/alice_99.ipynb", "99", "99.1", f"add{evil}", f"Add{evil}", False,
                      f"wrong{evil}\rPASS", f"notes{evil}")]
    table = batch.format_table(records)
    assert "\x1b" not in table and "\r" not in table and "alice_99.ipynb" in table and "FAIL" in table
    batch.write_json(tmp_path / "g.json", records)
    batch.write_csv(tmp_path / "g.csv", records)
    assert no_control(json.loads((tmp_path / "g.json").read_text(encoding="utf-8")))
    assert no_control(csv_cells(tmp_path / "g.csv"))
    summary = exports.class_summary(records)
    assert "\x1b" not in summary and "\r" not in summary


def test_the_batch_prints_and_writes_no_control_sequences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    subs = tmp_path / "subs"
    evil_name = "\x1b[2K\x1b[1Aalice\x1b[32m_99.ipynb"  # a file name is learner text too
    write_notebook(subs / evil_name, chapter="99")
    write_notebook(subs / "bob_99.ipynb", chapter="99")

    def grade(path: Path, *args: object, **kwargs: object) -> list[Record]:
        return [Record(str(path), "99", "99.1", "add\x1b[8m", "Add\r", False,
                       "\x1b[2K\r  99.1   add   PASS  passed\x1b]0;pwned\x07", "\x1b[1A\x1b[2Kscore 3/3")]

    monkeypatch.setattr(batch, "grade_notebook", grade)
    out_json, out_csv, book = tmp_path / "g.json", tmp_path / "g.csv", tmp_path / "book.csv"
    assert run_main([str(subs), "--json", str(out_json), "--csv", str(out_csv), "--gradebook", str(book)]) == 0
    printed = capsys.readouterr()
    for text in (printed.out, printed.err, book.read_text(encoding="utf-8")):
        assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert no_control(json.loads(out_json.read_text(encoding="utf-8"))) and no_control(csv_cells(out_csv))
    assert "alice_99.ipynb: 0/1" in printed.out and "FAIL" in printed.out


def test_undecodable_file_names_do_not_stop_the_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    subs = tmp_path / "subs"
    subs.mkdir()
    try:
        write_notebook(subs / "caf\udce9_99.ipynb", chapter="99")  # bytes b"caf\xe9_99.ipynb": not UTF-8
    except (UnicodeEncodeError, OSError):
        pytest.skip("this file system does not take file names that are not UTF-8")
    write_notebook(subs / "bob_99.ipynb", chapter="99")
    monkeypatch.setattr(batch, "grade_notebook", lambda path, *a, **k: fake_records(path))
    out_json, out_csv, log = tmp_path / "g.json", tmp_path / "g.csv", tmp_path / "log.jsonl"
    assert run_main([str(subs), "--json", str(out_json), "--csv", str(out_csv), "--log", str(log)]) == 0
    assert names_in(json.loads(out_json.read_text(encoding="utf-8"))) == ["bob_99.ipynb", "caf\ufffd_99.ipynb"]
    assert "caf\ufffd_99.ipynb: 1/2" in capsys.readouterr().out
    assert len(batch.read_log(log)) == 2  # logged under its real name: a rerun finds it
    assert run_main([str(subs), "--json", str(out_json), "--log", str(log)]) == 0
    assert capsys.readouterr().err.count("already in") == 2


# --------------------------------------------------------------------------------------------
# Item 6: no formula in the teacher's spreadsheet


@pytest.mark.parametrize("cell, safe", [
    ("=1+2", "'=1+2"), ("+1+2", "'+1+2"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"),
    ("\r=1", "'=1"),  # the carriage return is removed, and the formula behind it is still caught
    ("\x1b[0m=1", "'=1"), ("alice", "alice"), ("", ""), (" =1", " =1"), (3, 3), (True, True),
])
def test_csv_cell(cell: object, safe: object) -> None:
    assert csv_cell(cell) == safe


def test_formula_cells_are_neutralised_in_both_csv_writers(tmp_path: Path) -> None:
    records = [Record("=1+2_99.ipynb", "99", "99.1", "@SUM(A1:A9)", "+cmd|' /C calc'!A0", False,
                      "-2+3", "\t=HYPERLINK(\"http://evil\")"),
               Record("=1+2_99.ipynb", "99", "99.2", "f", "t", True, "passed")]
    batch.write_csv(tmp_path / "g.csv", records)
    with (tmp_path / "g.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    first = rows[0]
    assert first["notebook"] == "'=1+2_99.ipynb" and first["name"] == "'@SUM(A1:A9)"
    assert first["title"] == "'+cmd|' /C calc'!A0" and first["message"] == "'-2+3"
    assert first["notes"] == "'\t=HYPERLINK(\"http://evil\")"
    assert first["exercise"] == "99.1" and first["passed"] == "False" and rows[1]["message"] == "passed"
    for row in rows:
        assert not any(str(v).startswith(("=", "+", "-", "@", "\t", "\r")) for v in row.values())

    book = list(csv.reader(io.StringIO(exports.gradebook_csv(records))))
    assert book == [["student_id", "chapter 99 (2)", "total (2)"], ["'=1+2", "1", "1"]]


def test_a_file_named_like_a_formula_is_no_formula_in_the_batch_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subs = tmp_path / "subs"
    write_notebook(subs / "=1+2_00.ipynb", chapter="99")
    monkeypatch.setattr(batch, "grade_notebook", lambda path, *a, **k: fake_records(path))
    monkeypatch.chdir(subs)  # graded by its relative name: the notebook column starts with "="
    out_csv, book = tmp_path / "g.csv", tmp_path / "book.csv"
    assert run_main(["=1+2_00.ipynb", "--csv", str(out_csv), "--gradebook", str(book)]) == 0
    for path in (out_csv, book):
        cells = csv_cells(path)
        assert cells and not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells), cells
    assert "'=1+2_00.ipynb" in csv_cells(out_csv) and "'=1+2" in csv_cells(book)


def test_gradescope_results_and_table_are_printable() -> None:
    config = {"chapters": ["99"], "exercises": {"99.1": {"name": "add", "title": "Add", "points": 1.0}}}
    records = [batch.clean_record(r) for r in fake_records(Path("x_99.ipynb"), (False,), "\x1b[2K\rPASS")]
    results = gradescope.results_from_records(config, "99", records)
    assert no_control(results) and results["tests"][0]["output"] == "PASS"
    table = gradescope.format_results({"score": 0, "output": "\x1b[1Aout", "tests": [
        {"number": "99.1\x1b[2K", "score": 0, "max_score": 1, "output": "\x1b[32mPASS\r"}]})
    assert "\x1b" not in table and "\r" not in table


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
