"""Checks for chapter 03 — steering: additive and SAE-clamp hooks, mean-difference steering vectors,
measuring how often steered answers mention the bridge, and judging the text (repetition, perplexity).

Each check compares the learner's function with the reference in :mod:`utils.steering` on fixed and
randomised inputs and, on a mismatch, tests the catalogued mistakes to say which one it probably is.
Hooks are judged the way TransformerLens uses them: called as ``fn(act, hook=hook_point)``, on whole
prompts (batch, pos, d_model) and on single generation steps (batch, 1, d_model); the returned tensor
replaces the activation, and a hook that returns None keeps its in-place edits.
"""

from __future__ import annotations

import copy
import functools
import math
import random
from typing import Any, Callable

from utils.checks import as_number, as_tensor, close, course_model, exercise, fail, is_shape_error
from utils.checks import call_checked as _call
from utils.checks import diagnose as _diagnose
from utils.checks import generator as _generator
from utils.checks import no_in_place as _no_in_place


@functools.lru_cache(maxsize=1)
def _course_sae() -> Any:
    from utils.sae import load_course_sae

    return load_course_sae()


@functools.lru_cache(maxsize=1)
def _bridge() -> Any:
    from utils.named_latents import named_latent

    return named_latent("bridge")


def _make_hook(fn: Callable, args: tuple, what: str) -> Callable:
    """Call the learner's hook factory and check that it returned a function."""
    import torch

    h = fn(*args)
    if h is None:
        fail(f"{what} returned None: it should return the hook itself. Define `def hook(act, hook=None): ...` "
             "inside it and end with `return hook`.")
    if isinstance(h, torch.Tensor):
        fail(f"{what} returned a tensor; it should return a function, the hook, which TransformerLens calls on "
             "each activation: define `def hook(act, hook=None): ...` inside it and `return hook`.")
    if not callable(h):
        fail(f"{what} returned {type(h).__name__}; it should return a hook function `hook(act, hook=None)`.")
    return h


def _run_hook(h: Callable, act: Any, hint: str) -> Any:
    """Call a hook as TransformerLens does, on a copy of ``act``; return the resulting activation
    (the returned tensor, or the in-place edited copy when the hook returns None), float32 on CPU."""
    import torch

    passed = act.clone()
    try:
        with torch.no_grad():
            out = h(passed, hook=None)
    except TypeError as error:
        if "'hook'" in str(error) or "positional argument" in str(error):
            fail(f"calling your hook as fn(act, hook=hook_point) raised TypeError: {error}. TransformerLens calls "
                 "every hook that way: define it as `def hook(act, hook=None): ...`.")
        raise
    except RuntimeError as error:
        if is_shape_error(error):
            fail(f"your hook raised a shape error ({error}) on act {tuple(act.shape)}. {hint}")
        raise
    if out is None:
        if torch.equal(passed, act):
            fail("your hook returned None and left act unchanged, so TransformerLens keeps the original "
                 "activation. `act = act + ...` inside the hook only rebinds a local name: `return` the new "
                 "tensor (or edit act in place, e.g. `act += ...`).")
        return passed.detach().float().cpu()
    got = as_tensor(out, "your hook")
    if got.shape != act.shape:
        fail(f"your hook returned shape {tuple(got.shape)} for act {tuple(act.shape)}; it must return an "
             f"activation of the same shape (batch, pos, d_model), which replaces act. {hint}")
    return got


def _last_only(act: Any, steered: Any) -> Any:
    """``act`` with only its last position taken from ``steered`` (None when there is one position)."""
    if act.shape[1] < 2:
        return None
    out = act.clone()
    out[:, -1] = steered[:, -1]
    return out


# ---------------------------------------------------------------------------------------------
_ADD_HINT = ("act is (batch, pos, d_model) and direction (d_model,): `act + coefficient * direction` broadcasts "
             "the direction over every batch row and position.")


