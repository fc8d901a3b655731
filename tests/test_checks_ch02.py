"""Every chapter-02 check passes on the reference, fails on the stub, and fails on each catalogued
mistake (mutant) with the diagnostic message a learner needs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from utils import dashboard, features, named_latents
from check_contract import contract_tests
from utils.checks import CheckFailure, exercises
from utils.checks import ch02 as check

REFERENCE = {
    "top_activating_examples": features.top_activating_examples,
    "context_window": features.context_window,
    "activation_density": features.activation_density,
    "logit_effects": features.logit_effects,
    "build_dashboard": dashboard.build_dashboard,
    "mean_pool": features.mean_pool,
    "concept_scores": features.concept_scores,
    "detector_report": features.detector_report,
    "decoder_neighbours": features.decoder_neighbours,
    "peak_token_counts": named_latents.peak_token_counts,
    "split_shares": features.split_shares,
}


# --- mutants: realistic wrong implementations -------------------------------------------------
def top_per_row(latent_acts, k):
    values, pos_idx = latent_acts.topk(k, dim=-1)
    batch_idx = torch.arange(latent_acts.shape[0]).unsqueeze(1).expand_as(pos_idx)
    return values, batch_idx, pos_idx


def top_ascending(latent_acts, k):
    values, flat = latent_acts.flatten().sort()
    values, flat = values[-k:], flat[-k:]
    return values, flat // latent_acts.shape[1], flat % latent_acts.shape[1]


def top_unravel_by_batch(latent_acts, k):
    values, flat = latent_acts.flatten().topk(k)
    return values, flat // latent_acts.shape[0], flat % latent_acts.shape[0]


def top_flat_indices(latent_acts, k):
    return latent_acts.flatten().topk(k)


def top_swapped_indices(latent_acts, k):
    values, flat = latent_acts.flatten().topk(k)
    return values, flat % latent_acts.shape[1], flat // latent_acts.shape[1]


def top_smallest(latent_acts, k):
    values, flat = latent_acts.flatten().topk(k, largest=False)
    return values, flat // latent_acts.shape[1], flat % latent_acts.shape[1]


def window_short_by_one(str_tokens, pos, before=10, after=3):
    start = max(0, pos - before)
    return str_tokens[start : pos + after], pos - start


def window_without_after(str_tokens, pos, before=10, after=3):
    start = max(0, pos - before)
    return str_tokens[start : pos + 1], pos - start


def window_not_clipped(str_tokens, pos, before=10, after=3):
    return str_tokens[pos - before : pos + after + 1], before


def window_index_not_adjusted(str_tokens, pos, before=10, after=3):
    return str_tokens[max(0, pos - before) : pos + after + 1], before


def window_absolute_index(str_tokens, pos, before=10, after=3):
    return str_tokens[max(0, pos - before) : pos + after + 1], pos


def window_pops_input(str_tokens, pos, before=10, after=3):
    start = max(0, pos - before)
    window = str_tokens[start : pos + after + 1]
    del str_tokens[pos + after + 1 :]  # "tidies up" the caller's list
    return window, pos - start


def density_count(z):
    return (z > 0).sum(0)


def density_mean_activation(z):
    return z.mean(0)


def density_per_token(z):
    return (z > 0).float().mean(-1)


def density_percent(z):
    return 100 * (z > 0).float().mean(0)


def effects_no_norm_weight(direction, ln_final_weight, W_U):
    return direction @ W_U


def effects_vocab_on_the_left(direction, ln_final_weight, W_U):
    return W_U @ (direction * ln_final_weight)


def effects_normalised(direction, ln_final_weight, W_U):
    effects = (direction * ln_final_weight) @ W_U
    return effects / effects.norm()


def effects_mean_weight(direction, ln_final_weight, W_U):
    return (direction * ln_final_weight.mean()) @ W_U


def effects_full_rmsnorm(direction, ln_final_weight, W_U):
    normed = direction / direction.pow(2).mean().add(1e-5).sqrt()
    return (normed * ln_final_weight) @ W_U


# A learner-style dashboard, written independently of utils.dashboard, with switches for the mistakes.
def _learner_dashboard(latent, model, sae, stats, docs, n_examples=6, n_logits=8, before=10, after=3, title="", *,
                       read_encoder=False, norm_weight=True, act_shift=0, density_as_count=False, reverse=False,
                       doc_by_rank=False, bos=True, as_dict=False):
    from utils.feature_scan import HIST_EDGES, encode_batch, tokenize_texts

    tok = model.tokenizer
    picks = [(d, p) for d, p in zip(stats.top_docs[latent].tolist(), stats.top_pos[latent].tolist()) if d >= 0]
    picks = picks[:n_examples]
    if reverse:
        picks = picks[::-1]
    examples = []
    for rank, (doc, pos) in enumerate(picks):
        text = docs[rank if doc_by_rank else doc]["text"]
        ids = tokenize_texts(tok, [text], stats.max_len)[0]
        if not bos:
            ids = ids[1:]
        pos = min(pos, len(ids) - 1)  # (keeps the wrong-document mutant from crashing)
        acts = encode_batch(model, sae, torch.tensor([ids]))[0, :, latent]
        start = max(0, pos - before)
        window = [tok.decode([i]) for i in ids[start : pos + after + 1]]
        s = start + act_shift
        examples.append((window, acts[s : s + len(window)].tolist()))
    with torch.no_grad():
        direction = sae.W_enc[:, latent] if read_encoder else sae.W_dec[latent]
        direction = direction.to(model.W_U.device)
        if norm_weight:
            direction = direction * model.ln_final.weight
        effects = (direction @ model.W_U).cpu()
    top, bottom = effects.topk(n_logits), effects.topk(n_logits, largest=False)
    fields = dict(
        latent=latent, examples=examples,
        top_logits=[(tok.decode([i]), v) for i, v in zip(top.indices.tolist(), top.values.tolist())],
        bottom_logits=[(tok.decode([i]), v) for i, v in zip(bottom.indices.tolist(), bottom.values.tolist())],
        hist=stats.hist[latent].tolist(), hist_edges=HIST_EDGES.tolist(),
        density=int(stats.fire_counts[latent]) if density_as_count else stats.fire_counts[latent].item() / stats.n_tokens,
        title=title,
    )
    return fields if as_dict else dashboard.Dashboard(**fields)


def _dashboard_mutant(name, **mistake):
    def mutant(latent, model, sae, stats, docs, n_examples=6, n_logits=8, before=10, after=3, title=""):
        return _learner_dashboard(latent, model, sae, stats, docs, n_examples, n_logits, before, after, title, **mistake)

    mutant.__name__ = name
    return mutant


def dashboard_swapped_logits(latent, model, sae, stats, docs, **kwargs):
    board = dashboard.build_dashboard(latent, model, sae, stats, docs, **kwargs)
    board.top_logits, board.bottom_logits = board.bottom_logits, board.top_logits
    return board


def pool_full_length(z, mask):
    return (z * mask.unsqueeze(-1)).sum(1) / z.shape[1]


def pool_sum(z, mask):
    return (z * mask.unsqueeze(-1)).sum(1)


def pool_ignores_mask(z, mask):
    return z.mean(1)


def pool_unmasked_numerator(z, mask):
    return z.sum(1) / mask.sum(1, keepdim=True)


def pool_no_keepdim(z, mask):
    return (z * mask.unsqueeze(-1)).sum(1) / mask.sum(1)


def pool_in_place(z, mask):
    z *= mask.unsqueeze(-1)
    return z.sum(1) / mask.sum(1, keepdim=True)


def concept_reversed(concept, neutral):
    return neutral.mean(0) - concept.mean(0)


def concept_max(concept, neutral):
    return concept.max(0).values - neutral.max(0).values


def concept_normalised(concept, neutral):
    return (concept.mean(0) - neutral.mean(0)) / neutral.mean(0)


def concept_ratio(concept, neutral):
    return concept.mean(0) / neutral.mean(0)


def concept_pairwise(concept, neutral):
    return (concept - neutral).mean(0)


def _counts(scores, labels, threshold, ge=False):
    pred = scores >= threshold if ge else scores > threshold
    truth = labels.bool()
    return int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum()), int((~pred & ~truth).sum())


def detector_swapped(scores, labels, threshold):
    tp, fp, fn, tn = _counts(scores, labels, threshold)
    return (tp / (tp + fn) if tp + fn else 0.0), (tp / (tp + fp) if tp + fp else 1.0)


def detector_greater_or_equal(scores, labels, threshold):
    tp, fp, fn, tn = _counts(scores, labels, threshold, ge=True)
    return SimpleNamespace(precision=tp / (tp + fp) if tp + fp else 1.0, recall=tp / (tp + fn) if tp + fn else 0.0)


def detector_accuracy_as_precision(scores, labels, threshold):
    pred = scores > threshold
    precision = (pred == labels).float().mean()
    recall = (pred & labels).sum() / labels.sum()
    return precision, recall


def detector_nan_precision(scores, labels, threshold):
    pred = scores > threshold
    tp = (pred & labels).sum().float()
    return tp / pred.sum(), tp / labels.sum()


def detector_divides_by_zero(scores, labels, threshold):
    tp, fp, fn, tn = _counts(scores, labels, threshold)
    return features.DetectorReport(threshold, tp / (tp + fp), tp / (tp + fn), tp, fp, fn, tn)


def detector_zero_precision(scores, labels, threshold):
    tp, fp, fn, tn = _counts(scores, labels, threshold)
    return (tp / (tp + fp) if tp + fp else 0.0), tp / (tp + fn)


def detector_recall_over_all(scores, labels, threshold):
    tp, fp, fn, tn = _counts(scores, labels, threshold)
    return (tp / (tp + fp) if tp + fp else 1.0), tp / len(scores)


def _cos_ranked(W_dec, latent, n, rows, absolute=False, keep_self=False, ascending=False):
    cos = rows @ rows[latent]
    scores = cos.abs() if absolute else cos.clone()
    if not keep_self:
        scores[latent] = -float("inf")
    idx = scores.topk(n, largest=True).indices
    if ascending:
        idx = idx.flip(0)
    return idx, cos[idx]


def neighbours_dot_products(W_dec, latent, n):
    dots = W_dec @ W_dec[latent]
    dots[latent] = -float("inf")
    values, idx = dots.topk(n)
    return idx, values


def neighbours_include_self(W_dec, latent, n):
    rows = W_dec / W_dec.norm(dim=-1, keepdim=True)
    return _cos_ranked(W_dec, latent, n, rows, keep_self=True)


def neighbours_abs_cosine(W_dec, latent, n):
    rows = W_dec / W_dec.norm(dim=-1, keepdim=True)
    return _cos_ranked(W_dec, latent, n, rows, absolute=True)


def neighbours_columns(W_dec, latent, n):
    cols = W_dec / W_dec.norm(dim=0, keepdim=True)
    return _cos_ranked(W_dec, latent, n, cols)


def neighbours_ascending(W_dec, latent, n):
    rows = W_dec / W_dec.norm(dim=-1, keepdim=True)
    return _cos_ranked(W_dec, latent, n, rows, ascending=True)


def neighbours_dot_values(W_dec, latent, n):
    rows = W_dec / W_dec.norm(dim=-1, keepdim=True)
    idx, _ = _cos_ranked(W_dec, latent, n, rows)
    return idx, (W_dec @ W_dec[latent])[idx]


def _peaks(tokenizer, stats, docs, latent, n, *, bos=True, skip_empty=True, by_rank=False, chars=False, all_docs=False):
    from collections import Counter

    from utils.feature_scan import tokenize_texts

    counts = Counter()
    pairs = list(zip(stats.top_docs[latent].tolist(), stats.top_pos[latent].tolist()))
    for rank, (d, p) in enumerate(pairs if all_docs else pairs[:n]):
        if d < 0 and skip_empty:
            continue
        text = docs[rank if by_rank else d]["text"]
        if chars:
            counts[text[min(p, len(text) - 1)]] += 1
            continue
        ids = tokenize_texts(tokenizer, [text], stats.max_len)[0]
        ids = ids if bos else ids[1:]
        counts[tokenizer.decode([ids[min(p, len(ids) - 1)]])] += 1
    return counts


def _peak_mutant(name, **mistake):
    def mutant(tokenizer, stats, docs, latent, n):
        return _peaks(tokenizer, stats, docs, latent, n, **mistake)

    mutant.__name__ = name
    return mutant


def _split(parent_acts, wide_idx, wide_val, new_from, *, all_tokens=False, keep_old=False, counts=False,
           over_assigned=False, argmax_zeros=False, unsorted=False):
    fires = torch.ones_like(parent_acts, dtype=torch.bool) if all_tokens else parent_acts > 0
    idx, val = wide_idx[fires], wide_val[fires].clone()
    if not keep_old:
        val[idx < new_from] = 0
    best_val, best = val.max(-1)
    winners = idx.gather(-1, best[:, None])[:, 0]
    if not argmax_zeros:
        winners = winners[best_val > 0]
    result = {}
    for w in winners.tolist():
        result[w] = result.get(w, 0) + 1
    total = 1 if counts else (len(winners) if over_assigned else int(fires.sum()))
    result = {w: c / total for w, c in result.items()}
    return result if unsorted else dict(sorted(result.items(), key=lambda kv: -kv[1]))


def _split_mutant(name, **mistake):
    def mutant(parent_acts, wide_idx, wide_val, new_from):
        return _split(parent_acts, wide_idx, wide_val, new_from, **mistake)

    mutant.__name__ = name
    return mutant


def split_sorted_by_latent(parent_acts, wide_idx, wide_val, new_from):
    return dict(sorted(features.split_shares(parent_acts, wide_idx, wide_val, new_from).items()))


MUTANTS = {
    "top_activating_examples": [
        (top_per_row, "top k of every row"),
        (top_ascending, "ascending order"),
        (top_unravel_by_batch, "number of documents"),
        (top_flat_indices, "flat indices"),
        (top_swapped_indices, "swapped"),
        (top_smallest, "SMALLEST"),
    ],
    "context_window": [
        (window_short_by_one, "stops one token early"),
        (window_without_after, "ends at the peak token"),
        (window_not_clipped, "not clipped at the start"),
        (window_index_not_adjusted, "not adjusted for clipping"),
        (window_absolute_index, "its position in the whole sequence"),
        (window_pops_input, "in place"),
    ],
    "activation_density": [
        (density_count, "number of tokens on which each latent fires"),
        (density_mean_activation, "mean activation"),
        (density_per_token, "one value per token"),
        (density_percent, "percentage"),
    ],
    "logit_effects": [
        (effects_no_norm_weight, "left out the final norm's weight"),
        (effects_vocab_on_the_left, "put it on the left"),
        (effects_normalised, "normalised the result"),
        (effects_mean_weight, "MEAN of ln_final_weight"),
        (effects_full_rmsnorm, "RMS of the direction"),
    ],
    "build_dashboard": [
        (_dashboard_mutant("dashboard_encoder_column", read_encoder=True), "ENCODER column"),
        (_dashboard_mutant("dashboard_no_norm_weight", norm_weight=False), "left out the final norm's weight"),
        (_dashboard_mutant("dashboard_acts_misaligned", act_shift=1), "misaligned with the tokens by one"),
        (_dashboard_mutant("dashboard_density_count", density_as_count=True), "number of tokens on which the latent fires"),
        (_dashboard_mutant("dashboard_ascending", reverse=True), "wrong order"),
        (_dashboard_mutant("dashboard_doc_by_rank", doc_by_rank=True), "does not come from document"),
        (_dashboard_mutant("dashboard_no_bos", bos=False), "BOS token"),
        (_dashboard_mutant("dashboard_returns_dict", as_dict=True), "return a utils.dashboard.Dashboard"),
        (dashboard_swapped_logits, "swapped"),
    ],
    "mean_pool": [
        (pool_full_length, "divided by the full length"),
        (pool_sum, "returned the sum"),
        (pool_ignores_mask, "masked-out ones too"),
        (pool_unmasked_numerator, "numerator includes the masked-out positions"),
        (pool_no_keepdim, "mask.sum(1, keepdim=True)"),
        (pool_in_place, "in place"),
    ],
    "concept_scores": [
        (concept_reversed, "sign is reversed"),
        (concept_max, "max over texts"),
        (concept_normalised, "normalised by the neutral mean"),
        (concept_ratio, "divided by the neutral mean"),
        (concept_pairwise, "different numbers of texts"),
    ],
    "detector_report": [
        (detector_swapped, "precision and recall are swapped"),
        (detector_greater_or_equal, "score > threshold (strictly)"),
        (detector_accuracy_as_precision, "accuracy"),
        (detector_nan_precision, "defined as 1.0"),
        (detector_divides_by_zero, "defined as 1.0"),
        (detector_zero_precision, "defined as 1.0"),
        (detector_recall_over_all, "divides by all"),
    ],
    "decoder_neighbours": [
        (neighbours_dot_products, "raw dot products"),
        (neighbours_include_self, "its own neighbourhood"),
        (neighbours_abs_cosine, "|cosine|"),
        (neighbours_columns, "columns"),
        (neighbours_ascending, "descending order"),
        (neighbours_dot_values, "return the cosine similarities"),
    ],
    "peak_token_counts": [
        (_peak_mutant("peaks_without_bos", bos=False), "one place off"),
        (_peak_mutant("peaks_empty_slots", skip_empty=False), "docs[-1]"),
        (_peak_mutant("peaks_doc_by_rank", by_rank=True), "rank j as the document index"),
        (_peak_mutant("peaks_characters", chars=True), "single characters"),
        (_peak_mutant("peaks_ignore_n", all_docs=True), "top documents"),
    ],
    "split_shares": [
        (_split_mutant("split_every_token", all_tokens=True), "only the tokens where the parent fires"),
        (_split_mutant("split_old_latents", keep_old=True), "cannot be what the parent splits INTO"),
        (_split_mutant("split_counts", counts=True), "you returned counts"),
        (_split_mutant("split_over_assigned", over_assigned=True), "sum to 1"),
        (_split_mutant("split_argmax_of_zeros", argmax_zeros=True), "argmax of an all-zero row"),
        (split_sorted_by_latent, "not sorted"),
    ],
}

NEEDS_MODEL = {"build_dashboard", "peak_token_counts"}


def test_every_exercise_has_mutants_and_a_check():
    names = [e.name for e in exercises("02")]
    assert names == [
        "top_activating_examples", "context_window", "activation_density", "logit_effects", "build_dashboard",
        "mean_pool", "concept_scores", "detector_report", "decoder_neighbours", "peak_token_counts", "split_shares",
    ]
    assert names == list(MUTANTS) == list(REFERENCE)
    assert [e.number for e in exercises("02")] == list(range(1, 12))
    assert all(len(m) >= 2 for m in MUTANTS.values())


test_check_passes_on_reference, test_check_fails_on_stub, test_check_fails_on_mutant_with_diagnostic = (
    contract_tests(check, REFERENCE, MUTANTS, needs_model=NEEDS_MODEL)
)


def test_check_rejects_non_callables_and_crashing_code():
    with pytest.raises(CheckFailure, match="expected a function"):
        check.mean_pool(42)

    def crashes(z, mask):
        raise KeyError("mask")

    with pytest.raises(CheckFailure, match="KeyError"):
        check.mean_pool(crashes)


def test_checks_accept_equivalent_formulations(capsys):
    """Correct answers written differently (unravel_index, lists, != 0, einsum, masked_fill, tuples) pass."""

    def top_unravel(latent_acts, k):
        values, flat = latent_acts.flatten().sort(descending=True)
        b, p = torch.unravel_index(flat[:k], latent_acts.shape)
        return values[:k], b.tolist(), p.tolist()

    def window_tuple(str_tokens, pos, before=10, after=3):
        start = max(pos - before, 0)
        return tuple(str_tokens[start : min(len(str_tokens), pos + after + 1)]), pos - start

    def pool_masked_fill(z, mask):
        total = z.masked_fill(~mask.unsqueeze(-1), 0).sum(dim=1)
        return total / mask.sum(dim=1).unsqueeze(-1)

    def report_namespace(scores, labels, threshold):
        tp, fp, fn, _ = _counts(scores, labels, threshold)
        return SimpleNamespace(precision=torch.tensor(tp / (tp + fp) if tp + fp else 1.0), recall=tp / (tp + fn))

    check.top_activating_examples(top_unravel)
    check.context_window(window_tuple)
    check.activation_density(lambda z: (z != 0).sum(0) / z.shape[0])
    check.logit_effects(lambda d, g, W: torch.einsum("d,d,dv->v", d, g, W))
    check.mean_pool(pool_masked_fill)
    check.concept_scores(lambda c, n: c.sum(0) / len(c) - n.sum(0) / len(n))
    check.detector_report(report_namespace)
    check.detector_report(lambda s, l, t: tuple(vars(features.detector_report(s, l, t)).values())[1:3])
    assert capsys.readouterr().out.count("passed") == 8


def test_build_dashboard_accepts_an_independent_implementation(model, capsys):
    """A learner's own dashboard (its own top/bottom logits, windows and density arithmetic) passes."""
    check.build_dashboard(_learner_dashboard)
    assert "passed" in capsys.readouterr().out


def test_fixed_dashboard_latent_is_live():
    from utils.feature_scan import FeatureStats

    stats = FeatureStats.load()
    assert int(stats.top_docs[check.FIXED_LATENT, 5]) >= 0  # fired in at least 6 documents
