"""The generation-time token watermark: kernels against their twin, the processor, the detector,
the Labeler and verify APIs, the transformers adapter and the CLI.

The statistics on real text with a real tokenizer are in test_token_watermark_quality.py; here a
toy model (fixed random logits per previous token) samples the marked sequences.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy.stats import binom

from labelkit import Labeler, verify
from labelkit import _kernels_py as twin
from labelkit._impl import PURE_REQUESTED
from labelkit.errors import LabelkitError, PolicyError
from labelkit.policy import Policy, TextPolicy
from labelkit.text.tokenizer import load_tokenizer
from labelkit.watermark.keys import WatermarkKey, keyed_words
from labelkit.watermark.tokens import MAX_VOCAB, TokenWatermark
from labelkit.watermark.text import strip_carriers

from .conftest import PRODUCER

V = 50_257
KEY = WatermarkKey(bytes(range(32)))
OTHER = WatermarkKey(bytes(range(1, 33)))


@pytest.fixture(scope="module")
def wm() -> TokenWatermark:
    return TokenWatermark(KEY)


def _native():
    if PURE_REQUESTED:
        pytest.skip("LABELKIT_PURE_PYTHON=1: no native kernels to cross-check")
    from labelkit import _native_tokens

    return _native_tokens


def sample(wm: TokenWatermark | None, n: int, vocab: int = 2000, seed: int = 0,
           temperature: float = 1.0) -> list[int]:
    """n tokens from a toy bigram model (fixed random logits per previous token)."""
    rng = np.random.default_rng(seed)
    table = np.random.default_rng(1234).standard_normal((vocab, vocab)).astype(np.float32) * 2
    ids = [int(rng.integers(vocab))]
    for _ in range(n):
        scores = table[ids[-1]] / temperature
        if wm is not None:
            scores = wm.process(ids, scores)
        p = np.exp(scores - scores.max())
        ids.append(int(rng.choice(vocab, p=p / p.sum())))
    return ids


# -- kernels ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_native_bias_is_bit_identical_to_twin(dtype):
    native = _native()
    rng = np.random.default_rng(7)
    scores = rng.standard_normal((3, 4099)).astype(dtype) * 30
    scores[0, :5] = [-np.inf, np.inf, np.nan, -0.0, 0.0]
    hv = rng.integers(0, 2**32, 5000, dtype=np.uint32)
    hp = rng.integers(0, 2**32, 3, dtype=np.uint32)
    a, b = np.empty_like(scores), np.empty_like(scores)
    native.green_bias(scores, a, hv, hp, 2**30, 2.5)
    twin.green_bias(scores, b, hv, hp, 2**30, 2.5)
    assert np.array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))
    inplace = scores.copy()
    native.green_bias(inplace, inplace, hv, hp, 2**30, 2.5)  # out may be the scores
    assert np.array_equal(inplace.view(f"u{a.itemsize}"), a.view(f"u{a.itemsize}"))
    mask_n, mask_t = np.empty((3, 4099), np.uint8), np.empty((3, 4099), np.uint8)
    native.green_mask(mask_n, hv, hp, 2**30)
    twin.green_mask(mask_t, hv, hp, 2**30)
    assert np.array_equal(mask_n, mask_t)
    finite = np.isfinite(scores)
    assert np.array_equal((a > scores) & finite, mask_n.astype(bool) & finite)


def test_kernels_refuse_the_same_inputs():
    native = _native()
    hv = np.zeros(10, np.uint32)
    hp = np.zeros(1, np.uint32)
    cases = [
        (np.zeros((1, 11), np.float32), np.zeros((1, 11), np.float32), hv, hp),  # table short
        (np.zeros((1, 10), np.float32), np.zeros((1, 9), np.float32), hv, hp),  # out shape
        (np.zeros((2, 10), np.float32), np.zeros((2, 10), np.float32), hv, hp),  # contexts
    ]
    for args in cases:
        for impl in (native, twin):
            with pytest.raises(ValueError):
                impl.green_bias(*args, 2**30, 1.0)


def test_fmix32_twin_matches_reference():
    # MurmurHash3 fmix32 reference values, computed with Python integers.
    def ref(x):
        x ^= x >> 16
        x = (x * 0x85EBCA6B) & 0xFFFFFFFF
        x ^= x >> 13
        x = (x * 0xC2B2AE35) & 0xFFFFFFFF
        return x ^ (x >> 16)

    values = np.array([0, 1, 2, 0xDEADBEEF, 2**32 - 1, 12345678], np.uint32)
    assert twin.fmix32(values).tolist() == [ref(int(v)) for v in values]


# -- the processor ----------------------------------------------------------------------------


def test_green_share_and_bias(wm):
    scores = np.random.default_rng(1).standard_normal(V).astype(np.float32)
    out = wm.process([17, 42], scores)
    assert out is not scores and out.dtype == np.float32
    added = out.astype(np.float64) - scores
    green = added > 0
    assert np.allclose(added[green], 2.5, atol=1e-5)
    assert np.all(added[~green] == 0)
    # Binomial(V, 0.25): 6 sd is 582 tokens.
    assert abs(int(green.sum()) - V / 4) < 6 * np.sqrt(V * 0.25 * 0.75)
    assert np.array_equal(green, wm.green_mask([17, 42], V)[0])


def test_depends_on_previous_token_only_and_is_keyed(wm):
    scores = np.zeros(V, np.float32)
    base = wm.process([1, 2, 3], scores) > 0
    assert np.array_equal(base, wm.process([9, 3], scores) > 0)  # same previous token
    assert np.array_equal(base, TokenWatermark(KEY).process([3], scores) > 0)  # deterministic
    for other in (wm.process([4], scores) > 0, TokenWatermark(OTHER).process([3], scores) > 0):
        overlap = np.count_nonzero(base & other) / V  # independent lists: gamma^2 = 0.0625
        assert 0.05 < overlap < 0.075


def test_batch_rows_out_and_dtypes(wm):
    rng = np.random.default_rng(2)
    scores = rng.standard_normal((4, 3000)).astype(np.float32)
    ids = rng.integers(0, 3000, (4, 7))
    out = wm.process(ids, scores)
    for r in range(4):
        assert np.array_equal(out[r], wm.process(ids[r], scores[r]))
    buffer = scores.copy()
    assert wm.process(ids, buffer, out=buffer) is buffer
    assert np.array_equal(buffer, out)
    half = wm.process(ids, scores.astype(np.float16))
    assert half.dtype == np.float16
    assert np.array_equal(half > scores.astype(np.float16), out > scores)
    f64 = wm.process(ids, scores.astype(np.float64))
    assert np.array_equal(f64 > scores, out > scores)
    strided = np.asfortranarray(scores)
    assert np.array_equal(wm.process(ids, strided), out)
    # a TokenWatermark is itself a numpy logits processor
    assert np.array_equal(wm(ids, scores), out)


def test_start_context_and_vocab_larger_than_any_id(wm):
    scores = np.zeros((1, 100_000), np.float32)
    first = wm.process(np.zeros((1, 0), np.int64), scores)
    assert 0.24 < np.count_nonzero(first) / 100_000 < 0.26
    assert np.array_equal(first, wm.process(np.zeros((1, 0), np.int64), scores))


def test_tables_grow_without_changing_their_prefix():
    small = keyed_words(KEY.secret, "tokens/green", 1000)
    large = keyed_words(KEY.secret, "tokens/green", 70_000)
    assert np.array_equal(small, large[:1000])
    grown = TokenWatermark(KEY)
    before = grown.process([5], np.zeros(1000, np.float32))
    grown.process([5], np.zeros(200_000, np.float32))  # grows both tables
    assert np.array_equal(before, grown.process([5], np.zeros(1000, np.float32)))


@pytest.mark.parametrize("ids, scores, message", [
    ([1, 2], np.zeros(10, np.int32), "float"),
    ([1.5], np.zeros(10, np.float32), "integer"),
    ([[1], [2]], np.zeros((3, 10), np.float32), "row"),
    ([-1], np.zeros(10, np.float32), "outside"),
    ([MAX_VOCAB], np.zeros(10, np.float32), "outside"),
    ([1], np.zeros((2, 2, 2), np.float32), "1-D or 2-D"),
])
def test_process_refuses_bad_input(wm, ids, scores, message):
    with pytest.raises(ValueError, match=message):
        wm.process(ids, scores)


def test_parameters_are_checked():
    for kw in ({"gamma": 0}, {"gamma": 1}, {"delta": -1}, {"delta": float("nan")},
               {"p_threshold": 0}):
        with pytest.raises(ValueError):
            TokenWatermark(KEY, **kw)
    with pytest.raises(TypeError):
        TokenWatermark(b"x" * 32)
    with pytest.raises(PolicyError):
        TextPolicy(token_gamma=1.5)
    with pytest.raises(PolicyError):
        TextPolicy(token_delta=-2)


# -- the detector ------------------------------------------------------------------------------


def test_marked_text_is_detected_and_unmarked_is_not(wm):
    marked = wm.detect(sample(wm, 300, seed=3))
    assert marked.present and marked.p_value < 1e-10 and marked.score > 6
    assert marked.geometry["tokens"] == 301
    for seed in range(5):
        plain = wm.detect(sample(None, 300, seed=seed))
        assert not plain.present and plain.reason == "green tokens not over-represented"
        other = wm.detect(sample(TokenWatermark(OTHER), 300, seed=seed))
        assert not other.present  # marked with another key is unmarked for this key


def test_p_value_is_the_exact_binomial_tail(wm):
    ids = sample(wm, 120, seed=4)
    found = wm.detect(ids)
    g = found.geometry
    assert found.p_value == pytest.approx(binom.sf(g["green"] - 1, g["scored"], wm.gamma),
                                          rel=1e-9)
    assert found.score == pytest.approx(
        (g["green"] - g["scored"] / 4) / np.sqrt(g["scored"] * 3 / 16))


def test_calibrated_on_unmarked_sequences(wm):
    # Uniformly random ids: the p-values must be (super-)uniform at every length.
    rng = np.random.default_rng(5)
    for length in (20, 200):
        p = np.array([wm.detect(rng.integers(0, V, length)).p_value for _ in range(1500)])
        # P(p <= 0.05) <= 0.05 (discrete: conservative); 4 sd of slack over 1500 trials
        assert np.mean(p <= 0.05) <= 0.05 + 4 * np.sqrt(0.05 * 0.95 / 1500)
        assert np.mean(p <= 0.5) > 0.3  # and not uselessly conservative


def test_repeated_pairs_count_once(wm):
    ids = sample(wm, 40, seed=6)
    looped = ids * 20  # the same 40-token passage pasted 20 times
    once, many = wm.detect(ids), wm.detect(looped)
    assert many.geometry["scored"] <= once.geometry["scored"] + 1  # plus the seam pair
    assert many.geometry["repeats_ignored"] == len(looped) - 1 - many.geometry["scored"]
    assert many.p_value >= once.p_value * 1e-3  # repetition buys (almost) nothing


def test_short_input_and_context(wm):
    ids = sample(wm, 6, seed=7)
    found = wm.detect(ids)
    assert not found.present and "at least 10 are needed" in found.reason
    assert wm.detect([]).geometry["scored"] == 0 and not wm.detect([5]).present
    full = sample(wm, 50, seed=8)
    assert (wm.detect(full[1:], context=full[0]).geometry["scored"]
            == wm.detect(full).geometry["scored"])
    with pytest.raises(ValueError):
        wm.detect([[1, 2]])


# -- Labeler and verify ---------------------------------------------------------------------


WORDS = re.compile(r"\S+")


class WordTokenizer:
    """A word-level tokenizer over a fixed vocabulary (ids = positions; unknown words dropped)."""

    def __init__(self, words: list[str]) -> None:
        self.words = words
        self.ids = {w: i for i, w in enumerate(words)}

    def encode(self, text: str) -> list[int]:
        return [self.ids[w] for w in WORDS.findall(text) if w in self.ids]

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.words[i] for i in ids)


@pytest.fixture(scope="module")
def word_tokenizer() -> WordTokenizer:
    """The 2,000 commonest words of the interpreter's own help topics (real English)."""
    from pydoc_data.topics import topics

    counts: dict[str, int] = {}
    for text in topics.values():
        for w in WORDS.findall(text):
            counts[w] = counts.get(w, 0) + 1
    return WordTokenizer(sorted(counts, key=lambda w: (-counts[w], w))[:2000])