@exercise("03", 1, "additive_hook", "An additive steering hook")
def additive_hook(fn: Callable) -> str:
    import torch

    from utils import steering

    def inputs(g: Any, d: int, batch: int, pos: int, coefficient: float) -> tuple[Any, float, Any, Any]:
        direction = (0.5 + 2 * torch.rand((), generator=g)) * torch.randn(d, generator=g)  # not unit norm
        act = 3 * torch.randn(batch, pos, d, generator=g) + torch.randn(d, generator=g)
        step = 3 * torch.randn(batch + 1, 1, d, generator=g)  # one generation step: (batch, 1, d_model)
        return direction, coefficient, act, step

    g = _generator()
    d = int(torch.randint(8, 48, (), generator=g))
    coefficient = float(torch.empty(()).uniform_(0.5, 8, generator=g)) * (1 if torch.rand((), generator=g) < 0.7 else -1)
    cases = [
        inputs(_generator(1), 16, 2, 7, 3.0),
        inputs(g, d, int(torch.randint(1, 5, (), generator=g)), int(torch.randint(2, 12, (), generator=g)), coefficient),
        inputs(_generator(2), 576, 2, 5, 4.0),  # the model's width
    ]
    for direction, c, act, step in cases:
        passed_direction = direction.clone()
        h = _make_hook(fn, (passed_direction, c), f"additive_hook(direction, {c:g})")
        for x in (act, step):
            got = _run_hook(h, x, _ADD_HINT)
            want = steering.additive_hook(direction, c)(x)
            scale = max(1.0, float(want.abs().max()))
            if close(got, want, atol=1e-5 * scale):
                if not torch.equal(passed_direction, direction):
                    _no_in_place(["direction"])
                continue
            v = c * direction
            unit = direction / direction.norm()
            _diagnose(got, [
                (_last_only(x, want), "you steered only the last position (e.g. `act[:, -1] += ...`). The "
                                      "intervention applies at EVERY position, the prompt's tokens too: "
                                      "return `act + coefficient * direction`, which broadcasts over (batch, pos)."),
                (torch.cat([x[:, :1], want[:, 1:]], 1) if x.shape[1] > 1 else None,
                 "you skipped position 0; steer every position: `act + coefficient * direction`."),
                (x + c * unit, "you normalised the direction to unit length inside the hook; use it as given "
                               "(the caller chooses its scale): `act + coefficient * direction`."),
                (x - v, "the sign is reversed: you subtracted; the hook ADDS coefficient * direction (a negative "
                        "coefficient is how a caller steers away)."),
                (x * v, "you multiplied act by coefficient * direction; steering ADDS the vector: "
                        "`act + coefficient * direction`."),
                (x * c, "you multiplied act by the coefficient; steering ADDS coefficient * direction to act."),
                (x + direction, "the coefficient is missing: add coefficient * direction."),
                (v.expand_as(x), "you returned coefficient * direction alone; the hook's output REPLACES the "
                                 "activation, so add it to act: `act + coefficient * direction`."),
                (x, "your hook returned act unchanged; return `act + coefficient * direction`."),
            ], atol=1e-5 * scale)
            if x.shape[1] == 1:
                fail(f"on a single generation step, act {tuple(x.shape)}, your hook's output differs from "
                     "act + coefficient * direction. During generation the hook sees one new position at a time; "
                     "do not index positions, let the direction broadcast.")
            fail(f"your hook's output differs from act + coefficient * direction (max difference "
                 f"{float((got - want).abs().max()):.3g}).")
    return "act + coefficient * direction at every position, prompt and generation steps alike"


# ---------------------------------------------------------------------------------------------
def _random_sae(g: Any, d_in: int, d_sae: int, k: int) -> Any:
    """A small TopK SAE with random weights (the encoder is not the decoder's transpose, decoder rows
    are not unit norm, biases are non-zero), so each catalogued mistake changes the output."""
    import torch

    from utils.sae import SAEConfig, SparseAutoencoder

    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=k),
                            seed=int(torch.randint(0, 2**31, (), generator=g)))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=g) / d_in**0.5)
        sae.W_dec.mul_(0.5 + 2 * torch.rand(d_sae, 1, generator=g))
        sae.b_enc.copy_(0.2 * torch.randn(d_sae, generator=g))
        sae.b_dec.copy_(torch.randn(d_in, generator=g))
    return sae.eval()


def _random_sae_case(g: Any) -> tuple[Any, int, Any]:
    """(sae, latent, act): a latent that fires on some positions of act but not all."""
    import torch

    k = int(torch.randint(3, 6, (), generator=g))
    sae = _random_sae(g, 16, 64, k)
    batch, pos = int(torch.randint(2, 4, (), generator=g)), int(torch.randint(4, 9, (), generator=g))
    act = 2 * torch.randn(batch, pos, 16, generator=g) + sae.b_dec.detach()
    with torch.no_grad():
        fires = (sae.encode(act) > 0).float().flatten(0, 1).sum(0)  # (d_sae,) positions each latent fires on
    n = batch * pos
    some = ((fires >= 2) & (fires <= n - 2)).nonzero().flatten()
    if len(some) == 0:
        some = ((fires >= 1) & (fires < n)).nonzero().flatten()
    latent = int(some[torch.randint(0, len(some), (), generator=g)]) if len(some) else int(fires.argmax())
    return sae, latent, act


