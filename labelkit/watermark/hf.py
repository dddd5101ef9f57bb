"""Hugging Face transformers adapter of the token watermark (needs torch and transformers).

    from transformers import LogitsProcessorList
    processor = GreenListLogitsProcessor(labeler.token_watermark())
    model.generate(..., logits_processor=LogitsProcessorList([processor]))

Float32/float64 scores on the CPU go through the native kernel with no copy; anything else (a
GPU, half precision) gets the green mask from the kernel and the bias added by torch on the
scores' own device. Like transformers' own processors it returns a new tensor.
"""

from __future__ import annotations

from typing import Any

from .tokens import TokenWatermark

__all__ = ["GreenListLogitsProcessor"]

try:
    import torch
    from transformers import LogitsProcessor as _Base
except ImportError as exc:  # an optional extra: labelkit itself needs neither
    torch = None
    _MISSING: ImportError | None = exc
    _Base = object
else:
    _MISSING = None


class GreenListLogitsProcessor(_Base):  # type: ignore[misc, valid-type]
    """A transformers ``LogitsProcessor`` that applies a ``TokenWatermark`` at every step."""

    def __init__(self, watermark: TokenWatermark) -> None:
        if _MISSING is not None:
            raise ImportError("GreenListLogitsProcessor needs torch and transformers "
                              "(pip install torch transformers)") from _MISSING
        if not isinstance(watermark, TokenWatermark):
            raise TypeError(f"watermark must be a TokenWatermark, not {type(watermark).__name__}")
        self.watermark = watermark

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """The scores (batch, vocab) with the bias added to each row's green tokens."""
        ids = input_ids.detach().cpu().numpy()
        if scores.device.type == "cpu" and scores.dtype in (torch.float32, torch.float64):
            source = scores.detach().contiguous()
            out = torch.empty_like(source)
            self.watermark.process(ids, source.numpy(), out=out.numpy())
            return out
        mask = torch.from_numpy(self.watermark.green_mask(ids, scores.shape[-1]))
        mask = mask.to(scores.device, non_blocking=True)
        return scores + mask.to(scores.dtype) * self.watermark.delta
