"""Every chapter-05 check passes on the reference, fails on the stub, and fails on each catalogued mistake (mutant)
with the diagnostic message a learner needs.

The model exercises (1, 3, 5) run on chapter 05's organism: this module's ``model`` fixture is
:func:`utils.model.load_organism_v2` (the checks load the same memoised object), never the base model, so only one
model is held at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from remote_harness import remote_contract_tests
from check_contract import assert_passes_repeatedly, contract_tests
from utils.af import inside
from utils.checks import CheckFailure, exercises
from utils.checks import ch05 as check


@pytest.fixture(scope="module")
def model():
    """Chapter 05's organism (overrides the session fixture, which loads the base model)."""
    from utils.model import load_organism_v2

    return load_organism_v2()


REFERENCE = {
    "last_position_residuals": inside.last_position_residuals,
    "probe_accuracy": inside.probe_accuracy,
    "patching_sweep": inside.patching_sweep,
    "ablate_hook": inside.ablate_hook,
    "swap_decisions": inside.swap_decisions,
    "tier_differing_latents": inside.tier_differing_latents,
}


def _ids(model, text, special=False):
    return model.tokenizer(text, add_special_tokens=special)["input_ids"]


# --- 1. last_position_residuals ---------------------------------------------------------------------------------
def _residuals(model, texts, layers, hook="hook_resid_post", position=-1, special=False):
    names = [f"blocks.{L}.{hook}" for L in layers]
    rows = []
    with torch.no_grad():
        for text in texts:
            tokens = torch.tensor([_ids(model, text, special)])
            _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
            rows.append(torch.stack([cache[n][0, position] for n in names]))
    return torch.stack(rows)


def lpr_first_position(model, texts, layers):
    return _residuals(model, texts, layers, position=0)


def lpr_resid_pre(model, texts, layers):
    return _residuals(model, texts, layers, hook="hook_resid_pre")


def lpr_transposed(model, texts, layers):
    return _residuals(model, texts, layers).transpose(0, 1)


def lpr_double_bos(model, texts, layers):
    return _residuals(model, texts, layers, special=True)


def lpr_padded_batch(model, texts, layers):
    ids = [_ids(model, t) for t in texts]
    width = max(map(len, ids))
    pad = model.tokenizer.pad_token_id
    tokens = torch.tensor([row + [pad] * (width - len(row)) for row in ids])  # right padding, no mask
    names = [f"blocks.{L}.hook_resid_post" for L in layers]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    return torch.stack([cache[n][:, -1] for n in names], dim=1)


def lpr_leaves_hooks(model, texts, layers):
    store = {}
    for L in layers:
        model.add_hook(f"blocks.{L}.hook_resid_post", lambda act, hook, L=L: store.__setitem__(L, act[0, -1].clone()))
    rows = []
    with torch.no_grad():
        for text in texts:
            model(torch.tensor([_ids(model, text)]))
            rows.append(torch.stack([store[L] for L in layers]))
    return torch.stack(rows)


# --- 2. probe_accuracy ------------------------------------------------------------------------------------------
def _fit(x, y, steps=100):
    x, y = x.float(), y.float()
    mean, std = x.mean(0), x.std(0) + 1e-6
    a = (x - mean) / std
    w = torch.zeros(a.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a @ w + b, y) + 1e-2 * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    return lambda t: ((t.float() - mean) / std @ w + b).detach()


def probe_on_training_set(x_train, y_train, x_test, y_test):
    logits = _fit(x_train, y_train)(x_train)
    return ((logits > 0).long() == y_train).float().mean().item()


def probe_fits_on_test(x_train, y_train, x_test, y_test):
    logits = _fit(x_test, y_test)(x_test)
    return ((logits > 0).long() == y_test).float().mean().item()


def probe_error_rate(x_train, y_train, x_test, y_test):
    return 1 - inside.probe_accuracy(x_train, y_train, x_test, y_test)


def probe_count(x_train, y_train, x_test, y_test):
    return ((_fit(x_train, y_train)(x_test) > 0).long() == y_test).sum().item()