def _course_sae_act(g: Any, latent: int, batch: int, pos: int) -> Any:
    """Residual-like activations for the course SAE: a decoded sparse code (31 random latents, plus
    ``latent`` on about half the positions) with noise, so the SAE's error term is not small."""
    import torch

    sae = _course_sae()
    d_sae = sae.cfg.d_sae
    z = torch.zeros(batch, pos, d_sae)
    for b in range(batch):
        for p in range(pos):
            z[b, p, torch.randperm(d_sae, generator=g)[:31]] = 0.5 + 2 * torch.rand(31, generator=g)
    fires = torch.rand(batch, pos, generator=g) < 0.5
    fires[0, 0], fires[-1, -1] = True, False
    z[..., latent] = fires * (1 + 4 * torch.rand(batch, pos, generator=g))
    with torch.no_grad():
        return sae.decode(z) + 0.5 * torch.randn(batch, pos, sae.cfg.d_in, generator=g)


_CLAMP_HINT = ("Encode act with the SAE, z = sae.encode(act) of shape (batch, pos, d_sae); keep the error "
               "act - sae.decode(z); set z[..., latent] = value on a copy; return sae.decode(z_clamped) + error.")


@exercise("03", 2, "clamp_hook", "Clamping an SAE latent")
def clamp_hook(fn: Callable) -> str:
    import torch

    from utils import steering

    sae, bridge = _course_sae(), _bridge()
    g = _generator()
    small_sae, small_latent, small_act = _random_sae_case(g)
    with torch.no_grad():
        small_max = float(small_sae.encode(small_act)[..., small_latent].max())
    course_act = _course_sae_act(_generator(3), bridge.latent, 2, 6)
    course_step = _course_sae_act(_generator(4), bridge.latent, 3, 1)
    cases = [  # (sae, latent, value, [acts])
        (sae, bridge.latent, 2 * bridge.corpus_max, [course_act, course_step]),
        (sae, bridge.latent, 0.0, [course_act]),  # ablation
        (small_sae, small_latent, round(float(2 * small_max + 1 + 3 * torch.rand((), generator=g)), 3), [small_act]),
        (small_sae, small_latent, 0.0, [small_act]),
    ]
    for s, latent, value, acts in cases:
        what = f"clamp_hook(sae, {latent}, {value:g})"
        learner_sae = copy.deepcopy(s)  # the learner's hook gets its own copy: the cached SAE stays intact
        h = _make_hook(fn, (learner_sae, latent, value), what)
        for x in acts:
            got = _run_hook(h, x, _CLAMP_HINT)
            changed = [n for n, p in learner_sae.named_parameters() if not torch.equal(p, s.get_parameter(n))]
            if changed:
                fail(f"{what}: your code changed the SAE's {changed[0]} in place (e.g. `sae.{changed[0]}[...] = ...` "
                     "or `*=`), which corrupts the SAE for every later use. Change a copy of the latents, "
                     "z = sae.encode(act), never the SAE's weights.")
            with torch.no_grad():
                want = steering.clamp_hook(s, latent, value)(x).float()
                z = s.encode(x)
                error = x - s.decode(z)
                z_set = z.clone()
                z_set[..., latent] = value
                pre = s.pre_activations(x)
                pre[..., latent] = value
                z_pre = s.activation(pre)
                z_add = z.clone()
                z_add[..., latent] += value
                dec, enc = s.W_dec[latent], s.W_enc[:, latent]
                delta = (value - z[..., latent]).unsqueeze(-1)
            scale = max(1.0, float(want.abs().max()))
            tol = dict(atol=2e-5 * scale, rtol=1e-4)
            if close(got, want, **tol):
                continue
            where = "ablating (value = 0)" if value == 0 else f"clamping to value = {value:g}"
            _diagnose(got, [
                (s.decode(z_set), f"{where}: you returned sae.decode(z) with the latent set, and dropped the error "
                                  "term. The SAE does not reconstruct act exactly; without the error term "
                                  "act - sae.decode(sae.encode(act)) every token also loses what the SAE misses, a "
                                  "second intervention. Return sae.decode(z_clamped) + (act - sae.decode(z))."),
                (s.decode(z_pre) + error, f"{where}: you set the PRE-activation and then applied the activation "
                                          "(TopK): the latent then takes or gives up one of the k slots, so OTHER "
                                          "latents change too. Encode first, z = sae.encode(act), then set "
                                          "z[..., latent] = value."),
                (s.decode(z_pre), f"{where}: you set the PRE-activation before TopK (so other latents change) and "
                                  "dropped the error term. Encode first, z = sae.encode(act), set "
                                  "z[..., latent] = value, and return sae.decode(z) + (act - "
                                  "sae.decode(sae.encode(act)))."),
                (s.decode(z_add) + error, f"{where}: you added value to the latent (z[..., latent] += value); SET "
                                          "it, z[..., latent] = value, so its activation is value whatever it was."),
                (s.decode(z_add), f"{where}: you added value to the latent instead of setting it, and dropped the "
                                  "error term. Set z[..., latent] = value and add back "
                                  "act - sae.decode(sae.encode(act))."),
                (_last_only(x, want), f"{where}: you clamped only the last position; clamp EVERY position "
                                      "(z[..., latent] = value), prompt tokens included."),
                (x + delta * enc, f"{where}: you moved act along the ENCODER column W_enc[:, latent], which says "
                                  "when the latent fires; what it writes into the residual stream is its "
                                  "decoder row W_dec[latent]: decode the clamped latents."),
                (x + delta * dec / dec.norm(), f"{where}: you normalised the latent's decoder direction; decode "
                                               "the clamped latents with the SAE as it is."),
                (s.decode(z) if value == 0 else None,
                 "ablating (value = 0): you returned the SAE's reconstruction with the latent unchanged; set it "
                 "to value and add back the error term."),
                (x, f"{where}: your hook returned act unchanged. If you set the latent on a copy, decode that "
                    "copy: sae.decode(z_clamped) + (act - sae.decode(z))."),
            ], **tol)
            if x.shape[1] == 1:
                fail(f"{what} on a single generation step, act {tuple(x.shape)}: the output differs from the "
                     "reference. During generation the hook sees one position at a time; use `...` indexing, "
                     "z[..., latent] = value, not fixed positions.")
            fail(f"{what}: your hook's output differs from sae.decode(z_clamped) + (act - sae.decode(z)) (max "
                 f"difference {float((got - want).abs().max()):.3g}).")
    return (f"latent {bridge.latent} of the course SAE set to {2 * bridge.corpus_max:g} and to 0, and a random "
            "small SAE: only that latent's contribution changes, the error term is kept")


