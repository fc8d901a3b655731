"""Every chapter-02 check passes on the reference, fails on the stub, and fails on each catalogued
mistake (mutant) with the diagnostic message a learner needs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from utils import dashboard, features, named_latents
from remote_harness import remote_contract_tests
from check_contract import assert_passes_repeatedly, contract_tests
from utils.checks import CheckFailure, exercises
from utils.checks import ch02 as check

REFERENCE = {
    "top_activating_examples": features.top_activating_examples,
    "context_window": features.context_window,
    "scan_density": features.scan_density,
    "logit_effects": features.logit_effects,
    "build_dashboard": dashboard.build_dashboard,
    "concept_search": features.concept_search,
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


# A learner-style scan, written independently of utils.features, with switches for the mistakes.
def _learner_scan(model, sae, texts, batch_size=16, max_len=128, *, keep="mask", per_batch_mean=False,
                  overwrite=False, count_only=False, activation=False, per_text=False):
    from utils.feature_scan import encode_batch, padded_batches, tokenize_texts

    rows = tokenize_texts(model.tokenizer, texts, max_len)
    fires, n_tokens, densities = 0, 0, []
    for _, tokens, mask in padded_batches(rows, batch_size, model.tokenizer.eos_token_id):
        z = encode_batch(model, sae, tokens)
        if keep == "all":
            mask = torch.ones_like(mask)
        elif keep == "bos":
            mask = mask.clone()
            mask[:, 0] = True
        elif keep == "padding":
            mask = torch.ones_like(mask)
            mask[:, 0] = False
        hits = z[mask] if activation else (z[mask] > 0).float()
        densities.append(hits.mean(0))
        if overwrite:
            fires, n_tokens = hits.sum(0), int(mask.sum())
        else:
            fires, n_tokens = fires + hits.sum(0), n_tokens + int(mask.sum())
    if per_batch_mean:
        return torch.stack(densities).mean(0)
    if count_only:
        return fires
    return fires / (len(texts) if per_text else n_tokens)


def _scan_mutant(name, **mistake):
    def mutant(model, sae, texts, batch_size=16, max_len=128):
        return _learner_scan(model, sae, texts, batch_size, max_len, **mistake)

    mutant.__name__ = name
    return mutant


def scan_one_big_batch_rows(model, sae, texts, batch_size=16, max_len=128):
    """Densities of every token as rows: forgot to sum over tokens and batches."""
    from utils.feature_scan import encode_batch, padded_batches, tokenize_texts

    rows = tokenize_texts(model.tokenizer, texts, max_len)
    return torch.cat([(encode_batch(model, sae, t)[m] > 0).float()
                      for _, t, m in padded_batches(rows, batch_size, model.tokenizer.eos_token_id)])


def scan_sorts_texts(model, sae, texts, batch_size=16, max_len=128):
    texts.sort(key=len)  # "tidies up" the caller's list
    return _learner_scan(model, sae, texts, batch_size, max_len)


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


# A learner-style concept search, written independently of utils.features, with switches for the mistakes.
def _learner_search(model, sae, concept_texts, neutral_texts, n=8, batch_size=16, max_len=64, *, pool="mean",
                    token_weighted=False, combine="diff", order="topk"):
    from utils.feature_scan import encode_batch, padded_batches, tokenize_texts

    def per_text(texts):
        rows = tokenize_texts(model.tokenizer, texts, max_len)
        out, tokens_total, n_tokens = [], 0, 0
        for _, tokens, mask in padded_batches(rows, batch_size, model.tokenizer.eos_token_id):
            z = encode_batch(model, sae, tokens)
            if pool == "bos":
                mask = mask.clone()
                mask[:, 0] = True
            m = mask.unsqueeze(-1).float()
            if pool == "all":
                out.append(z.mean(1))
            elif pool == "sum":
                out.append((z * m).sum(1))
            elif pool == "max":
                out.append((z * m).amax(1))
            else:
                out.append((z * m).sum(1) / m.sum(1))
            tokens_total, n_tokens = tokens_total + (z * m).sum((0, 1)), n_tokens + m.sum()
        pooled = torch.cat(out)
        return (tokens_total / n_tokens).unsqueeze(0) if token_weighted else pooled

    c, u = per_text(concept_texts), per_text(neutral_texts)
    scores = {"diff": lambda: c.mean(0) - u.mean(0), "concept_only": lambda: c.mean(0),
              "reversed": lambda: u.mean(0) - c.mean(0), "sum": lambda: c.sum(0) - u.sum(0)}[combine]()
    if order == "all":
        return scores
    if order == "topk_tuple":
        return scores.topk(n)
    top = scores.topk(n, largest=order != "smallest")
    if order == "ascending":
        return top.indices.flip(0), top.values.flip(0)
    if order == "swapped":
        return top.values, top.indices
    return top.indices, top.values


def _search_mutant(name, **mistake):
    def mutant(model, sae, concept_texts, neutral_texts, n=8, batch_size=16, max_len=64):
        return _learner_search(model, sae, concept_texts, neutral_texts, n, batch_size, max_len, **mistake)

    mutant.__name__ = name
    return mutant


def search_sorts_texts(model, sae, concept_texts, neutral_texts, n=8, batch_size=16, max_len=64):
    concept_texts.sort(key=len)  # "tidies up" the caller's list
    return features.concept_search(model, sae, concept_texts, neutral_texts, n, batch_size, max_len)


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
    "scan_density": [
        (_scan_mutant("scan_ignores_mask", keep="all"), "every position of the padded batch"),
        (_scan_mutant("scan_counts_bos", keep="bos"), "BOS token at position 0"),
        (_scan_mutant("scan_counts_padding", keep="padding"), "counted the padding positions"),
        (_scan_mutant("scan_averages_batches", per_batch_mean=True), "averaged the batches' densities"),
        (_scan_mutant("scan_last_batch_only", overwrite=True), "last batch only"),
        (_scan_mutant("scan_counts", count_only=True), "number of tokens on which each latent fires"),
        (_scan_mutant("scan_per_text", per_text=True), "number of texts"),
        (_scan_mutant("scan_mean_activation", activation=True), "mean activation"),
        (scan_one_big_batch_rows, "one row per token"),
        (scan_sorts_texts, "in place"),
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
    "concept_search": [
        (_search_mutant("search_ignores_mask", pool="all"), "BOS and padding too"),
        (_search_mutant("search_counts_bos", pool="bos"), "include the BOS token"),
        (_search_mutant("search_sums_tokens", pool="sum"), "summed each text over its tokens"),
        (_search_mutant("search_max_pool", pool="max"), "max-pooled"),
        (_search_mutant("search_token_weighted", token_weighted=True), "every text counts once"),
        (_search_mutant("search_concept_only", combine="concept_only"), "concept means alone"),
        (_search_mutant("search_reversed", combine="reversed"), "sign is reversed"),
        (_search_mutant("search_sums_texts", combine="sum"), "different sizes"),
        (_search_mutant("search_lowest", order="smallest"), "LOWEST"),
        (_search_mutant("search_ascending", order="ascending"), "ascending order"),
        (_search_mutant("search_returns_topk", order="topk_tuple"), "(values, indices)"),
        (_search_mutant("search_swapped_pair", order="swapped"), "swapped"),
        (_search_mutant("search_all_scores", order="all"), "scores of all"),
        (search_sorts_texts, "in place"),
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

NEEDS_MODEL = {"scan_density", "build_dashboard", "concept_search", "peak_token_counts"}


def test_every_exercise_has_mutants_and_a_check():
    names = [e.name for e in exercises("02")]
    assert names == [
        "top_activating_examples", "context_window", "scan_density", "logit_effects", "build_dashboard",
        "concept_search", "detector_report", "decoder_neighbours", "peak_token_counts", "split_shares",
    ]
    assert names == list(MUTANTS) == list(REFERENCE)
    assert [e.number for e in exercises("02")] == list(range(1, 11))
    assert all(len(m) >= 2 for m in MUTANTS.values())


test_check_passes_on_reference, test_check_fails_on_stub, test_check_fails_on_mutant_with_diagnostic = (
    contract_tests(check, REFERENCE, MUTANTS, needs_model=NEEDS_MODEL)
)

# The same contract through a real kernel, as the grader runs it: the check here, the function there.
(student_kernel, test_check_passes_on_reference_remotely, test_check_fails_on_stub_remotely,
 test_check_fails_on_mutant_remotely) = remote_contract_tests("test_checks_ch02", check, MUTANTS, needs_model=NEEDS_MODEL)


def test_check_rejects_non_callables_and_crashing_code():
    with pytest.raises(CheckFailure, match="expected a function"):
        check.logit_effects(42)

    def crashes(direction, ln_final_weight, W_U):
        raise KeyError("W_U")

    with pytest.raises(CheckFailure, match="KeyError"):
        check.logit_effects(crashes)


def test_checks_accept_equivalent_formulations(capsys):
    """Correct answers written differently (unravel_index, lists, einsum, namespaces, tuples) pass."""

    def top_unravel(latent_acts, k):
        values, flat = latent_acts.flatten().sort(descending=True)
        b, p = torch.unravel_index(flat[:k], latent_acts.shape)
        return values[:k], b.tolist(), p.tolist()

    def window_tuple(str_tokens, pos, before=10, after=3):
        start = max(pos - before, 0)
        return tuple(str_tokens[start : min(len(str_tokens), pos + after + 1)]), pos - start

    def report_namespace(scores, labels, threshold):
        tp, fp, fn, _ = _counts(scores, labels, threshold)
        return SimpleNamespace(precision=torch.tensor(tp / (tp + fp) if tp + fp else 1.0), recall=tp / (tp + fn))

    check.top_activating_examples(top_unravel)
    check.context_window(window_tuple)
    check.logit_effects(lambda d, g, W: torch.einsum("d,d,dv->v", d, g, W))
    check.detector_report(report_namespace)
    check.detector_report(lambda s, l, t: tuple(vars(features.detector_report(s, l, t)).values())[1:3])
    assert capsys.readouterr().out.count("passed") == 5


def test_build_dashboard_accepts_an_independent_implementation(model, capsys):
    """A learner's own dashboard (its own top/bottom logits, windows and density arithmetic) passes."""
    check.build_dashboard(_learner_dashboard)
    assert "passed" in capsys.readouterr().out


