"""Submissions that try to get marks without the work get none (issue 15's attacks on chapter 00).

Each test grades chapter 00's student notebook, every exercise still a stub, with one extra cell at the end
that attacks the grader from inside the kernel. Chapter 00's verdicts are decided in the grader's own
process (utils.grade.remote), so none of these may turn a stub into a pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sampling import rotating

from utils import grade

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / "chapters" / "00_setup_and_tour.ipynb"

FORGE_REPLY = r'''
import base64, re
from utils.grade import wire
def forged(code):
    nonce = re.search(r"ANSWER-[0-9a-f]+:", code)
    legacy = re.search(r"GRADE-[0-9a-f]+:", code)
    lines = []
    if nonce:
        lines.append(nonce.group(0) + base64.b64encode(wire.dumps({"status": "ok", "value": "ok", "block_calls": {}})).decode())
        lines.append(nonce.group(0) + "yes")
    if legacy:
        lines.append(legacy.group(0) + '{"passed": true, "message": "forged", "missing": false, "output": ""}')
    return lines
'''

ATTACKS = {
    "reload_returns_a_fake_runtime": r'''
import importlib, types
PASSED = '{"passed": true, "message": "forged", "missing": false, "output": ""}'
fake = types.SimpleNamespace(run=lambda nonce, *a, **k: print(nonce + PASSED), evaluate=lambda *a, **k: {"passed": True})
real_reload = importlib.reload
importlib.reload = lambda module: fake if module.__name__.startswith("utils.grade") else real_reload(module)
''',
    "patched_import": r'''
import builtins, sys, types
real_import = builtins.__import__
PASSED = '{"passed": true, "message": "forged", "missing": false, "output": ""}'
def sneaky(name, *args, **kwargs):
    module = real_import(name, *args, **kwargs)
    caller = sys._getframe(1).f_code.co_filename
    if not (caller.startswith("<") or "ipykernel_" in caller):  # only the notebook's own cells, not libraries
        return module
    if name == "importlib":
        return types.SimpleNamespace(reload=lambda m: m, import_module=module.import_module)
    if name.startswith("utils.grade"):
        return types.SimpleNamespace(run=lambda nonce, *a, **k: print(nonce + PASSED),
                                     loads=lambda *a, **k: {"status": "ok", "value": 1},
                                     dumps=lambda *a, **k: b"{}", wire=module)
    return module
builtins.__import__ = sneaky
''',
    "stdout_rewriter": FORGE_REPLY + r'''
import sys
class Rewriter:
    def __init__(self, inner): self.inner = inner
    def write(self, text):
        return self.inner.write(text.replace('"passed": false', '"passed": true'))
    def flush(self): self.inner.flush()
    def __getattr__(self, name): return getattr(self.inner, name)
sys.stdout = Rewriter(sys.stdout)
''',
    "patched_json_dumps": r'''
import json
real_dumps = json.dumps
def forged_dumps(obj, *args, **kwargs):
    if isinstance(obj, dict) and "passed" in obj:
        obj = {**obj, "passed": True, "message": "forged"}
    if isinstance(obj, dict) and obj.get("status") in ("raised", "missing", "unsendable"):
        obj = {"status": "ok", "value": None}
    return real_dumps(obj, *args, **kwargs)
json.dumps = forged_dumps
''',
    "pre_run_cell_forges_the_reply": FORGE_REPLY + r'''
def hook(info):
    for line in forged(info.raw_cell):
        print(line)
get_ipython().events.register("pre_run_cell", hook)
''',
    "input_transformer_rewrites_the_grader_cell": FORGE_REPLY + r'''
def transform(lines):
    code = "".join(lines)
    if "ANSWER-" in code or "GRADE-" in code:
        return ["".join(f"print({line!r})\n" for line in forged(code))]
    return lines
get_ipython().input_transformers_post.append(transform)
''',
    "forged_runtime_module_first_on_the_path": r'''
import os, sys, tempfile, utils
fake = tempfile.mkdtemp()
os.makedirs(os.path.join(fake, "grade"), exist_ok=True)
open(os.path.join(fake, "grade", "__init__.py"), "w").write("")
open(os.path.join(fake, "grade", "wire.py"), "w").write(
    "def loads(*a, **k): return {'name': 'x', 'args': [], 'kwargs': {}}\n"
    "def dumps(*a, **k): return b'{\"status\": \"ok\"}'\n")
open(os.path.join(fake, "grade", "runtime.py"), "w").write(
    "def run(nonce, *a, **k): print(nonce + '{\"passed\": true, \"message\": \"forged\", \"missing\": false}')\n")
utils.__path__.insert(0, fake)
for name in [m for m in sys.modules if m.startswith("utils.grade")]:
    del sys.modules[name]
''',
    "junk_answers_with_patched_comparisons": r'''
import torch
class AlwaysEqual(str):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __hash__ = str.__hash__
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
def greedy_decode(model, prompt, n_new):
    return torch.zeros(n_new, dtype=torch.long), torch.full((n_new, model.cfg.d_vocab), 1.0 / model.cfg.d_vocab)
def format_chat(tokenizer, question, system=None):
    return AlwaysEqual("anything")
def residual_sweep(model, prompt, answer):
    n = model.cfg.n_layers + 1
    return {"norm": torch.ones(n), "prob": torch.ones(n), "rank": torch.zeros(n, dtype=torch.long)}
def resid_at_layer(model, tokens, layer):
    return torch.zeros(*tokens.shape, model.cfg.d_model)
def mean_difference_direction(model, positive, negative, layer):
    return torch.nn.functional.normalize(torch.ones(model.cfg.d_model), dim=0)
''',
}


def with_attack(tmp_path: Path, name: str, code: str) -> Path:
    nb = json.loads(STUB.read_text())
    nb["cells"].append({"cell_type": "code", "execution_count": None, "id": "attack", "metadata": {}, "outputs": [],
                        "source": code})
    path = tmp_path / f"attack_{name}_00.ipynb"
    path.write_text(json.dumps(nb))
    return path


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_from_inside_the_kernel_earns_nothing(tmp_path: Path, name: str) -> None:
    records = grade.grade_notebook(with_attack(tmp_path, name, ATTACKS[name]), timeout=600, check_timeout=120)
    assert len(records) == 5
    earned = [(r.exercise, r.message) for r in records if r.passed]
    assert not earned, f"{name} earned marks: {earned}"


@pytest.mark.parametrize("name", rotating(sorted(ATTACKS), keep=3, salt="attacks are real"))  # a sanity test: sampled
def test_the_attack_is_real_verdicts_taken_in_the_kernel_fall_for_it(tmp_path: Path, name: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The same notebooks against the old design (the check runs in the student's kernel): each earns marks it did
    not earn, so the test above is not passing for want of a real attack."""
    import utils.checks.ch00 as ch00

    monkeypatch.setattr(ch00, "GRADED_REMOTELY", False)
    records = grade.grade_notebook(with_attack(tmp_path, name, ATTACKS[name]), timeout=600, check_timeout=120)
    assert any(r.passed for r in records), f"{name} no longer fools in-kernel grading: make the attack stronger"