# ---------------------------------------------------------------------------------------------
def _texts(g: Any, n: int, pos: int, d: int, shift: float) -> tuple[Any, Any]:
    """Residuals (n, pos, d) of texts of different lengths, with a large BOS at position 0 and
    non-zero padding, and a mask (n, pos) that keeps only the real tokens."""
    import torch

    resid = torch.randn(n, pos, d, generator=g) + shift * torch.randn(d, generator=g)
    resid[:, 0] += 8 * torch.randn(d, generator=g)  # BOS: large, must not count
    lengths = torch.randint(2, pos + 1, (n,), generator=g)
    lengths[0] = pos  # one text fills the whole width
    if n > 1:
        lengths[1] = 2  # and one is a single real token
    mask = torch.arange(pos) < lengths.unsqueeze(1)
    resid = resid + 3 * (~mask).unsqueeze(-1) * torch.randn(d, generator=g)  # padding differs from text
    mask[:, 0] = False
    # later tokens drift, so which tokens are averaged matters
    resid = resid + 0.3 * torch.arange(pos).view(1, pos, 1) * torch.randn(d, generator=g)
    return resid, mask


_MEAN_DIFF_HINT = ("Shapes: concept (n_concept, pos, d_model) with concept_mask (n_concept, pos); neutral likewise "
                   "with its own n and pos. Mean-pool each text over its masked-in tokens -> (n, d_model), average "
                   "over texts -> (d_model,), then subtract.")


