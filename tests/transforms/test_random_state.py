"""Seeding a transform reseeds its own generator in place: the stream a new generator would give."""

from __future__ import annotations

import numpy as np

from ultrassl.transforms.base import Reseedable
from ultrassl.transforms.spatial import RandAffineClipd
from ultrassl.transforms.temporal import SampleFramesd, UniformClipSampler


class _Draws(Reseedable):
    def draws(self) -> list[float]:
        return [*self.R.normal(size=3), *self.R.uniform(size=2), float(self.R.randint(1000))]


def test_a_seed_gives_the_stream_of_a_new_generator_however_the_old_one_was_left():
    transform = _Draws()
    for seed in (0, 7, 2**32 + 5, np.int64(3)):
        transform.set_random_state(seed)
        transform.R.normal()  # an odd number of normals leaves a cached Gaussian behind
        generator = transform.R
        transform.set_random_state(seed)
        assert transform.R is generator  # reseeded, not replaced
        expected = np.random.RandomState(int(seed) % 2**32)
        assert transform.draws() == [*expected.normal(size=3), *expected.uniform(size=2), float(expected.randint(1000))]


def test_a_generator_handed_in_is_never_reseeded_in_place():
    shared = np.random.RandomState(5)
    before = shared.get_state()[1].copy()
    transform = _Draws().set_random_state(state=shared)
    transform.set_random_state(11)
    assert transform.R is not shared
    np.testing.assert_array_equal(shared.get_state()[1], before)
    assert transform.draws() == _Draws().set_random_state(11).draws()


def test_wrappers_and_their_inner_transforms_keep_drawing_from_one_stream():
    affine = RandAffineClipd(["clip"], rotate_range_deg=10)
    frames = SampleFramesd(UniformClipSampler(num_frames=4))
    for wrapper, inner in ((affine, affine.transform), (frames, frames.sampler)):
        for seed in (1, 2):
            wrapper.set_random_state(seed)
            assert inner.R is wrapper.R
            assert wrapper.R.uniform() == np.random.RandomState(seed).uniform()