@pytest.fixture(scope="module")
def labeler(key) -> Labeler:
    return Labeler(PRODUCER, key)


def generated_text(labeler, tokenizer, seed=0, marked=True) -> str:
    ids = sample(labeler.token_watermark() if marked else None, 300, seed=seed)
    words = tokenizer.decode(ids[1:]).split()
    return "\n\n".join(" ".join(words[i:i + 60]) for i in range(0, len(words), 60))


def test_labeler_token_watermark_follows_policy(key):
    lab = Labeler(PRODUCER, key, Policy(text=TextPolicy(token_gamma=0.5, token_delta=1.0)))
    wm = lab.token_watermark()
    assert wm.gamma == 0.5 and wm.delta == 1.0
    assert (np.count_nonzero(wm.process([1], np.zeros(V, np.float32))) / V
            == pytest.approx(0.5, abs=0.01))
    with pytest.raises(PolicyError, match="secret key"):
        Labeler(PRODUCER).token_watermark()


@pytest.mark.parametrize("kind, name", [("text", "a.txt"), ("markdown", "a.md")])
def test_verify_reports_the_token_watermark(labeler, key, word_tokenizer, kind, name):
    text = generated_text(labeler, word_tokenizer)
    labeled = labeler.label_text(text, kind).data
    report = verify(labeled, key=key, tokenizer=word_tokenizer, name=name)
    tw = report.token_watermark
    assert report.verdict == "compliant"
    assert tw["status"] == "present" and tw["present"] and tw["p_value"] < 1e-6
    assert tw["scored"] >= 250 and "payload" not in tw
    assert report.check("token_watermark").status == "pass"
    json.loads(report.to_json())
    plain = labeler.label_text(generated_text(labeler, word_tokenizer, marked=False), kind).data
    absent = verify(plain, key=key, tokenizer=word_tokenizer.encode, name=name)
    assert absent.token_watermark["status"] == "absent" and absent.verdict == "compliant"