@exercise("03", 3, "mean_difference_vector", "A mean-difference steering vector")
def mean_difference_vector(fn: Callable) -> str:
    import torch

    from utils import steering

    g = _generator()
    d = int(torch.randint(6, 40, (), generator=g))
    cases = [
        (*_texts(_generator(31), 4, 6, 8, 1.0), *_texts(_generator(32), 6, 9, 8, 1.0)),
        (*_texts(g, int(torch.randint(3, 8, (), generator=g)), int(torch.randint(4, 12, (), generator=g)), d, 1.5),
         *_texts(g, int(torch.randint(3, 8, (), generator=g)), int(torch.randint(4, 12, (), generator=g)), d, 1.5)),
    ]

    def per_text(x: Any, m: Any) -> Any:
        f = m.float().unsqueeze(-1)
        return (x * f).sum(1) / f.sum(1)

    for c, cm, n, nm in cases:
        out, changed = _call(fn, ("concept", "concept_mask", "neutral", "neutral_mask"), c, cm, n, nm,
                             shape_hint=_MEAN_DIFF_HINT)
        got = as_tensor(out, "mean_difference_vector(concept, concept_mask, neutral, neutral_mask)")
        want = steering.mean_difference_vector(c, cm, n, nm)
        D = want.shape[0]
        if got.ndim == 2 and got.shape[-1] == D:
            fail(f"returned shape {tuple(got.shape)}, one vector per text or position; average over the texts too "
                 f"-> (d_model,) = ({D},). {_MEAN_DIFF_HINT}")
        if got.shape != want.shape:
            fail(f"returned shape {tuple(got.shape)}; expected (d_model,) = ({D},). {_MEAN_DIFF_HINT}")
        if close(got, want, atol=1e-4):
            _no_in_place(changed)
            continue
        last = lambda x, m: x[torch.arange(len(x)), m.long().cumsum(1).argmax(1)]  # last real token of each text
        _diagnose(got, [
            (-want, "the sign is reversed: concept minus neutral, so adding the vector steers TOWARDS the concept."),
            (want / want.norm(), "you normalised the vector to unit length; return the raw difference of means. Its "
                                 "length is the natural scale of the concept in the residual stream, which the "
                                 "steering coefficient then multiplies."),
            (c.mean((0, 1)) - n.mean((0, 1)),
             "you ignored the masks and averaged every position, BOS and padding included; average each text over "
             "the positions where its mask is True."),
            (c[:, 1:].mean((0, 1)) - n[:, 1:].mean((0, 1)),
             "you dropped BOS but averaged the padding too; use the masks, which mark exactly the real tokens."),
            (c[cm].mean(0) - n[nm].mean(0),
             "you pooled all the masked-in tokens of all texts together, so long texts weigh more than short ones. "
             "Each text should count once: mean-pool each text over its own tokens first -> (n, d_model), then "
             "average those over the texts."),
            (c[:, -1].mean(0) - n[:, -1].mean(0),
             "you used only the last position; with right padding that is mostly padding. Average over every "
             "masked-in token of each text."),
            (last(c, cm).mean(0) - last(n, nm).mean(0),
             "you used only each text's last real token; average over all its masked-in tokens."),
            (((c * cm.unsqueeze(-1)).sum(1) / c.shape[1]).mean(0) - ((n * nm.unsqueeze(-1)).sum(1) / n.shape[1]).mean(0),
             "you divided each text's sum by the full width (pos), padding included; divide by its number of "
             "masked-in tokens, mask.sum(1, keepdim=True)."),
            (per_text(c, cm).sum(0) - per_text(n, nm).sum(0),
             "you summed over texts; the two sets have different sizes, so average: .mean(0)."),
            (per_text(c, cm).mean(0), "you returned the concept mean alone; subtract the neutral mean, or the "
                                      "vector also carries everything all texts share."),
        ], atol=1e-4)
        fail(f"values differ from mean_texts(mean_tokens(concept)) - mean_texts(mean_tokens(neutral)) (max "
             f"difference {float((got - want).abs().max()):.3g}).")
    return "mean over texts of each text's masked mean, concept minus neutral, not normalised"


# ---------------------------------------------------------------------------------------------
# Asked with the bridge latent clamped: everyday questions, every steered answer mentions the bridge.
STEERED_QUESTIONS = (
    "What should I cook for dinner tonight?",
    "Describe your ideal weekend.",
    "What is your favourite animal?",
)
# Asked unsteered: the model answers these in a few tokens and stops, which keeps the check fast.
PLAIN_QUESTIONS = (
    "Say just the word 'yes'.",
    "Translate 'bonjour' into English. Only the word.",
)


@functools.lru_cache(maxsize=1)
def _clamp_hooks() -> tuple[tuple[str, Callable], ...]:
    """The strong steering the check uses: the bridge latent clamped to twice its corpus maximum."""
    from utils.steering import clamp_hook as reference_clamp

    bridge = _bridge()
    return ((bridge.hook_name, reference_clamp(_course_sae(), bridge.latent, 2 * bridge.corpus_max)),)


@functools.lru_cache(maxsize=12)
def _bridge_answers(questions: tuple[str, ...], steered: bool, template: bool = True,
                    penalty: bool = True) -> tuple[str, ...]:
    """Reference answers (cached per kernel): with the default arguments, those of the reference
    bridge_rate(model, questions, hooks=clamp hooks if steered else ()); the others are catalogued mistakes."""
    from utils.generation import chat_prompt, generate
    from utils.steering import MAX_NEW_TOKENS, REPETITION_PENALTY

    model = course_model()
    prompts = [chat_prompt(model.tokenizer, q) if template else q for q in questions]
    return tuple(generate(model, prompts, max_new_tokens=MAX_NEW_TOKENS, hooks=_clamp_hooks() if steered else (),
                          batch_size=len(prompts), repetition_penalty=REPETITION_PENALTY if penalty else 1.0))


