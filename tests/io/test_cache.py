"""The in-memory loop cache: the same frames and errors as a read, bounded, invalidated."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import SimpleITK as sitk

from ultrassl.errors import FrameCountMismatchError, FrameIndexError
from ultrassl.io import read_clip
from ultrassl.io.cache import LoopCache


def _loop(path, n_frames=12, seed=0, size=(16, 20)):
    frames = np.random.default_rng(seed).integers(0, 256, (n_frames, *size), dtype=np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(frames), str(path))
    return frames


def test_a_cached_read_gives_the_frames_a_read_gives(tmp_path):
    path = tmp_path / "loop.mha"
    frames = _loop(path)
    cache = LoopCache(10 * 2**20)
    for indices in ([3, 1, 3, 7], [0], [11, 2]):
        cached, direct = cache.read(path, indices), read_clip(path, indices)
        np.testing.assert_array_equal(cached.frames, direct.frames)
        np.testing.assert_array_equal(cached.frames[..., 0], frames[indices])
        np.testing.assert_array_equal(cached.frame_indices, direct.frame_indices)
        np.testing.assert_allclose(cached.timestamps_s, direct.timestamps_s)
    assert (cache.misses, cache.hits, len(cache)) == (1, 2, 1)  # decoded once


def test_a_changed_file_is_read_again(tmp_path):
    path = tmp_path / "loop.mha"
    _loop(path, seed=0)
    cache = LoopCache(10 * 2**20)
    cache.read(path, [0])
    changed = _loop(path, n_frames=14, seed=1)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new modification time
    np.testing.assert_array_equal(cache.read(path, [13]).frames[..., 0], changed[[13]])
    assert cache.misses == 2


def test_a_file_moved_into_a_clips_place_is_read_again_even_with_the_same_size_and_time(tmp_path):
    path = tmp_path / "loop.mha"
    _loop(path, seed=0)
    cache = LoopCache(10 * 2**20)
    cache.read(path, [0])
    cache.read(path, [1])
    assert (cache.misses, cache.hits, len(cache)) == (1, 1, 1)
    # another file moved into its place, with the same size and modification time: a new file
    replacement = _loop(tmp_path / "new.mha", seed=1)
    stat = path.stat()
    assert (tmp_path / "new.mha").stat().st_size == stat.st_size
    os.utime(tmp_path / "new.mha", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(tmp_path / "new.mha", path)
    np.testing.assert_array_equal(cache.read(path, [3]).frames[..., 0], replacement[[3]])
    assert cache.misses == 2


def test_hits_keep_the_checks_of_a_read(tmp_path):
    path = tmp_path / "loop.mha"
    _loop(path, n_frames=12)
    cache = LoopCache(10 * 2**20)
    cache.read(path, [0])
    with pytest.raises(FrameIndexError, match=r"loop\.mha.*12 frames|12 frames"):
        cache.read(path, [12])
    with pytest.raises(FrameIndexError):
        cache.read(path, [])
    with pytest.raises(FrameCountMismatchError, match="expected 20 frames"):
        cache.read(path, [0], expected_n_frames=20)
    assert cache.hits == 3


def test_the_cache_holds_at_most_its_bytes_and_drops_the_least_recent(tmp_path):
    paths = [tmp_path / f"loop{i}.mha" for i in range(3)]
    for i, path in enumerate(paths):
        _loop(path, seed=i)  # 12 x 16 x 20 = 3840 bytes each
    cache = LoopCache(2 * 3840)
    cache.read(paths[0], [0])
    cache.read(paths[1], [0])
    cache.read(paths[0], [1])  # loop 0 is now the most recent
    cache.read(paths[2], [0])  # drops loop 1
    assert len(cache) == 2 and cache.bytes <= cache.max_bytes
    misses = cache.misses
    cache.read(paths[0], [2])
    assert cache.misses == misses  # kept
    cache.read(paths[1], [2])
    assert cache.misses == misses + 1  # dropped, read again
    tiny = LoopCache(100)
    tiny.read(paths[0], [0])
    assert len(tiny) == 0 and tiny.bytes == 0  # a loop larger than the cache is not kept


def test_a_worker_starts_with_an_empty_cache_of_the_same_size(tmp_path):
    path = tmp_path / "loop.mha"
    _loop(path)
    cache = LoopCache(10 * 2**20)
    cache.read(path, [0])
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.max_bytes == cache.max_bytes and len(copy) == 0 and copy.bytes == 0


def test_the_loaders_of_a_process_share_one_cache_as_large_as_the_largest_budget(tmp_path):
    from ultrassl.io.cache import shared_loop_cache
    from ultrassl.transforms.io import LoadClipd

    path = tmp_path / "loop.mha"
    _loop(path)
    small, large = LoadClipd(loop_cache_mb=1), LoadClipd(loop_cache_mb=3)
    assert small.cache is large.cache is shared_loop_cache(0)
    assert small.cache.max_bytes >= 3 * 2**20
    small.cache.clear()
    item = {"path": str(path), "clip_frame_indices": [0, 5]}
    first, second = small(item), large(item)  # the second loader's read is served from memory
    np.testing.assert_array_equal(first["clip"], second["clip"])
    assert (small.cache.misses, small.cache.hits) == (1, 1)
    assert LoadClipd(loop_cache_mb=0).cache is None
    copy = pickle.loads(pickle.dumps(large))  # a spawned worker: the budget, not the loops
    assert copy.loop_cache_bytes == 3 * 2**20
    with pytest.raises(ValueError, match="max_bytes"):
        shared_loop_cache(-1)
