"""The trainer tests' shared photographs (test_train, test_schedules)."""

from pathlib import Path

import pytest

from tests.trainables.photos import write_sinusoid_photos


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """Eight smooth-but-textured 96x96 RGB images (sums of random sinusoids)."""
    return write_sinusoid_photos(tmp_path_factory.mktemp("photos"), count=8, side=96, waves=6, seed=0,
                                 max_freq=12)