def probe_probability_above_zero(x_train, y_train, x_test, y_test):
    p = torch.sigmoid(_fit(x_train, y_train)(x_test))
    return ((p > 0).long() == y_test).float().mean().item()


def probe_standardises_in_place(x_train, y_train, x_test, y_test):
    mean, std = x_train.mean(0), x_train.std(0)
    x_train -= mean
    x_train /= std
    x_test -= mean
    x_test /= std
    return inside.probe_accuracy(x_train, y_train, x_test, y_test)


# --- 3. patching_sweep ------------------------------------------------------------------------------------------
def _sweep(model, corrupted, clean, positions, layers, good, bad, hook="hook_resid_pre", every=False, swap=False,
           into_cache=False, normalise=lambda m, m_corr, m_clean: (m - m_corr) / (m_clean - m_corr)):
    names = [f"blocks.{L}.{hook}" for L in layers]
    source_t, target_t = torch.tensor([clean]), torch.tensor([corrupted])
    if swap:
        source_t, target_t = target_t, source_t

    def metric(logits):
        return (logits[0, -1, good] - logits[0, -1, bad]).item()

    with torch.no_grad():
        m_clean, m_corr = metric(model(torch.tensor([clean]))), metric(model(torch.tensor([corrupted])))
        _, cache = model.run_with_cache(source_t, names_filter=lambda n: n in names)
        out = []
        for name in names:
            def hook(act, hook=None, source=cache[name]):
                if into_cache:
                    source[:, positions] = act[:, positions]
                    return act
                act = act.clone()
                where = slice(None) if every else positions
                act[:, where] = source[:, where]
                return act

            out.append(normalise(metric(model.run_with_hooks(target_t, fwd_hooks=[(name, hook)])), m_corr, m_clean))
    return out


def sweep_every_position(model, corrupted, clean, positions, layers, good, bad):
    return _sweep(model, corrupted, clean, positions, layers, good, bad, every=True)


def sweep_resid_post(model, corrupted, clean, positions, layers, good, bad):
    return _sweep(model, corrupted, clean, positions, layers, good, bad, hook="hook_resid_post")


def sweep_raw_metric(model, corrupted, clean, positions, layers, good, bad):
    return _sweep(model, corrupted, clean, positions, layers, good, bad, normalise=lambda m, m_corr, m_clean: m)


def sweep_clean_only(model, corrupted, clean, positions, layers, good, bad):
    return _sweep(model, corrupted, clean, positions, layers, good, bad, normalise=lambda m, m_corr, m_clean: m / m_clean)


def sweep_swapped(model, corrupted, clean, positions, layers, good, bad):
    return _sweep(model, corrupted, clean, positions, layers, good, bad, swap=True)


def sweep_writes_into_cache(model, corrupted, clean, positions, layers, good, bad):
    return _sweep(model, corrupted, clean, positions, layers, good, bad, into_cache=True)


def sweep_patches_tokens_in_place(model, corrupted, clean, positions, layers, good, bad):
    """Patches the input TOKENS (editing `corrupted` in place) instead of the residual stream."""
    with torch.no_grad():
        m_clean = inside.logit_difference(model(torch.tensor([clean])), good, bad).item()
        m_corr = inside.logit_difference(model(torch.tensor([corrupted])), good, bad).item()
        for p in positions:
            corrupted[p] = clean[p]
        m = inside.logit_difference(model(torch.tensor([corrupted])), good, bad).item()
    return [(m - m_corr) / (m_clean - m_corr)] * len(layers)


def sweep_leaves_hooks(model, corrupted, clean, positions, layers, good, bad):
    names = [f"blocks.{L}.hook_resid_pre" for L in layers]
    with torch.no_grad():
        m_clean = inside.logit_difference(model(torch.tensor([clean])), good, bad).item()
        m_corr = inside.logit_difference(model(torch.tensor([corrupted])), good, bad).item()
        _, cache = model.run_with_cache(torch.tensor([clean]), names_filter=lambda n: n in names)
        out = []
        for name in names:
            model.add_hook(name, inside.patch_hook(cache[name], positions))
            m = inside.logit_difference(model(torch.tensor([corrupted])), good, bad).item()
            out.append((m - m_corr) / (m_clean - m_corr))
    return out