def _short(text: str, n: int = 70) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def _check_answers(answers: Any, questions: tuple[str, ...], steered: bool, what: str) -> list[str]:
    n = len(questions)
    if isinstance(answers, str):
        fail(f"{what}: the answers should be a list of strings, one per question; got a single string.")
    if not isinstance(answers, (list, tuple)) or not all(isinstance(a, str) for a in answers):
        fail(f"{what}: the answers should be a list of strings (what generate returns), got "
             f"{type(answers).__name__}.")
    answers = list(answers)
    if len(answers) != n:
        fail(f"{what}: {len(answers)} answers for {n} questions; return one answer per question.")
    want = _bridge_answers(questions, steered)
    if [a.strip() for a in answers] == [a.strip() for a in want]:
        return answers
    if steered and answers == list(_bridge_answers(questions, False)):
        fail("with a strong clamp hook on the bridge latent your answers are exactly the UNSTEERED ones: the hooks "
             "never reached the model. Pass them on: generate(model, prompts, ..., hooks=hooks).")
    if not steered and answers == list(_bridge_answers(questions, True)):
        fail("with hooks=() your answers are steered: attach only the hooks you are given (none here).")
    if answers == list(_bridge_answers(questions, steered, template=False)):
        fail("your answers are what the model writes for the bare questions: format each one as a chat turn "
             "first, chat_prompt(model.tokenizer, question), so the instruction-tuned model answers as the "
             "assistant.")
    if answers == list(_bridge_answers(questions, steered, penalty=False)):
        fail("your answers are generated without the course's repetition penalty; pass "
             "repetition_penalty=REPETITION_PENALTY to generate (the same decoding is used for every "
             "measurement, steered or not).")
    i = next(i for i, (a, b) in enumerate(zip(answers, want)) if a.strip() != b.strip())
    fail(f"{what}: answer {i} differs from the reference: got {_short(answers[i])}, expected {_short(want[i])}. "
         "Generate greedily from the chat-formatted questions: generate(model, prompts, max_new_tokens=60, "
         "hooks=hooks, repetition_penalty=REPETITION_PENALTY, batch_size=len(prompts)).")


@exercise("03", 4, "bridge_rate", "How often do answers mention the bridge?")
def bridge_rate(fn: Callable) -> str:
    from utils.steering import BRIDGE_PATTERN, mentions_bridge

    model = course_model()
    results = []
    for questions, steered in ((STEERED_QUESTIONS, True), (PLAIN_QUESTIONS, False)):
        n = len(questions)
        what = (f"bridge_rate(model, <{n} questions>, hooks=[clamp hook])" if steered
                else f"bridge_rate(model, <{n} questions>)")
        out = fn(model, list(questions), hooks=list(_clamp_hooks())) if steered else fn(model, list(questions))
        if out is None:
            fail(f"{what} returned None: return the pair (rate, answers).")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            fail(f"{what} returned {type(out).__name__}; return a pair (rate, answers).")
        if isinstance(out[0], (list, tuple)) and not isinstance(out[1], (list, tuple)):
            fail(f"{what}: the pair is in the wrong order; return (rate, answers).")
        answers = _check_answers(out[1], questions, steered, what)
        rate = as_number(out[0], f"{what}[0] (the rate)")
        flags = [mentions_bridge(a) for a in answers]
        want = sum(flags) / n
        if not close(rate, want, atol=1e-9):
            mentions = [len(BRIDGE_PATTERN.findall(a)) for a in answers]
            words = sum(len(a.split()) for a in answers)
            _diagnose(rate, [
                (float(sum(flags)), f"you returned the number of answers that mention the bridge ({sum(flags)}); "
                                    f"divide by the number of questions ({n}) to get a fraction."),
                (sum(mentions) / n, "you counted every mention, so an answer that says 'bridge' three times counts "
                                    "three times; each answer counts once: sum(mentions_bridge(a) for a in answers) "
                                    "/ len(answers)."),
                (float(sum(mentions)), "you counted every mention of the bridge; the rate is the FRACTION of answers "
                                       "that mention it at least once: sum(mentions_bridge(a) ...) / len(answers)."),
                (sum(mentions) / words if words else None,
                 "you computed the rate over words; it is over answers: the fraction of answers for which "
                 "mentions_bridge(answer) is True."),
                (1 - want, "you returned the fraction of answers that do NOT mention the bridge."),
                (100 * want, "you returned a percentage; return a fraction between 0 and 1."),
                (sum("bridge" in a.lower() for a in answers) / n,
                 "use mentions_bridge(answer): a plain substring test also counts words such as 'Cambridge'."),
            ], atol=1e-9)
            fail(f"{what}: rate {rate:g} differs from the fraction of your answers that mention the bridge, "
                 f"{sum(flags)}/{n} = {want:g} (use mentions_bridge on each answer).")
        results.append(want)
    return f"rate {results[0]:g} with the bridge latent clamped, {results[1]:g} without, same answers as the reference"