FREE_ANSWERS = {
    "assigns_the_reference": "from utils import tour\ngreedy_decode = tour.greedy_decode\nformat_chat = tour.format_chat\n",
    "calls_the_reference": ("from utils import tour\n\ndef residual_sweep(model, prompt, answer):\n"
                            "    return tour.residual_sweep(model, prompt, answer)\n"),
    "imports_the_reference": "from utils.tour import resid_at_layer, mean_difference_direction\n",
}


@pytest.mark.parametrize("name", sorted(FREE_ANSWERS))
def test_reference_implementations_are_not_free_answers(tmp_path: Path, name: str) -> None:
    """Graded runs use the student build, where the chapter's references raise; the record says why."""
    records = grade.grade_notebook(with_attack(tmp_path, name, FREE_ANSWERS[name]), timeout=600, check_timeout=120)
    assert not [r.exercise for r in records if r.passed]
    reached = [r for r in records if "reference implementation" in r.message]
    assert reached, [r.message for r in records]


def test_naming_a_hidden_reference_is_flagged(tmp_path: Path) -> None:
    code = "from utils import tour\ngreedy_decode = tour._reference_greedy_decode\n"
    records = grade.grade_notebook(with_attack(tmp_path, "hidden", code), timeout=600, check_timeout=120)
    assert all("flagged" in r.notes for r in records)
    # and it earns nothing: in the sealed build that name is the learner's own greedy_decode, and there is none
    assert not any(r.passed for r in records), [(r.exercise, r.message) for r in records if r.passed]
    assert "uses your `greedy_decode`" in records[0].message, records[0].message