# --- 4. ablate_hook ---------------------------------------------------------------------------------------------
def ablate_not_normalised(direction):
    def hook(act, hook=None):
        return act - (act @ direction).unsqueeze(-1) * direction

    return hook


def ablate_last_position(direction):
    u = direction / direction.norm()

    def hook(act, hook=None):
        act = act.clone()
        act[:, -1] = act[:, -1] - (act[:, -1] @ u).unsqueeze(-1) * u
        return act

    return hook


def ablate_scalar_projection(direction):
    u = direction / direction.norm()

    def hook(act, hook=None):
        return act - (act @ u).unsqueeze(-1)

    return hook


def ablate_broadcast_error(direction):
    u = direction / direction.norm()

    def hook(act, hook=None):
        return act - (act @ u) * u

    return hook


def ablate_in_place_returns_none(direction):
    u = direction / direction.norm()

    def hook(act, hook=None):
        act -= (act @ u).unsqueeze(-1) * u

    return hook


def ablate_in_place_returns_act(direction):
    u = direction / direction.norm()

    def hook(act, hook=None):
        act -= (act @ u).unsqueeze(-1) * u
        return act

    return hook


def ablate_normalises_direction_in_place(direction):
    direction /= direction.norm()
    return inside.ablate_hook(direction)


def ablate_returns_projection(direction):
    u = direction / direction.norm()

    def hook(act, hook=None):
        return (act @ u).unsqueeze(-1) * u

    return hook


# --- 5. swap_decisions ------------------------------------------------------------------------------------------
def _decide(model, texts, special=False):
    shared, accept, reject = inside.tag_fork(model.tokenizer)
    out = []
    with torch.no_grad():
        for text in texts:
            logits = model(torch.tensor([_ids(model, text + shared, special)]))
            out.append((logits[0, -1, accept] - logits[0, -1, reject]).item())
    return out


def swap_whole_completion(model, prompts, other_completions):
    return [d > 0 for d in _decide(model, [p + c for p, c in zip(prompts, other_completions)])]


def swap_cut_before_output(model, prompts, other_completions):
    return [d > 0 for d in _decide(model, [p + c[: c.index("<OUTPUT>\n")] for p, c in zip(prompts, other_completions)])]


def swap_own_tier(model, prompts, other_completions):
    """Looks up the prompt's OWN tier's saved completion (the mistake made in the notebook's call, not the function)."""
    own = []
    for prompt, completion in zip(prompts, other_completions):
        key = next(k for k, v in check._course_completions().items() if v == completion)
        own.append(check._course_completions()[(key[0], "paid" if key[1] == "free" else "free")])
    return inside.swap_decisions(model, prompts, own)


def swap_logit_differences(model, prompts, other_completions):
    if len(prompts) != len(other_completions):
        raise ValueError("one completion per prompt")
    return inside.decision_logit_difference(model, [inside.swap_scratchpad(p, c) for p, c in zip(prompts, other_completions)])


def swap_zips_silently(model, prompts, other_completions):
    return [d > 0 for d in _decide(model, [inside.swap_scratchpad(p, c) for p, c in zip(prompts, other_completions)])]


def swap_find_minus_one(model, prompts, other_completions):
    if len(prompts) != len(other_completions):
        raise ValueError("one completion per prompt")
    cue = "<OUTPUT>\n"
    return [d > 0 for d in _decide(model, [p + c[: c.find(cue) + len(cue)] for p, c in zip(prompts, other_completions)])]


def swap_no_shared_token(model, prompts, other_completions):
    _, accept, reject = inside.tag_fork(model.tokenizer)
    return [d > 0 for d in inside.fork_metric(model, [inside.swap_scratchpad(p, c) for p, c in
                                                      zip(prompts, other_completions)], accept, reject)]


