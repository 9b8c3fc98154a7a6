"""Shared pytest fixtures: where the SR benchmark images (Set5/, Set14/) are, if anywhere."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    """The folder holding Set5/ and Set14/ ($SR_BENCHMARKS or ../shared/data/sr-benchmarks); skip if absent.

    The images are academic benchmarks without a licence: they are never copied into
    this repository, so tests that need them skip cleanly where the folder is missing.
    """
    from trainables.evaluate import benchmark_root  # imported here so collection stays light

    root = benchmark_root()
    if root is None or not (root / "Set5").is_dir() or not (root / "Set14").is_dir():
        pytest.skip("SR benchmark images not found: set SR_BENCHMARKS to the folder holding Set5/ and Set14/")
    return root
