"""Reference feature tools: the pure functions, the corpus scan (on a few documents), the dashboard's
offline HTML and the feature browser widget."""

from __future__ import annotations

import pytest
import torch

from utils import features
from utils.feature_scan import FeatureStats, HIST_EDGES, padded_batches, pooled_latents, scan_corpus, tokenize_texts


def test_top_activating_examples_unravels_flat_indices():
    acts = torch.zeros(3, 5)
    acts[2, 1], acts[0, 4], acts[1, 0] = 9.0, 7.0, 5.0
    values, rows, cols = features.top_activating_examples(acts, 2)
    assert values.tolist() == [9.0, 7.0] and rows.tolist() == [2, 0] and cols.tolist() == [1, 4]


def test_context_window_clips_and_reports_position():
    toks = list("abcdefgh")
    assert features.context_window(toks, 1, before=3, after=2) == (list("abcd"), 1)
    assert features.context_window(toks, 6, before=2, after=5) == (list("efgh"), 2)


def test_density_logits_pooling_and_scores():
    z = torch.tensor([[0.0, 2.0], [1.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    assert features.activation_density(z).tolist() == [0.25, 0.5]
    W_U = torch.eye(3)
    assert features.logit_effects(torch.tensor([1.0, -2.0, 0.5]), torch.tensor([2.0, 1.0, 1.0]), W_U).tolist() == [2.0, -2.0, 0.5]
    zz = torch.arange(12.0).view(1, 4, 3)
    mask = torch.tensor([[False, True, True, False]])
    assert features.mean_pool(zz, mask).tolist() == [[4.5, 5.5, 6.5]]
    assert features.max_pool(zz, mask).tolist() == [[6.0, 7.0, 8.0]]
    assert features.concept_scores(torch.ones(2, 3), torch.zeros(4, 3)).tolist() == [1.0, 1.0, 1.0]


def test_detector_report_and_auroc():
    scores = torch.tensor([0.9, 0.8, 0.1, 0.7, 0.0])
    labels = torch.tensor([True, True, True, False, False])
    r = features.detector_report(scores, labels, 0.5)
    assert (r.true_positives, r.false_positives, r.false_negatives, r.true_negatives) == (2, 1, 1, 1)
    assert r.precision == 2 / 3 and r.recall == 2 / 3
    assert features.detector_report(scores, labels, 5.0).precision == 1.0  # nothing flagged
    assert features.auroc(scores, labels) == 5 / 6  # 0.1 beats only the 0.0 negative
    assert features.auroc(torch.tensor([1.0, 1.0]), torch.tensor([True, False])) == 0.5


def test_padded_batches_keep_every_row_once():
    rows = [[1, 5, 6], [1, 7], [1, 8, 9, 10]]
    seen = []
    for idx, tokens, mask in padded_batches(rows, batch_size=2, pad_id=0):
        for r, i in enumerate(idx):
            assert tokens[r, : len(rows[i])].tolist() == rows[i]
            assert mask[r].sum() == len(rows[i]) - 1 and not mask[r, 0]  # BOS excluded
        seen += idx
    assert sorted(seen) == [0, 1, 2]


def test_scan_matches_direct_encoding(model, tmp_path):
    """The corpus scan's counts and top documents equal a direct, unbatched computation."""
    from utils.sae import load_course_sae

    sae = load_course_sae()
    docs = [{"id": f"d{i}", "text": t} for i, t in enumerate([
        "The Golden Gate Bridge is painted orange.", "My cat sleeps all day on the sofa.",
        "A suspension bridge hangs from cables.", "What a brilliant idea, you are a genius!"])]
    stats, doc_max = scan_corpus(model, sae, docs, top_n=3, batch_size=3, progress=False)
    direct = []
    for ids in tokenize_texts(model.tokenizer, [d["text"] for d in docs]):
        with torch.no_grad():
            _, cache = model.run_with_cache(torch.tensor([ids]), names_filter=sae.cfg.hook_name, stop_at_layer=11)
        direct.append(sae.encode(cache[sae.cfg.hook_name][0, 1:]))  # BOS left out
    flat = torch.cat(direct)
    assert stats.n_tokens == len(flat)
    assert torch.equal(stats.fire_counts, (flat > 0).sum(0))
    assert int(stats.hist.sum()) == int((flat > 0).sum())
    torch.testing.assert_close(doc_max.float(), torch.stack([d.amax(0) for d in direct]), atol=0.02, rtol=0.01)
    latent = int(flat.amax(0).argmax())
    assert stats.top_values[latent, 0] == doc_max[:, latent].float().max()
    path = stats.save(tmp_path / "stats.safetensors")
    again = FeatureStats.load(path)
    assert again.doc_ids == [d["id"] for d in docs] and torch.equal(again.fire_counts, stats.fire_counts)
    means, maxes = pooled_latents(model, sae, [d["text"] for d in docs])
    torch.testing.assert_close(maxes, torch.stack([d.amax(0) for d in direct]), atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(means, torch.stack([d.mean(0) for d in direct]), atol=1e-3, rtol=1e-3)


def test_shipped_scan_covers_the_corpus():
    from utils.corpus import load_corpus

    stats = FeatureStats.load()
    docs = load_corpus(parts=["base"])  # the course SAE's corpus; later parts are appended after it
    assert stats.doc_ids == [d["id"] for d in docs]
    assert [d["id"] for d in load_corpus()][: len(docs)] == stats.doc_ids
    assert stats.hist.shape == (len(stats.fire_counts), len(HIST_EDGES) - 1)
    assert int(stats.fire_counts.sum()) == int(stats.hist.sum())  # every activation lands in a bin
    assert 400_000 < stats.n_tokens < 510_000
    assert abs(float(stats.density.mean()) - 32 / 4608) < 1e-4  # TopK: exactly k active per token


def test_dashboard_html_is_offline_and_complete(model):
    from utils.dashboard import build_dashboard
    from utils.corpus import load_corpus
    from utils.sae import load_course_sae

    dash = build_dashboard(3175, model, load_course_sae(), FeatureStats.load(), load_corpus(), n_examples=3)
    html = dash.to_html()
    assert "<script" not in html and "https://" not in html  # renders in a widget, a static page, offline
    assert html.count('class="sae-example"') == 3 and html.count('class="sae-histogram"') == 1
    assert "<svg" not in html  # JupyterLab strips SVG from outputs it did not make in this session
    assert any("bridge" in "".join(tokens).lower() for tokens, _ in dash.examples)
    peak = max(v for _, values in dash.examples for v in values)
    assert 'style="background:rgba(255,140,0,1.000)' in html and f'title="{peak:.3f}"' in html


def test_token_spans_scale_escape_and_reject_ragged_rows():
    from utils.dashboard import token_spans_html

    html = token_spans_html([(["<b>", "Ġx"], [2.0, 0.5])], max_value=1.0)
    assert "&lt;b&gt;" in html and "<b>" not in html  # tokens are text, never markup
    assert "rgba(255,140,0,1.000)" in html and "rgba(255,140,0,0.500)" in html  # clipped at the scale's top
    assert ">\u2009x<" not in html and "> x<" in html  # Ġ is shown as a space
    with pytest.raises(ValueError, match="row 0: 2 tokens but 1 values"):
        token_spans_html([(["a", "b"], [1.0])])


def test_colored_tokens_html_inlines_the_circuitsvis_bundle_once():
    from utils.dashboard import colored_tokens_html

    html = colored_tokens_html([(["a", "b"], [1.0, 0.0]), (["c"], [0.5])])
    assert html.count('CircuitsVis.render("') == 2 and html.count('<script type="module">') == 1
    assert "unpkg.com" not in html and "https://" not in html.split("<script")[0]


@pytest.mark.parametrize("query, concept", [("Golden Gate Bridge", "bridge"), ("What a brilliant", "praise"),
                                            ("phone", "phone"), ("bridge", "bridge")])
def test_text_search_lands_on_the_concept_latent(model, query, concept):
    """Ranked by activation × specificity after a neutral lead-in, a concept query finds the registry's
    latent; by raw activation on the bare text, "Golden Gate Bridge" lands on a latent that fires on 18 %
    of all tokens and "phone" on a start-of-document latent."""
    from utils.browser import latents_for_text
    from utils.named_latents import named_latent
    from utils.sae import load_course_sae

    sae, stats = load_course_sae(), FeatureStats.load()
    best = latents_for_text(model, sae, query, density=stats.density)[0][0]
    assert best == named_latent(concept).latent
    naive = latents_for_text(model, sae, query, lead="")[0][0]
    if query in ("Golden Gate Bridge", "phone"):
        assert naive != best
        if query == "Golden Gate Bridge":  # chapter 02 quotes this density
            assert round(100 * float(stats.density[naive])) == 18


def test_feature_browser_updates_on_number_and_word(model):
    from utils.browser import feature_browser, latents_for_text
    from utils.corpus import load_corpus
    from utils.sae import load_course_sae

    sae = load_course_sae()
    calls = []

    def fake_build(latent, *args, **kwargs):
        calls.append(latent)

        class Fake:
            def to_html(self):
                return f"<p>dashboard {latent}</p>"
        return Fake()

    stats = FeatureStats.load()
    box = feature_browser(model, sae, stats, load_corpus(), names={"bridge": 3175, "praise": 961}, build=fake_build)
    (number, named), word, status, out = box.children[0].children, *box.children[1:]
    assert out.value == "<p>dashboard 3175</p>" and named.value == 3175  # the dropdown names the first latent
    number.value = 17
    assert out.value == "<p>dashboard 17</p>" and named.label == "—"  # no stale name for an unnamed latent
    named.value = 3175
    assert number.value == 3175 and calls == [3175, 17]  # the cached dashboard is reused
    number.value = 961
    assert named.label == "praise"
    word.value = "We walked across the bridge"
    expected = latents_for_text(model, sae, "We walked across the bridge", density=stats.density)[0][0]
    assert number.value == expected and out.value == f"<p>dashboard {expected}</p>"
    assert "activation × specificity" in status.value
    word.value = "   "
    assert "type a word" in status.value


def test_topk_codes_equal_each_prefix_encoding(model):
    """The sparse codes chapter 02 follows across widths are exactly what each prefix SAE encodes."""
    from utils.feature_scan import encode_batch, topk_codes
    from utils.sae import SAEConfig, SparseAutoencoder

    sae = SparseAutoencoder(SAEConfig(d_in=576, d_sae=256, k=8, nested_widths=[32, 96, 256]), seed=0)
    with torch.no_grad():
        sae.W_enc.mul_(0.05)
    texts = ["The Golden Gate Bridge is painted orange.", "A cat sleeps.", "Tower Bridge opens for tall ships."]
    codes = topk_codes(model, sae, texts, [32, 96, 256])
    rows = tokenize_texts(model.tokenizer, texts, 128)
    n_tokens = sum(len(r) - 1 for r in rows)
    for width, (idx, val) in codes.items():
        assert idx.shape == val.shape == (n_tokens, 8)
        dense = torch.zeros(n_tokens, 256).scatter(1, idx, val)
        direct = torch.cat([encode_batch(model, sae.prefix(width), torch.tensor([r]))[0, 1:] for r in rows])
        torch.testing.assert_close(dense[:, :width], direct, atol=1e-4, rtol=1e-4)
        assert not dense[:, width:].any()


def test_split_sankey_draws_every_edge_offline():
    from utils.dashboard import split_sankey

    edges = [((1024, 5), (4096, 2000), 0.4), ((1024, 5), (4096, 3000), 0.2), ((4096, 2000), (16384, 9000), 0.3)]
    figure = split_sankey(edges, {(1024, 5): "bridge"}, title="t", highlight=(16384, 9000))
    sankey = figure.data[0]
    assert list(sankey.link.value) == [0.4, 0.2, 0.3] and len(sankey.node.label) == 4
    assert sankey.node.label[0] == "bridge" and sankey.node.color[-1] != sankey.node.color[0]
    assert "https://" not in figure.to_json()