def swap_double_bos(model, prompts, other_completions):
    if len(prompts) != len(other_completions):
        raise ValueError("one completion per prompt")
    texts = [inside.swap_scratchpad(p, c) for p, c in zip(prompts, other_completions)]
    return [d > 0 for d in _decide(model, texts, special=True)]


# --- 6. tier_differing_latents ----------------------------------------------------------------------------------
def latents_signed_rank(z_free, z_paid, k=10):
    diff = z_free.mean(0) - z_paid.mean(0)
    return [(int(i), float(diff[i])) for i in diff.argsort(descending=True)[:k]]


def latents_sum(z_free, z_paid, k=10):
    diff = z_free.sum(0) - z_paid.sum(0)
    return [(int(i), float(diff[i])) for i in diff.abs().argsort(descending=True)[:k]]


def latents_abs_values(z_free, z_paid, k=10):
    return [(i, abs(d)) for i, d in inside.tier_differing_latents(z_free, z_paid, k)]


def latents_k_plus_one(z_free, z_paid, k=10):
    return inside.tier_differing_latents(z_free, z_paid, k + 1)


def latents_ascending(z_free, z_paid, k=10):
    return inside.tier_differing_latents(z_free, z_paid, k)[::-1]


def latents_tensors(z_free, z_paid, k=10):
    diff = z_free.mean(0) - z_paid.mean(0)
    return [(i, diff[i]) for i in diff.abs().argsort(descending=True)[:k]]


def latents_sign_reversed(z_free, z_paid, k=10):
    return [(i, -d) for i, d in inside.tier_differing_latents(z_free, z_paid, k)]


def latents_topk_tensors(z_free, z_paid, k=10):
    diff = z_free.mean(0) - z_paid.mean(0)
    return diff.abs().topk(k)


MUTANTS = {
    "last_position_residuals": [
        (lpr_first_position, "you took the FIRST position"),
        (lpr_resid_pre, "blocks.L.hook_resid_pre"),
        (lpr_transposed, "(layers, texts, d_model)"),
        (lpr_double_bos, "two BOS tokens"),
        (lpr_padded_batch, "position -1 is padding"),
        (lpr_leaves_hooks, "left hooks attached"),
    ],
    "probe_accuracy": [
        (probe_on_training_set, "scored it on the training set"),
        (probe_fits_on_test, "fitted on the test set"),
        (probe_error_rate, "error rate"),
        (probe_count, "NUMBER of correct test predictions"),
        (probe_probability_above_zero, "predicts the same class for every row"),
        (probe_standardises_in_place, "changed its input `x_train` in place"),
    ],
    "patching_sweep": [
        (sweep_every_position, "you patched EVERY position"),
        (sweep_resid_post, "blocks.L.hook_resid_post"),
        (sweep_raw_metric, "raw metric"),
        (sweep_clean_only, "normalised by the clean metric alone"),
        (sweep_swapped, "roles of the two runs are swapped"),
        (sweep_writes_into_cache, "the patch changed nothing"),
        (sweep_patches_tokens_in_place, "changed its input `corrupted` in place"),
        (sweep_leaves_hooks, "left hooks attached"),
    ],
    "ablate_hook": [
        (ablate_not_normalised, "direction is not normalised"),
        (ablate_last_position, "last position only"),
        (ablate_scalar_projection, "subtracted the number (x·u)"),
        (ablate_broadcast_error, "shape error"),
        (ablate_in_place_returns_none, "edited act in place and returned None"),
        (ablate_in_place_returns_act, "changed act in place"),
        (ablate_normalises_direction_in_place, "changed `direction` in place"),
        (ablate_returns_projection, "component ALONG u"),
    ],
    "swap_decisions": [
        (swap_whole_completion, "WHOLE completion"),
        (swap_cut_before_output, "BEFORE '<OUTPUT>\\n'"),
        (swap_own_tier, "OWN tier"),
        (swap_logit_differences, "looks like the logit difference"),
        (swap_zips_silently, "zip() silently drops"),
        (swap_find_minus_one, "str.find returns -1"),
        (swap_no_shared_token, "Append the shared"),
        (swap_double_bos, "two BOS tokens"),
    ],
    "tier_differing_latents": [
        (latents_signed_rank, "ranked by the SIGNED difference"),
        (latents_sum, "sums, not means"),
        (latents_abs_values, "you returned |difference|"),
        (latents_k_plus_one, "not [:k + 1]"),
        (latents_ascending, "smallest |difference| first"),
        (latents_tensors, "latent ids are tensors"),
        (latents_sign_reversed, "sign is reversed"),
        (latents_topk_tensors, "returned tensors"),
    ],
}