def test_verify_without_tokenizer_or_key(labeler, key, word_tokenizer):
    labeled = labeler.label_text(generated_text(labeler, word_tokenizer)).data
    assert verify(labeled, key=key, name="a.txt").token_watermark["status"] == "n/a"
    no_key = verify(labeled, tokenizer=word_tokenizer, name="a.txt")
    assert no_key.token_watermark["status"] == "n/a"
    assert "secret key" in no_key.token_watermark["message"]
    with pytest.raises(TypeError):
        verify(labeled, key=key, tokenizer=42, name="a.txt")


def test_stripped_text_with_the_token_watermark_is_traces_only(labeler, key, word_tokenizer):
    labeled = labeler.label_text(generated_text(labeler, word_tokenizer)).data.decode()
    stripped = strip_carriers(labeled).replace(TextPolicy().notice_text, "").encode()
    report = verify(stripped, key=key, tokenizer=word_tokenizer, name="a.txt")
    assert report.verdict == "traces_only"
    assert report.token_watermark["present"]


def test_a_failing_tokenizer_is_a_warning(labeler, key, word_tokenizer):
    labeled = labeler.label_text(generated_text(labeler, word_tokenizer)).data

    def broken(text):
        raise RuntimeError("vocabulary file missing")

    report = verify(labeled, key=key, tokenizer=broken, name="a.txt")
    assert report.token_watermark["status"] == "error"
    assert report.check("token_watermark").status == "warn"
    assert "vocabulary file missing" in report.check("token_watermark").message
    assert report.verdict == "compliant"


