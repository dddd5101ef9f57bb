"""Fixtures for the format handler tests: sample files and the exiftool gate."""

from __future__ import annotations

import pytest

from .samples import EXIFTOOL, SAMPLE_NAMES, Sample, sample as build_sample


@pytest.fixture(params=SAMPLE_NAMES)
def sample(request: pytest.FixtureRequest) -> Sample:
    """Every sample file, one test per sample."""
    return build_sample(request.param)


@pytest.fixture(scope="session")
def exiftool_path() -> str:
    """The exiftool binary; the test is skipped (with the reason) when it is not installed."""
    if EXIFTOOL is None:
        pytest.skip("exiftool is not installed (the Makefile installs it: apt-get install "
                    "libimage-exiftool-perl)")
    return EXIFTOOL