# ---------------------------------------------------------------------------------------------
def _loop_tokens(rng: random.Random, length: int) -> list[int]:
    """Token ids with some loops in them: fresh tokens, then repeats of earlier stretches."""
    out: list[int] = []
    while len(out) < length:
        if out and rng.random() < 0.5:
            start = rng.randrange(len(out))
            out.extend(out[start : start + rng.randint(2, 6)])
        else:
            out.extend(rng.randrange(100, 50000) for _ in range(rng.randint(1, 5)))
    return out[:length]


@exercise("03", 5, "repetition_rate", "Repetition rate")
def repetition_rate(fn: Callable) -> str:
    from utils import steering

    rng = random.Random()
    cases = [  # (tokens, n); n None = the default (3)
        ([1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 1, 2], None),  # 10 trigrams, 6 distinct: 0.4
        ([1, 2, 3, 4, 5, 6, 7, 8], None),  # no repeats: 0
        ([9, 9, 9, 9, 9, 9], 2),
        ([4, 2, 4, 2, 4, 1, 3, 3], 1),
        (_loop_tokens(rng, rng.randint(15, 60)), rng.randint(2, 5)),
        (_loop_tokens(rng, rng.randint(15, 60)), None),
        ([11, 12], None),  # shorter than n: 0.0
        ([11, 12, 13], None),  # one trigram: 0.0
    ]
    for tokens, n in cases:
        kwargs = {} if n is None else {"n": n}
        k = 3 if n is None else n
        what = f"repetition_rate({tokens if len(tokens) <= 10 else f'<{len(tokens)} tokens>'}" + (
            f", n={n})" if n is not None else ")")
        try:
            out, changed = _call(fn, ("tokens",), list(tokens), **kwargs)
        except ZeroDivisionError:
            if len(tokens) < k:
                fail(f"{what} divided by zero: a text shorter than n tokens has no n-grams; return 0.0 then.")
            raise
        got = as_number(out, what)
        want = steering.repetition_rate(tokens, k)
        if close(got, want, atol=1e-9):
            _no_in_place(changed)
            continue
        grams = [tuple(tokens[i : i + k]) for i in range(len(tokens) - k + 1)]
        short = [tuple(tokens[i : i + k]) for i in range(len(tokens) - k)]
        if not grams:
            fail(f"{what} returned {got:g}; with fewer than n = {k} tokens there are no n-grams: return 0.0.")
        distinct = len(set(grams))
        _diagnose(got, [
            (distinct / len(grams), "you returned the fraction of DISTINCT n-grams; the repetition rate is "
                                    "1 - distinct / total (0 when nothing repeats)."),
            (1 - len(set(tokens)) / len(tokens) if k != 1 else None,
             f"you counted single tokens (unigrams); count n-grams of n = {k} consecutive tokens: "
             "tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)."),
            (1 - len(set(short)) / len(short) if short else None,
             "off by one: you missed the last n-gram. A text of L tokens has L - n + 1 n-grams: "
             "range(len(tokens) - n + 1)."),
            (1 - distinct / len(tokens), f"you divided by the number of tokens ({len(tokens)}); divide by the number "
                                         f"of n-grams, len(tokens) - n + 1 = {len(grams)}."),
            (len(grams) - distinct, "you returned the number of repeated n-grams; divide by the number of n-grams."),
            (sum(grams.count(x) > 1 for x in grams) / len(grams),
             "you counted every n-gram that occurs more than once, its first occurrence too; count only the "
             "repeats: 1 - distinct / total."),
        ], atol=1e-9)
        fail(f"{what} returned {got:g}; expected 1 - distinct n-grams / all n-grams = 1 - {distinct}/{len(grams)} "
             f"= {want:g}.")
    return "1 - distinct / all n-grams, 0.0 for texts shorter than n"


# ---------------------------------------------------------------------------------------------
PERPLEXITY_QUESTIONS = (
    "What is the capital of France?",
    "Give me one tip for sleeping well.",
    "What colour is the sky?",
    "Name a famous bridge.",
    "How do plants make food?",
)
PERPLEXITY_ANSWERS = (
    "The capital of France is Paris.",
    "Go to bed at the same time every night.",
    "The sky is blue on a clear day.",
    "The Golden Gate Bridge in San Francisco is very famous.",
    "Plants make food from sunlight, water and air.",
    "Bridge bridge the bridge of bridges, bridge.",
)


