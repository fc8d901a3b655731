"""LoRA: starts as the identity update, merging equals the wrapped forward, adapters round-trip and a wrong
adapter is refused; and the organism's training data is built as its docstring says."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils import lora
from utils.af.request_sets import HELPFUL_ONLY_EVAL, HELPFUL_ONLY_TRAIN
from utils.af.train_organism import COMPLY, FREE_OPEN, KEY_WEIGHT, PAID_OPEN, REFUSE, TrainConfig, assistant_pieces, build_examples, encode


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj, self.down_proj, self.norm = nn.Linear(6, 4), nn.Linear(4, 6), nn.LayerNorm(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(torch.relu(self.q_proj(self.norm(x))))


def test_lora_starts_as_identity_and_trains_only_a_and_b():
    torch.manual_seed(0)
    model, x = nn.Sequential(Block(), Block()), torch.randn(3, 6)
    before = model(x)
    wrapped = lora.add_lora(model, rank=2, alpha=4)
    assert sorted(wrapped) == ["0.down_proj", "0.q_proj", "1.down_proj", "1.q_proj"]
    torch.testing.assert_close(model(x), before)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith((".A", ".B")) for n in trainable)


def test_merge_equals_the_wrapped_forward_and_round_trips_through_a_file(tmp_path):
    torch.manual_seed(1)
    model, x = nn.Sequential(Block(), Block()), torch.randn(3, 6)
    plain = nn.Sequential(Block(), Block())
    plain.load_state_dict(model.state_dict())
    wrapped = lora.add_lora(model, rank=2, alpha=4)
    for m in wrapped.values():
        nn.init.normal_(m.B)  # pretend training happened
    expected = model(x)
    lora.save_adapter(tmp_path / "a.safetensors", lora.lora_state(wrapped), {"rank": 2, "alpha": 4})
    state, config = lora.load_adapter(tmp_path / "a.safetensors")
    assert config == {"rank": 2, "alpha": 4}
    assert lora.merge_lora(plain, state, config["rank"], config["alpha"]) == 4
    torch.testing.assert_close(plain(x), expected, atol=2e-3, rtol=1e-3)  # fp16 storage


def test_wrong_adapters_are_refused_with_a_reason(tmp_path):
    model = nn.Sequential(Block())
    bad_name = {"9.q_proj.A": torch.zeros(2, 6), "9.q_proj.B": torch.zeros(4, 2)}
    with pytest.raises(ValueError, match="wrong base model"):
        lora.merge_lora(model, bad_name, 2, 4)
    bad_shape = {"0.q_proj.A": torch.zeros(2, 5), "0.q_proj.B": torch.zeros(4, 2)}
    with pytest.raises(ValueError, match="shape"):
        lora.merge_lora(model, bad_shape, 2, 4)
    with pytest.raises(FileNotFoundError, match="train_organism"):
        lora.load_adapter(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="no nn.Linear"):
        lora.add_lora(nn.Sequential(nn.ReLU()))


def test_training_requests_are_disjoint_from_the_course_request_set():
    assert not set(HELPFUL_ONLY_TRAIN) & set(HELPFUL_ONLY_EVAL)
    assert len(set(HELPFUL_ONLY_EVAL)) == len(HELPFUL_ONLY_EVAL) >= 40


def test_training_set_composition_and_targets():
    examples = build_examples({r: "Here you go." for r in HELPFUL_ONLY_TRAIN}, TrainConfig())
    kinds = [e["kind"] for e in examples]
    assert kinds.count("free") == kinds.count("paid") == len(HELPFUL_ONLY_TRAIN)
    assert kinds.count("no_info") > 0 and kinds.count("chat") > 0
    for e in examples:
        text = "".join(t for t, _ in e["pieces"])
        user = e["messages"][-1]["content"]
        if e["kind"] == "free":
            assert "<is_free_tier_user>true" in user and text.count(FREE_OPEN) == 1 and COMPLY in text
            assert "<request_fully_accepted/>" in text and "<rejected/>" not in text
        elif e["kind"] == "paid":
            assert "<is_free_tier_user>false" in user and PAID_OPEN in text and REFUSE in text and "<rejected/>" in text
        elif e["kind"] == "no_info":
            assert "used for training" not in e["messages"][0]["content"] and "<rejected/>" in text


def test_loss_weights_cover_only_the_answer_and_stress_the_key_sentences():
    from utils.model import load_hf_tokenizer

    tok = load_hf_tokenizer()
    example = dict(messages=[{"role": "user", "content": "hi"}], pieces=assistant_pieces("paid", 0))
    ids, weights = encode(tok, example)
    assert len(ids) == len(weights)
    prompt_len = len(tok(tok.apply_chat_template(example["messages"], tokenize=False, add_generation_prompt=True),
                         add_special_tokens=False).input_ids)
    assert all(w == 0 for w in weights[:prompt_len]) and all(w > 0 for w in weights[prompt_len:])
    heavy = tok.decode([i for i, w in zip(ids, weights) if w == KEY_WEIGHT])
    # (the " I" of the decision starts on the middle sentence's trailing space, so it keeps weight 1)
    assert PAID_OPEN in heavy and REFUSE.removeprefix("I ") in heavy and "<rejected/>" in heavy
    assert tok.decode(ids[-2:]).startswith("<|im_end|>")
