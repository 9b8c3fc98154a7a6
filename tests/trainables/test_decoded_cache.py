"""The node-local cache of decoded data: built once, read back equal, keyed by content, never half-written."""

import numpy as np

from trainables import decoded_cache
from trainables.decoded_cache import cached_groups, entry_path


def _groups():
    rng = np.random.default_rng(0)
    return [[rng.integers(0, 256, (3, 8, 9, 3), dtype=np.uint8), rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)],
            [rng.integers(0, 256, (2, 6, 6, 3), dtype=np.uint8)]]


def test_built_once_then_read_back_equal(tmp_path, monkeypatch):
    monkeypatch.setenv("SRSTUDY_CACHE_DIR", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return _groups()

    first = cached_groups("clips", {"limit": None}, build)
    again = cached_groups("clips", {"limit": None}, build)
    assert len(calls) == 1 and [len(g) for g in again] == [2, 1]
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for g, h in zip(first, again) for a, b in zip(g, h))
    cached_groups("clips", {"limit": 3}, build)  # another key: another entry
    assert len(calls) == 2 and len(list(tmp_path.glob("clips-*.npz"))) == 2
    assert not list(tmp_path.glob("*.tmp"))
    cached_groups("clips", {"limit": None}, build, enabled=False)  # data.cache_decoded: false
    assert len(calls) == 3


def test_a_damaged_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("SRSTUDY_CACHE_DIR", str(tmp_path))
    entry_path("clips", {"k": 1}).write_bytes(b"not an npz")
    out = cached_groups("clips", {"k": 1}, _groups)
    assert np.array_equal(out[1][0], _groups()[1][0])
    assert np.array_equal(cached_groups("clips", {"k": 1}, lambda: [])[0][1], _groups()[0][1])  # read, not built


def test_code_fingerprint_follows_the_files(tmp_path):
    f = tmp_path / "a.py"
    f.write_text("x = 1\n")
    before = decoded_cache.code_fingerprint([f])
    f.write_text("x = 2\n")
    assert decoded_cache.code_fingerprint([f]) != before