# -- transformers, tokenizers and the CLI ----------------------------------------------------


def test_transformers_adapter_generates_detectable_text(wm):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from labelkit.watermark.hf import GreenListLogitsProcessor

    processor = GreenListLogitsProcessor(wm)
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    scores = torch.randn(2, 5000)
    out = processor(ids, scores)
    assert out is not scores
    assert np.array_equal(out.numpy(), wm.process(ids.numpy(), scores.numpy()))
    half = processor(ids, scores.to(torch.bfloat16))  # the mask path (what a GPU takes)
    assert half.dtype == torch.bfloat16
    assert torch.equal(half > scores.to(torch.bfloat16), out > scores)

    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=64, vocab_size=3000,
                                     n_positions=512)
    model = transformers.GPT2LMHeadModel(config).eval()  # random weights: nothing downloaded
    prompt = torch.tensor([[11, 12, 13]])
    kwargs = dict(max_new_tokens=200, do_sample=True, top_k=0, pad_token_id=0,
                  attention_mask=torch.ones_like(prompt))
    with torch.no_grad():
        marked = model.generate(prompt, logits_processor=transformers.LogitsProcessorList(
            [processor]), **kwargs)[0, 3:].tolist()
        plain = model.generate(prompt, **kwargs)[0, 3:].tolist()
    assert wm.detect(marked, context=13).present
    assert not wm.detect(plain, context=13).present