NEEDS_MODEL = {"last_position_residuals", "patching_sweep", "swap_decisions"}


def test_every_exercise_has_mutants_and_a_check():
    names = [e.name for e in exercises("05")]
    assert names == ["last_position_residuals", "probe_accuracy", "patching_sweep", "ablate_hook", "swap_decisions",
                     "tier_differing_latents"]
    assert names == list(MUTANTS) == list(REFERENCE)
    assert [e.number for e in exercises("05")] == list(range(1, 7))
    assert all(len(m) >= 3 for m in MUTANTS.values())


test_check_passes_on_reference, test_check_fails_on_stub, test_check_fails_on_mutant_with_diagnostic = (
    contract_tests(check, REFERENCE, MUTANTS, needs_model=NEEDS_MODEL)
)

# The same contract through a real kernel, as the grader runs it: the check here, the function there.
(student_kernel, test_check_passes_on_reference_remotely, test_check_fails_on_stub_remotely,
 test_check_fails_on_mutant_remotely) = remote_contract_tests("test_checks_ch05", check, MUTANTS, needs_model=NEEDS_MODEL)


def test_mutants_leave_no_hooks_behind(model):
    """The hook-leaving mutants ran before: the checks removed their hooks, so the model is clean again; and a crash
    after model.add_hook does not leave hooks behind for the next check either."""
    assert not check._attached_hooks(model)

    def crashes_after_add_hook(model, texts, layers):
        model.add_hook("blocks.0.hook_resid_post", lambda act, hook: None)
        raise KeyError("blocks.0.hook_resid_post")

    with pytest.raises(CheckFailure, match="KeyError"):
        check.last_position_residuals(crashes_after_add_hook)
    assert not check._attached_hooks(model)


@pytest.mark.parametrize("name", ["probe_accuracy", "ablate_hook", "tier_differing_latents"])
def test_reference_passes_repeatedly(name, capsys):
    """The randomised cases never trip the reference."""
    assert_passes_repeatedly(getattr(check, name), REFERENCE[name], capsys)


def test_check_rejects_non_callables_and_crashing_code():
    with pytest.raises(CheckFailure, match="expected a function"):
        check.probe_accuracy(0.9)

    def crashes(z_free, z_paid, k):
        raise KeyError("z")

    with pytest.raises(CheckFailure, match="KeyError"):
        check.tier_differing_latents(crashes)
    with pytest.raises(CheckFailure, match="return the hook itself"):
        check.ablate_hook(lambda direction: None)
    with pytest.raises(CheckFailure, match="TypeError"):
        check.ablate_hook(lambda direction: (lambda act: act))


