"""The pretext view: one training sample of a clip, as each objective's pipeline draws it."""

from __future__ import annotations

import sys

import numpy as np
import torch
from streamlit.testing.v1 import AppTest

from apps.pretext import display_frames, objective_configs, pretext_sample, pretext_views
from tests.apps.test_viewer import VIEWER, _app
from tests.data.clip_files import write_dicom
from ultrassl.data.manifest import read_manifest
from ultrassl.models.cate_tokens import augmentation_tokens
from ultrassl.transforms.pretext import permutation_class


def _row(manifest, index=0) -> dict:
    return read_manifest(manifest).iloc[index].to_dict()


def test_order_geometry_shows_the_shuffled_frames_and_the_class_to_predict(fetal_set):
    config = objective_configs()["order_geometry"]
    sample = pretext_sample(config, _row(fetal_set), seed=3)
    views = {v.key: v for v in pretext_views(sample, config)}
    assert set(views) == {"order_clip", "geometry_clip"}
    order = views["order_clip"]
    permutation = order.params["permutation"]["permutation"]
    assert order.params["permutation"]["index"] == permutation_class(permutation)
    sampled = [int(i) for i in sample["clip_frame_indices"]]
    assert order.frame_indices == [sampled[i] for i in permutation]  # the file's frame shown at each position
    assert f"order class {permutation_class(permutation)} of 12" in order.notes[0]
    # what is shown is the encoder's input, only stretched to 0-255
    shown, given = order.frames.astype(float), sample["order_clip"][0].numpy()
    assert np.corrcoef(shown.ravel(), given.ravel())[0, 1] > 0.999
    assert any(note.startswith("affine to regress: rotation_deg") for note in views["geometry_clip"].notes)
    # the same seed draws the same sample, another seed another one
    again = pretext_sample(config, _row(fetal_set), seed=3)
    assert torch.equal(again["order_clip"], sample["order_clip"])
    other = pretext_sample(config, _row(fetal_set), seed=4)
    assert not torch.equal(other["geometry_clip"], sample["geometry_clip"])


def test_cate_shows_the_encodings_the_objective_builds(fetal_set):
    config = objective_configs()["cate"]
    sample = pretext_sample(config, _row(fetal_set), seed=1)
    views = pretext_views(sample, config)
    assert [v.key for v in views] == ["view1", "view2"]
    batch = {k: v for k, v in sample.items() if not isinstance(v, str)}
    from torch.utils.data import default_collate

    tokens = augmentation_tokens(default_collate([batch]), "view1", "view2", ["time", "crop", "flip"])
    note = next(n for n in views[0].notes if n.startswith("CATE encodings"))
    assert f"time [{round(float(tokens['time'][0, 0]), 3)}]" in note


def test_display_frames_stretch_each_clip_to_the_full_range():
    clip = torch.linspace(-2, 3, 2 * 4 * 5).reshape(1, 2, 4, 5)
    frames = display_frames(clip)
    assert frames.shape == (2, 4, 5) and frames.dtype == np.uint8 and frames.min() == 0 and frames.max() == 255


def test_the_page_draws_a_sample_and_offers_unmasked_pipelines_only_when_the_server_allows(fetal_set, renders,
                                                                                          tmp_path):
    app = _app(fetal_set)
    app.toggle(key="show_pretext").set_value(True).run()
    assert not app.exception
    names = app.selectbox(key="pretext_objective").options
    assert "order_geometry" in names and not any(n.endswith("_natural") for n in names)
    app.selectbox(key="pretext_objective").select("order_geometry").run()
    assert not app.exception
    captions = [c for image in app.image for c in image.captions]
    assert any(c.startswith("frame ") for c in captions)
    assert any("order class" in c.value for c in app.caption)
    unmasked = _app(fetal_set, "--unmasked")
    unmasked.toggle(key="show_pretext").set_value(True).run()
    assert "cvrl_natural" not in unmasked.selectbox(key="pretext_objective").options  # until masking is off
    unmasked.sidebar.toggle(key="hide_outside_sector").set_value(False).run()
    assert "cvrl_natural" in unmasked.selectbox(key="pretext_objective").options
    # a loop too short for the pipeline is a message naming the file
    short = tmp_path / "short.dcm"
    write_dicom(short, n_frames=3)
    sys.argv[:] = [VIEWER, "--data", str(tmp_path)]
    page = AppTest.from_file(VIEWER, default_timeout=60).run()
    page.toggle(key="show_pretext").set_value(True).run()
    assert not page.exception
    assert any(e.value.startswith("ClipTooShortError") and "short.dcm" in e.value for e in page.error)


def test_the_audio_visual_segments_are_shown_one_by_one(tmp_path):
    from tests.media import write_test_video
    from ultrassl.data.indexing import index_folder

    write_test_video(tmp_path / "av.mp4", n_frames=40, size=(32, 64), fps=25, with_audio=True)
    row = index_folder(tmp_path, progress=False).iloc[0].to_dict()
    config = objective_configs()["av_transformer_natural"]
    views = pretext_views(pretext_sample(config, row, seed=1), config)
    assert [v.key for v in views] == ["visual 0", "visual 1", "visual 2", "visual 3"]
    starts = [v.frame_indices[0] for v in views]
    assert starts == sorted(starts) and len(set(starts)) == 4  # consecutive segments of one window
