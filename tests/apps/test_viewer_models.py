"""The viewer with trained models: predicted planes, class-activation maps, saliency maps."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from apps import overlays
from tests.apps.test_viewer import VIEWER, _metric
from ultrassl.downstream.inference import LoopPredictor
from ultrassl.data.planes import PLANE_CLASSES


def _with_models(manifest: Path, plane: Path | None, saliency: Path | None = None) -> AppTest:
    """The page of a server started on ``manifest`` with the models' folder as its run folder,
    with the given models picked."""
    runs = (plane or saliency).parent
    sys.argv[:] = [VIEWER, "--data", str(manifest.parent), "--manifest", str(manifest), "--runs", str(runs)]
    app = AppTest.from_file(VIEWER, default_timeout=120).run()
    for key, model in (("plane_model_path", plane), ("saliency_model_path", saliency)):
        if model is not None:
            app.sidebar.selectbox(key=key).select(str(model))
    return app.run()


def test_predicted_plane_timeline_and_best_frames(fetal_set, renders, models):
    app = _with_models(fetal_set, models["plane_detection"])
    assert not app.exception and not app.warning
    clip = fetal_set.parent / "sweeps" / "sweep_000.dcm"
    prediction = LoopPredictor(models["plane_detection"]).predict(clip)
    for frame in (0, 7):
        app.slider(key=f"frame::{clip}").set_value(frame).run()
        predicted = PLANE_CLASSES[int(prediction.predicted[frame])]
        assert _metric(app, "Plane (model)") == predicted
    assert any(image.captions[0].startswith("Predicted plane of every frame") for image in app.image)
    if prediction.best_frames:
        tables = [d.value for d in app.dataframe if "probability" in d.value.columns]
        assert tables and set(tables[0]["plane"]) == set(prediction.best_frames)


def test_model_maps_are_drawn_inside_the_sector_only(fetal_set, renders, models, monkeypatch):
    shown = []
    original = overlays.model_map_heat

    def spy(image, model_map, sector=None, scale=1, alpha=0.6, shift_to_zero=False):
        out = original(image, model_map, sector, scale, alpha, shift_to_zero)
        shown.append(dict(before=image, after=out, sector=sector, scale=scale, shift=shift_to_zero))
        return out

    monkeypatch.setattr(overlays, "model_map_heat", spy)
    app = _with_models(fetal_set, models["plane_detection"], models["saliency"])
    assert not app.exception
    assert [call["shift"] for call in shown] == [True, False]  # the CAM (signed), then the saliency map
    for call in shown:
        outside = ~overlays.enlarge_mask(call["sector"], call["scale"])
        np.testing.assert_array_equal(call["after"][outside], call["before"][outside])
        assert (call["after"] != call["before"]).any()
    app.sidebar.toggle(key="show_cam").set_value(False).run()
    assert [call["shift"] for call in shown[2:]] == [False]


def test_models_are_picked_by_task_from_the_run_folders(fetal_set, renders, models, monkeypatch, tmp_path):
    runs = models["plane_detection"].parent
    sys.argv[:] = [VIEWER, "--manifest", str(fetal_set), "--runs", str(runs), "--plane-model",
                   str(models["plane_detection"]), "--saliency-model", str(tmp_path / "elsewhere.ckpt")]
    app = AppTest.from_file(VIEWER, default_timeout=120).run()
    assert not app.exception
    plane_box, saliency_box = (app.sidebar.selectbox(key=k) for k in ("plane_model_path", "saliency_model_path"))
    assert plane_box.value == str(models["plane_detection"])
    assert "Plane (model)" in [m.label for m in app.metric]
    # each box offers the models of its task only, described by task, encoder and date
    assert plane_box.options[0] == "(none)" and len(plane_box.options) == 2
    assert plane_box.options[1].startswith("plane detection (finetune) · random init · ")
    assert len(saliency_box.options) == 2 and saliency_box.value == ""
    label = saliency_box.options[1]
    assert label.startswith("saliency (finetune) · random init · ") and "saliency.ckpt" in label
    # a model path from the command line outside the served folders is not opened, and says so
    assert any("Saliency model from the command line not offered: it is outside the folders" in w.value
               for w in app.warning)
    assert not any("elsewhere.ckpt" in w.value for w in app.warning)


def test_a_second_model_of_the_task_is_shown_beside_the_first(fetal_set, renders, models, tmp_path):
    runs = tmp_path / "runs"
    (runs / "random_init").mkdir(parents=True)
    (runs / "pretrained").mkdir()
    first = shutil.copy(models["plane_detection"], runs / "pretrained" / "model.ckpt")
    second = shutil.copy(models["plane_detection"], runs / "random_init" / "model.ckpt")
    sys.argv[:] = [VIEWER, "--manifest", str(fetal_set), "--runs", str(runs), "--plane-model", str(first)]
    app = AppTest.from_file(VIEWER, default_timeout=120).run()
    app.sidebar.selectbox(key="plane_compare_path").select(str(second)).run()
    assert not app.exception
    labels = [m.label for m in app.metric]
    assert "Plane (model)" in labels and "Plane (compared model)" in labels
    caption = next(i.captions[0] for i in app.image if i.captions[0].startswith("Compared model"))
    assert caption.endswith("(agrees on 100% of the frames)")  # the same weights in both files


def test_every_drawn_map_gets_a_colour_bar(fetal_set, renders, models):
    app = _with_models(fetal_set, models["plane_detection"], models["saliency"])
    captions = [c for image in app.image for c in image.captions]
    assert any(c.startswith("Class-activation map: class evidence") for c in captions), captions
    assert any(c.startswith("Predicted saliency: predicted gaze probability") for c in captions)
    app.sidebar.toggle(key="show_cam").set_value(False).run()
    captions = [c for image in app.image for c in image.captions]
    assert not any(c.startswith("Class-activation map:") for c in captions)
