"""Metadata-only labeling of 1080p JPEG and PNG files next to a plain file copy (target >= 50%).

shutil.copyfile is the baseline; on Linux it copies inside the kernel (copy_file_range /
sendfile) without the bytes ever reaching user space, which no labeler that must read, hash and
rewrite them can match. A read + write copy is measured too, as the user-space floor. All sides write a new output file each round (the previous one is removed untimed), so
neither pays for truncating or unlinking an old file that the other does not.
"""

from __future__ import annotations

import os
import shutil

import pytest

from .conftest import record

ROUNDS = 300


def _fresh(path):
    def setup():
        if os.path.exists(path):
            os.unlink(path)
    return setup


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_copy(benchmark, tmp_path, fmt, jpeg_1080p, png_1080p):
    data = jpeg_1080p if fmt == "jpeg" else png_1080p
    src, dst = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}"
    src.write_bytes(data)
    benchmark.pedantic(shutil.copyfile, (src, dst), setup=_fresh(dst), rounds=ROUNDS,
                       warmup_rounds=10)
    record(f"metadata-only label, 1920x1080 {fmt} file", "shutil.copyfile (peer)", benchmark,
           nbytes=len(data), baseline=True)


def _user_space_copy(src, dst):
    """What any tool that must look at the bytes pays: read them in, write them out."""
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_user_space_copy(benchmark, tmp_path, fmt, jpeg_1080p, png_1080p):
    data = jpeg_1080p if fmt == "jpeg" else png_1080p
    src, dst = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}"
    src.write_bytes(data)
    benchmark.pedantic(_user_space_copy, (src, dst), setup=_fresh(dst), rounds=ROUNDS,
                       warmup_rounds=10)
    record(f"metadata-only label, 1920x1080 {fmt} file", "read + write copy (user space)",
           benchmark, nbytes=len(data))


@pytest.mark.parametrize("durable", [False, True], ids=["no-fsync", "fsync"])
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_label_metadata_only(benchmark, tmp_path, labeler, fmt, durable, jpeg_1080p, png_1080p):
    data = jpeg_1080p if fmt == "jpeg" else png_1080p
    src, dst = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}"
    src.write_bytes(data)
    benchmark.pedantic(labeler.label_file, (src, dst),
                       {"explicit": "present", "durable": durable}, setup=_fresh(dst),
                       rounds=ROUNDS if not durable else ROUNDS // 5, warmup_rounds=10)
    record(f"metadata-only label, 1920x1080 {fmt} file",
           f"Labeler.label_file ({'fsync' if durable else 'no fsync, like copy'})", benchmark,
           nbytes=len(data), target=">= 0.50x copy" if not durable else "")
