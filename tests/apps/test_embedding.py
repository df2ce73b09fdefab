"""The embedding view: frames embedded with a checkpoint's encoder and projected to 2D."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from apps import loading
from apps.embedding import embed_clips, embedding_model, project
from tests.apps.test_viewer import VIEWER
from tests.downstream.helpers import write_pretrain_checkpoint


def _clips(manifest) -> pd.DataFrame:
    ok, _ = loading.load_manifest(manifest)
    return ok


def _planes(manifest):
    classes = loading.plane_classes(manifest)

    def planes(row, n_frames):
        labels, names = loading.load_plane_labels(row["frame_labels"], n_frames, classes)
        return [names[i] for i in labels]

    return planes


def test_pca_finds_the_direction_the_features_vary_along():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=16)
    direction /= np.linalg.norm(direction)
    t = rng.normal(size=200)
    features = 5 * t[:, None] * direction + 0.1 * rng.normal(size=(200, 16))
    coordinates, explained = project(features)
    assert coordinates.shape == (200, 2)
    assert abs(np.corrcoef(coordinates[:, 0], t)[0, 1]) > 0.99 and explained[0] > 0.95


def test_frames_of_every_clip_are_embedded_with_their_plane_and_a_broken_clip_is_left_out(fetal_set, models):
    model = embedding_model(models["plane_detection"])
    assert model.source == "task"
    clips = _clips(fetal_set)
    broken = clips.iloc[[0]].assign(clip="broken.dcm", path=str(fetal_set.parent / "sweeps" / "sweep_broken.dcm"))
    result = embed_clips(model, pd.concat([clips, broken], ignore_index=True), frames_per_clip=4,
                         plane_names=lambda row, n: _planes(fetal_set)(row, n) if row["clip"] != "broken.dcm" else None)
    table = result.table
    assert len(table) == 8 and table.groupby("clip")["frame"].apply(list).to_dict() == {
        "sweeps/sweep_000.dcm": [0, 4, 7, 11], "sweeps/sweep_001.mp4": [0, 4, 7, 11]}
    assert np.isfinite(table[["x", "y"]].to_numpy()).all() and table[["x", "y"]].std().min() > 0
    truth = pd.read_csv(fetal_set.parent / "sweeps" / "sweep_000.planes.csv")["plane"].tolist()
    first = table[table["clip"] == "sweeps/sweep_000.dcm"]
    assert first["plane"].tolist() == [truth[f] for f in first["frame"]]
    assert [x["clip"] for x in result.left_out] == ["broken.dcm"]
    assert result.left_out[0]["error"].startswith("CorruptFileError")


def test_a_pretraining_checkpoint_embeds_through_an_untrained_head(fetal_set, tmp_path):
    checkpoint = write_pretrain_checkpoint(tmp_path / "pretrain.ckpt", "order_geometry")
    model = embedding_model(checkpoint)
    assert model.source == "pretraining" and model.clip_frames == 4  # tiny3d sees clips around each frame
    result = embed_clips(model, _clips(fetal_set), frames_per_clip=3)
    assert len(result.table) == 6 and result.method == "PCA" and len(result.explained) == 2


def test_the_page_embeds_the_clips_and_a_picked_point_opens_its_frame(fetal_set, renders, models):
    sys.argv[:] = [VIEWER, "--manifest", str(fetal_set), "--runs", str(models["plane_detection"].parent)]
    app = AppTest.from_file(VIEWER, default_timeout=120).run()
    app.toggle(key="show_embedding").set_value(True).run()
    assert not app.exception
    assert app.button(key="embedding_run").label == "Embed 2 clips"
    app.button(key="embedding_run").click().run()
    assert not app.exception and not app.error
    assert any(c.value == "16 frames of 2 clips" for c in app.caption)
    assert app.radio(key="embedding_colour").options[0] == "plane"
    # what a click on a point asks for: that clip, at that frame
    clip = fetal_set.parent / "sweeps" / "sweep_001.mp4"
    app.session_state["open_request"] = {"clip": "sweeps/sweep_001.mp4", "path": str(clip), "frame": 7}
    app.run()
    assert not app.exception
    assert app.image[0].captions[0].startswith("frame 7 of 12")
    assert renders[-1]["frame"].shape[:2] == (64, 80)
    assert "open_request" not in app.session_state  # applied once


@pytest.mark.parametrize("frames", [1, 3])
def test_frames_per_clip_are_spread_over_the_loop(fetal_set, models, frames):
    model = embedding_model(models["plane_detection"])
    table = embed_clips(model, _clips(fetal_set).iloc[:1], frames_per_clip=frames).table
    assert table["frame"].tolist() == ([0] if frames == 1 else [0, 6, 11])
