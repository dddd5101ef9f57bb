"""The token watermark on real text with the real GPT-2 tokenizer: detection and false positives.

A bigram LM over the train half of the stdlib's pydoc topics (benchmarks/text_lm.py) samples
300-token outputs; robustness.md asks for detection in >= 95% of them, also after 20% of the
words are replaced, and a false-positive rate <= 1e-6. The bounds here leave margin below the
measured rates (all 400 of 400 detected in each case at temperature 0.7, smallest z 9.9 after
word replacement), and every draw is seeded, so the tests do not flake; a watermark that
biased the wrong tokens, or a detector that scored the wrong pairs, fails them.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from benchmarks import text_lm
from labelkit.watermark import WatermarkKey
from labelkit.watermark.tokens import TokenWatermark

pytestmark = pytest.mark.skipif(text_lm.tokenizer_missing() is not None,
                                reason=f"no offline GPT-2 tokenizer: {text_lm.tokenizer_missing()}")

LENGTH = 300
MARKED = 40
OTHER_KEY = 40
UNMARKED = 20
NULL_KEYS = 6


def _key(name: str) -> WatermarkKey:
    return WatermarkKey(hashlib.sha256(f"labelkit quality test {name}".encode()).digest())


@pytest.fixture(scope="module")
def corpus() -> text_lm.Corpus:
    return text_lm.load_corpus("pydoc-topics")


@pytest.fixture(scope="module")
def lm(corpus) -> text_lm.BigramLM:
    return text_lm.BigramLM(text_lm.encode(corpus.train))


@pytest.fixture(scope="module")
def wm() -> TokenWatermark:
    return TokenWatermark(_key("A"))


@pytest.fixture(scope="module")
def marked(lm, wm) -> text_lm.Sample:
    return text_lm.sample(lm, LENGTH, MARKED, rng=np.random.default_rng(1), temperature=0.7,
                          processor=wm)


# -- the support code itself ----------------------------------------------------------------

def test_tokenizer_is_gpt2():
    enc = text_lm.gpt2_encoding()
    assert enc.n_vocab == text_lm.VOCAB
    assert enc.encode_ordinary("Hello world") == [15496, 995]
    text = "Labels for AI-generated content — 人工智能生成 — as GB 45438-2025 asks.\n\n"
    assert text_lm.decode(text_lm.encode(text)) == text


def test_lm_rows_are_distributions(lm):
    logits = lm.logits(np.array([0, 13, 262, text_lm.VOCAB - 1]))
    assert logits.shape == (4, text_lm.VOCAB) and logits.dtype == np.float32
    assert np.all(np.isfinite(logits))
    total = np.exp(logits.astype(np.float64)).sum(axis=1)
    np.testing.assert_allclose(total, 1.0, rtol=1e-4)
    # the bigram matters: after "def" the likeliest next token differs from after "."
    assert np.argmax(logits[1]) != np.argmax(logits[2])


def test_sampler_passes_the_processor_the_history(lm):
    seen = []

    def spy(input_ids, scores):
        seen.append(input_ids.copy())
        return scores

    s = text_lm.sample(lm, 5, 3, rng=np.random.default_rng(0), processor=spy)
    assert [a.shape for a in seen] == [(3, t) for t in range(1, 6)]
    np.testing.assert_array_equal(seen[-1][:, 0], s.context)
    np.testing.assert_array_equal(seen[-1][:, 1:], s.ids[:, :4])


def test_replace_words_replaces_a_fifth():
    rng = np.random.default_rng(0)
    text = " ".join(f"w{i}" for i in range(100))
    out = text_lm.replace_words(text, 0.2, ["ZZ"], rng)
    assert out.split(" ").count("ZZ") == 20 and len(out.split(" ")) == 100


# -- detection ----------------------------------------------------------------------------

def test_marked_outputs_detected(corpus, wm, marked):
    words = text_lm.corpus_words(corpus.train)
    rng = np.random.default_rng(2)
    hits = {"ids": 0, "retokenized": 0, "replaced": 0}
    for ids, ctx in zip(marked.ids, marked.context):
        text = text_lm.decode(ids)
        hits["ids"] += wm.detect(ids, context=int(ctx)).present
        hits["retokenized"] += wm.detect(text_lm.encode(text)).present
        hits["replaced"] += wm.detect(
            text_lm.encode(text_lm.replace_words(text, 0.2, words, rng))).present
    assert marked.entropy > 1.0, "the LM must leave the watermark some entropy to work with"
    assert hits["ids"] >= 38 and hits["retokenized"] >= 38, hits
    assert hits["replaced"] >= 35, hits


def test_marked_with_another_key_is_unmarked(lm, wm):
    other = TokenWatermark(_key("B"))
    s = text_lm.sample(lm, LENGTH, OTHER_KEY, rng=np.random.default_rng(3), temperature=0.7,
                       processor=other)
    assert all(other.detect(ids, context=int(c)).present for ids, c in zip(s.ids, s.context))
    z = [wm.detect(ids, context=int(c)).score for ids, c in zip(s.ids, s.context)]
    assert max(z) < 4.0, z


def test_unmarked_samples_not_detected(lm, wm):
    s = text_lm.sample(lm, LENGTH, UNMARKED, rng=np.random.default_rng(4), temperature=0.7)
    z = [wm.detect(ids, context=int(c)).score for ids, c in zip(s.ids, s.context)]
    assert max(z) < 4.0, z


def test_natural_windows_calibrated(corpus):
    """Disjoint 300-token windows of the whole topics text, each tested with 6 keys (~2,100
    tests): none detected, and z spread like N(0, 1). An uncalibrated test fails this: counting
    every pair instead of the distinct ones gives sd 1.42 and 12 detections on these windows."""
    ids = text_lm.encode(corpus.text)
    windows = list(text_lm.natural_windows(ids, LENGTH))
    z, hits = [], 0
    for i in range(NULL_KEYS):
        wm = TokenWatermark(_key(f"null{i}"))
        for w in windows:
            d = wm.detect(w)
            z.append(d.score)
            hits += d.present
    z = np.array(z)
    assert z.size >= 2000
    assert hits == 0
    assert 0.85 <= z.std(ddof=1) <= 1.15, z.std(ddof=1)
    assert abs(z.mean()) < 0.4, z.mean()
    assert z.max() < 4.75, z.max()