def test_adapter_refuses_a_non_watermark():
    pytest.importorskip("transformers")
    from labelkit.watermark.hf import GreenListLogitsProcessor

    with pytest.raises(TypeError):
        GreenListLogitsProcessor(object())


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory, word_tokenizer):
    """The word tokenizer saved as a Hugging Face tokenizer.json."""
    tokenizers = pytest.importorskip("tokenizers")
    vocab = dict(word_tokenizer.ids)
    vocab["[UNK]"] = len(vocab)
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


def test_load_tokenizer(tokenizer_json, tmp_path, word_tokenizer):
    tok = load_tokenizer(str(tokenizer_json))
    assert tok.encode("the value of").ids == word_tokenizer.encode("the value of")
    for spec, message in ((str(tmp_path / "none.json"), "not tiktoken"),
                          (str(tmp_path), "could not be loaded"),
                          ("tiktoken:no-such-encoding", "tiktoken")):
        with pytest.raises(LabelkitError, match=message):
            load_tokenizer(spec)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LabelkitError, match="could not be loaded"):
        load_tokenizer(str(bad))


def test_cli_verify_with_a_tokenizer(cli_run, tmp_path, keyfile_and_key, tokenizer_json,
                                     word_tokenizer):
    path_key, key = keyfile_and_key
    lab = Labeler(PRODUCER, key)
    answer = tmp_path / "answer.md"
    answer.write_bytes(lab.label_text(generated_text(lab, word_tokenizer), "markdown").data)
    code, out, err = cli_run("verify", "--key", path_key, "--tokenizer", tokenizer_json,
                             "--json", answer)
    assert code == 0, err
    report = json.loads(out)
    assert report["token_watermark"]["present"] and report["verdict"] == "compliant"
    code, _, err = cli_run("verify", "--tokenizer", tokenizer_json, answer)
    assert code == 2 and "--tokenizer needs --key" in err
    code, _, err = cli_run("verify", "--key", path_key, "--tokenizer", tmp_path / "x.json",
                           answer)
    assert code == 2 and "--tokenizer" in err
    code, _, err = cli_run("verify", "--key", path_key, "--token-gamma", "2", answer)
    assert code == 2 and "--token-gamma" in err


@pytest.fixture(scope="module")
def keyfile_and_key(tmp_path_factory):
    from labelkit import signing

    path = tmp_path_factory.mktemp("keys") / "provider.key"
    key = signing.generate_key("ed25519")
    signing.write_key_pair(path, key)
    return path, key