def test_fixed_dashboard_latent_is_live():
    from utils.feature_scan import FeatureStats

    stats = FeatureStats.load()
    assert int(stats.top_docs[check.FIXED_LATENT, 5]) >= 0  # fired in at least 6 documents


def test_model_checks_accept_other_batchings_and_formulations(model, capsys):
    """The scan and the search pass when written differently: the corpus scan's own accumulator (other
    batches), one text at a time with masked_fill, lists instead of tensors."""
    from utils.feature_scan import encode_batch, scan_corpus, tokenize_texts

    def scan_with_the_course_scanner(model, sae, texts, batch_size=16, max_len=128):
        docs = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
        stats, _ = scan_corpus(model, sae, docs, top_n=1, batch_size=batch_size + 1, max_len=max_len, progress=False)
        return stats.density.float()

    def search_one_text_at_a_time(model, sae, concept_texts, neutral_texts, n=8, batch_size=16, max_len=64):
        def means(texts):
            out = []
            for ids in tokenize_texts(model.tokenizer, texts, max_len):
                z = encode_batch(model, sae, torch.tensor([ids]))[0]  # (pos, d_sae), no padding
                keep = torch.arange(len(ids)) > 0
                out.append(z.masked_fill(~keep[:, None], 0).sum(0) / keep.sum())
            return torch.stack(out).mean(0)

        scores = means(concept_texts) - means(neutral_texts)
        order = scores.argsort(descending=True)[:n]
        return order.tolist(), scores[order].tolist()

    check.scan_density(scan_with_the_course_scanner)
    check.concept_search(search_one_text_at_a_time)
    assert capsys.readouterr().out.count("passed") == 2


@pytest.mark.parametrize("name", ["scan_density", "concept_search"])
def test_model_checks_pass_the_reference_on_random_cases(name, model, capsys):
    """Their second case is drawn at random (texts, batch size, n): the reference passes every draw."""
    assert_passes_repeatedly(getattr(check, name), REFERENCE[name], capsys, times=3)
