"""The loop as a movie, and the page's playback and downloads."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from apps.cine import loop_movie, movie_frame_indices
from tests.apps.test_viewer import _app


def test_a_movie_plays_every_frame_at_the_loop_rate():
    frames = np.zeros((20, 33, 41, 3), dtype=np.uint8)
    frames[:, :, :20] = np.linspace(0, 250, 20, dtype=np.uint8)[:, None, None, None]  # brightness rises
    with av.open(io.BytesIO(loop_movie(frames, 12.5))) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 12.5 and stream.codec_context.name == "h264"
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 20 and decoded[0].shape == (32, 40, 3)  # odd sizes cropped to even
    brightness = [d[:, :18].mean() for d in decoded]
    assert np.all(np.diff(brightness) > 0)
    with pytest.raises(ValueError, match="uint8 RGB"):
        loop_movie(frames[..., 0], 25)


def test_long_loops_are_subsampled_evenly():
    assert movie_frame_indices(10).tolist() == list(range(10))
    picked = movie_frame_indices(1200, limit=600)
    assert len(picked) == 600 and picked[0] == 0 and picked[-1] == 1199


def test_the_page_plays_the_loop_and_offers_the_view_and_table(fetal_set, renders):
    app = _app(fetal_set)
    assert not app.get("video")
    app.toggle(key="play_cine").set_value(True).run()
    assert not app.exception
    assert len(app.get("video")) == 1
    labels = [button.proto.label for button in app.get("download_button")]
    assert labels == ["Download this view (PNG)", "Download the frame table (CSV)"]