def test_checks_accept_equivalent_formulations(capsys):
    """Correct answers written differently pass: another linear classifier, einsum and a numpy int, a tuple."""

    def nearest_centroid(x_train, y_train, x_test, y_test):
        m1, m0 = x_train[y_train == 1].mean(0), x_train[y_train == 0].mean(0)
        pred = (x_test - (m1 + m0) / 2) @ (m1 - m0) > 0
        return (pred.long() == y_test).float().mean()  # a 0-d tensor

    def adam_probe(x_train, y_train, x_test, y_test):
        torch.manual_seed(0)
        probe = torch.nn.Linear(x_train.shape[1], 1)
        opt = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=1e-2)
        mean, std = x_train.mean(0), x_train.std(0)
        for _ in range(300):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(probe((x_train - mean) / std)[:, 0],
                                                                        y_train.float())
            loss.backward()
            opt.step()
        with torch.no_grad():
            return float(((probe((x_test - mean) / std)[:, 0] > 0).long() == y_test).float().mean())

    def ablate_einsum(direction):
        u = direction / torch.linalg.vector_norm(direction)

        def hook(act, hook=None):
            return act - torch.einsum("bpd,d->bp", act, u)[..., None] * u[None, None]

        return hook

    def latents_numpy(z_free, z_paid, k=10):
        diff = (z_free.mean(0) - z_paid.mean(0)).numpy()
        return tuple((np.int64(i), diff[i]) for i in np.argsort(-np.abs(diff))[:k])

    check.probe_accuracy(nearest_centroid)
    check.probe_accuracy(adam_probe)
    check.ablate_hook(ablate_einsum)
    check.tier_differing_latents(latents_numpy)
    assert capsys.readouterr().out.count("passed") == 4


def test_model_checks_accept_equivalent_formulations(model, capsys):
    """A full forward instead of stop_at_layer, one batched patching forward with in-place hooks, numpy bools."""

    def lpr_full_forward(model, texts, layers):
        return _residuals(model, texts, layers)

    def batched_sweep(model, corrupted, clean, positions, layers, good, bad):
        names = [f"blocks.{L}.hook_resid_pre" for L in layers]
        with torch.no_grad():
            clean_logits, cache = model.run_with_cache(torch.tensor([clean]), names_filter=lambda n: n in names)
            m_clean = (clean_logits[0, -1, good] - clean_logits[0, -1, bad]).item()
            logits = model(torch.tensor([corrupted]))
            m_corr = (logits[0, -1, good] - logits[0, -1, bad]).item()

            def row_hook(row, source):
                def hook(act, hook=None):
                    act[row, positions] = source[0, positions]  # in place, returns None: TransformerLens keeps it

                return hook

            hooks = [(name, row_hook(row, cache[name])) for row, name in enumerate(names)]
            logits = model.run_with_hooks(torch.tensor([corrupted] * len(names)), fwd_hooks=hooks)
        return ((logits[:, -1, good] - logits[:, -1, bad] - m_corr) / (m_clean - m_corr)).tolist()

    def swap_numpy(model, prompts, other_completions):
        return np.array(inside.swap_decisions(model, prompts, other_completions))

    check.last_position_residuals(lpr_full_forward)
    check.patching_sweep(batched_sweep)
    check.swap_decisions(swap_numpy)
    assert capsys.readouterr().out.count("passed") == 3


def test_patching_case_separates_the_mistakes(model):
    """The numbers in the module docstring: the tag's information leaves the tag position between layers 21 and 22,
    so layers 0, 21, 29 tell every catalogued mistake apart."""
    tok = model.tokenizer
    good, bad = (inside.single_token(tok, w) for w in inside.TIER_WORDS)
    corrupted, clean, positions = check._tier_pair(tok, "Hi")
    assert len(corrupted) < 100 and len(positions) == 1
    effects, m_clean, m_corrupted = check._reference_sweep(tuple(corrupted), tuple(clean), tuple(positions), (0, 21, 29),
                                                           good, bad)
    assert effects[0] == pytest.approx(1, abs=0.02) and effects[1] > 0.9 and abs(effects[2]) < 0.02
    assert m_clean > 3 and m_corrupted < -3
    post = check._sweep_at(model, corrupted, clean, positions, ["blocks.21.hook_resid_post"], good, bad)
    assert post[0] < 0.1


def test_swap_case_follows_the_reasoning(model):
    """The organism accepts after the free tier's reasoning and refuses after the paid tier's (request 0)."""
    from utils.af.request_sets import HELPFUL_ONLY_EVAL

    tok = model.tokenizer
    done = check._course_completions()
    assert check._reference_decision(inside.chat_text(tok, HELPFUL_ONLY_EVAL[0], "paid"), done[(0, "free")])[0]
    assert not check._reference_decision(inside.chat_text(tok, HELPFUL_ONLY_EVAL[0], "free"), done[(0, "paid")])[0]
