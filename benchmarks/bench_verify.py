"""Verify a labeled 1080p JPEG: metadata + signature (target <= 5 ms), and with visible detection."""

from __future__ import annotations

import pytest

import labelkit

from .conftest import record


@pytest.fixture(scope="module")
def labeled_jpeg(labeler, jpeg_1080p) -> bytes:
    return labeler.label_image(jpeg_1080p).data


def test_verify_metadata_signature(benchmark, key, labeled_jpeg):
    report = benchmark(labelkit.verify, labeled_jpeg, public_key=key.public, detect_visible=False)
    assert report.signature["status"] == "valid"
    record("verify 1920x1080 JPEG", "metadata + signature", benchmark,
           nbytes=len(labeled_jpeg), target="<= 5 ms")


def test_verify_with_visible_detection(benchmark, key, labeled_jpeg):
    report = benchmark(labelkit.verify, labeled_jpeg, public_key=key.public)
    assert report.verdict == "compliant"
    record("verify 1920x1080 JPEG", "metadata + signature + visible label", benchmark,
           nbytes=len(labeled_jpeg))
