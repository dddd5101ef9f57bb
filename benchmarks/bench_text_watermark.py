"""Speed of the generation-time token watermark on one core: logits processor and detector.

  pytest benchmarks/bench_text_watermark.py --benchmark-only -p no:cacheprovider

Issue 6's target: the logits processor costs <= 50 us per generated token at GPT-2's vocabulary
(50,257 float32 scores). Groups:

* "token logits processor, batch B": one generation step of B rows (B tokens). The baseline is
  the numpy twin ``labelkit._kernels_py.green_bias``; beside it the native kernel called
  directly and ``TokenWatermark.process`` (the public path: checks, context hashes, a new
  output array, and whichever kernel ``_impl`` chose), the entry the target is about. Per token
  is the step's time / B (``extra_info["us_per_token"]`` in the JSON).
* "token detection": ``TokenWatermark.detect`` of 300-token outputs (the length robustness.md
  names), ids drawn from the vocabulary; tokens/s = 300 x calls/s (``extra_info``).
"""

from __future__ import annotations

import numpy as np
import pytest

from labelkit import _impl, _kernels_py
from labelkit.watermark import WatermarkKey
from labelkit.watermark.tokens import TokenWatermark

from .conftest import record

VOCAB = 50_257
LENGTH = 300
TARGET = "<= 50 us per token"


@pytest.fixture(scope="module")
def wm() -> TokenWatermark:
    return TokenWatermark(WatermarkKey(bytes(range(32))))


def _native():
    if _impl.PURE_REQUESTED:
        pytest.skip("LABELKIT_PURE_PYTHON=1: the native kernel is not loaded")
    from labelkit import _native_tokens

    return _native_tokens


def _step(batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids (batch, 64), scores (batch, VOCAB) float32): one step's arguments."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, size=(batch, 64), dtype=np.int64)
    return ids, rng.normal(size=(batch, VOCAB)).astype(np.float32)


def _kernel_args(wm: TokenWatermark, ids: np.ndarray, scores: np.ndarray):
    hv, hp = wm._context_hashes(ids, scores.shape[0], scores.shape[1])
    return scores, np.empty_like(scores), hv, np.ascontiguousarray(hp), wm.threshold, wm.delta


def _per_token(benchmark, batch: int) -> None:
    if benchmark.stats is not None:
        benchmark.extra_info["us_per_token"] = benchmark.stats.stats.median * 1e6 / batch


@pytest.mark.parametrize("batch", [1, 8])
def test_processor_numpy_twin(benchmark, wm, batch):
    args = _kernel_args(wm, *_step(batch))
    benchmark(_kernels_py.green_bias, *args)
    _per_token(benchmark, batch)
    record(f"token logits processor, batch {batch} x {VOCAB:,} float32", "numpy twin green_bias "
           "(baseline)", benchmark, baseline=True)


@pytest.mark.parametrize("batch", [1, 8])
def test_processor_native_kernel(benchmark, wm, batch):
    native = _native()
    args = _kernel_args(wm, *_step(batch))
    expected = args[1].copy()
    _kernels_py.green_bias(args[0], expected, *args[2:])
    benchmark(native.green_bias, *args)
    np.testing.assert_array_equal(args[1], expected)  # the same bits as the twin
    _per_token(benchmark, batch)
    record(f"token logits processor, batch {batch} x {VOCAB:,} float32", "native green_bias",
           benchmark)


@pytest.mark.parametrize("batch", [1, 8])
def test_processor_public(benchmark, wm, batch):
    ids, scores = _step(batch)
    out = benchmark(wm.process, ids, scores)
    assert np.count_nonzero(out != scores) > 0.2 * out.size  # ~gamma of the scores moved
    _per_token(benchmark, batch)
    record(f"token logits processor, batch {batch} x {VOCAB:,} float32",
           f"TokenWatermark.process ({_impl.IMPLEMENTATION}), {batch} token(s)/call", benchmark,
           target=f"{TARGET} (<= {50 * batch} us/call)", subject=True)


def test_detect_300_tokens(benchmark, wm):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, VOCAB, size=LENGTH + 1, dtype=np.int64)
    d = benchmark(wm.detect, ids[1:], context=int(ids[0]))
    assert d.geometry["tokens"] == LENGTH + 1 and not d.present
    if benchmark.stats is not None:
        benchmark.extra_info["tokens_per_s"] = LENGTH / benchmark.stats.stats.median
    record("token detection (300-token outputs; tokens/s = 300 x calls/s)",
           "TokenWatermark.detect", benchmark)