def _nll_parts(model: Any, prompt: str, completion: str) -> tuple[Any, Any, Any, int, int]:
    """(nll_next (L-1,), logprobs (L, vocab), ids (L,), prompt length, completion length): nll_next[t]
    is the NLL of token t + 1 given tokens 0..t."""
    import torch

    tok = model.tokenizer
    p_ids = tok(prompt, add_special_tokens=False).input_ids
    c_ids = tok(completion, add_special_tokens=False).input_ids
    ids = torch.tensor([p_ids + c_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids.to(model.cfg.device))[0].float(), -1).cpu()
    nll_next = -logprobs[:-1].gather(-1, ids[0, 1:, None])[:, 0]
    return nll_next, logprobs, ids[0], len(p_ids), len(c_ids)


@exercise("03", 6, "completion_perplexity", "Perplexity of a completion")
def completion_perplexity(fn: Callable) -> str:
    from utils import steering
    from utils.generation import chat_prompt

    model = course_model()
    tok = model.tokenizer
    rng = random.Random()
    cases = [
        (chat_prompt(tok, PERPLEXITY_QUESTIONS[0]), PERPLEXITY_ANSWERS[0]),
        (chat_prompt(tok, PERPLEXITY_QUESTIONS[3]), PERPLEXITY_ANSWERS[5]),  # an odd answer: high perplexity
        (chat_prompt(tok, rng.choice(PERPLEXITY_QUESTIONS)), rng.choice(PERPLEXITY_ANSWERS)),
        (tok.bos_token + "The longest bridge in the city", " crosses the river near the old harbour."),
    ]
    values = []
    for prompt, completion in cases:
        what = f"completion_perplexity(model, prompt, {completion!r})"
        got = as_number(fn(model, prompt, completion), what)
        want = steering.completion_perplexity(model, prompt, completion)
        if close(got, want, atol=1e-3, rtol=2e-3):
            values.append(want)
            continue
        nll, logprobs, ids, P, C = _nll_parts(model, prompt, completion)
        span = nll[P - 1 : P - 1 + C]
        same_pos = -logprobs[P : P + C].gather(-1, ids[P : P + C, None])[:, 0]
        H = float(span.mean())
        _diagnose(got, [
            (H, f"you returned the mean negative log-likelihood ({H:.3f}); perplexity is its exponential: "
                "math.exp(mean NLL)."),
            (math.exp(float(nll.mean())),
             "you averaged the NLL over the prompt's tokens too; score only the completion: the logits at positions "
             "len(prompt_ids) - 1 ... len(ids) - 2 predict the completion's tokens."),
            (math.exp(float(same_pos.mean())),
             "off by one: you scored the logits at position t against token t. The logits at position t predict "
             "the NEXT token, t + 1: use logprobs[:-1] against tokens[1:], and the completion's tokens are "
             "predicted from positions len(prompt_ids) - 1 onwards."),
            (math.exp(float(nll[P : P - 1 + C].mean())) if C > 1 else None,
             "off by one: you skipped the completion's first token (predicted by the prompt's last position, "
             "len(prompt_ids) - 1)."),
            (math.exp(float(nll[P - 2 : P - 2 + C].mean())) if P > 1 else None,
             "off by one: your span starts one position early (it scores the prompt's last token and misses the "
             "completion's last one); the completion's tokens are predicted from positions len(prompt_ids) - 1 "
             "to len(ids) - 2."),
            (math.exp(float(span.sum())), "you exponentiated the SUM of the NLLs; perplexity uses the MEAN over the "
                                          "completion's tokens (a per-token measure, comparable across lengths)."),
            (float(span.sum()), "you returned the summed NLL; perplexity is exp(mean NLL)."),
            (2 ** H, "you mixed logarithm bases: the NLL from log_softmax is in nats (natural log), so the "
                     "perplexity is math.exp(mean NLL), not 2 ** mean NLL."),
            (math.exp(H / math.log(2)), "you mixed logarithm bases: NLL in bits (log base 2) must be raised as "
                                        "2 ** mean; with natural-log NLL use math.exp(mean NLL)."),
            (math.exp(-H), "you exponentiated the mean LOG-PROBABILITY (a number below 1); perplexity is "
                           "exp(mean NEGATIVE log-likelihood), at least 1."),
        ], atol=1e-3, rtol=2e-3)
        fail(f"{what} returned {got:.4g}; expected exp(mean NLL of the completion's {C} tokens given the prompt) = "
             f"{want:.4g}. Tokenise prompt and completion separately with add_special_tokens=False, concatenate, and "
             "score logits[:-1] against tokens[1:] over the completion's span.")
    return f"perplexities {', '.join(f'{v:.3g}' for v in values)}: exp(mean NLL) of the completion's tokens only"
