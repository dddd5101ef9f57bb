"""Metadata-only labeling of 1080p JPEG and PNG files next to a plain file copy (target >= 50%)."""

from __future__ import annotations

import shutil

import pytest

from .conftest import record


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_copy(benchmark, tmp_path, fmt, jpeg_1080p, png_1080p):
    data = jpeg_1080p if fmt == "jpeg" else png_1080p
    src, dst = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}"
    src.write_bytes(data)
    benchmark(shutil.copyfile, src, dst)
    record(f"metadata-only label, 1920x1080 {fmt} file", "shutil.copyfile (peer)", benchmark,
           nbytes=len(data), baseline=True)


@pytest.mark.parametrize("durable", [False, True], ids=["no-fsync", "fsync"])
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_label_metadata_only(benchmark, tmp_path, labeler, fmt, durable, jpeg_1080p, png_1080p):
    data = jpeg_1080p if fmt == "jpeg" else png_1080p
    src, dst = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}"
    src.write_bytes(data)
    benchmark(labeler.label_file, src, dst, explicit="present", durable=durable)
    record(f"metadata-only label, 1920x1080 {fmt} file",
           f"Labeler.label_file ({'fsync' if durable else 'no fsync, like copy'})", benchmark,
           nbytes=len(data), target=">= 0.50x copy" if not durable else "")
