"""ultrassl data viewer: browse the clips of a manifest frame by frame, with their annotations.

Run from the repository root::

    .venv/bin/streamlit run apps/viewer.py --server.headless true -- --manifest runs/demo/data/fetal_sweeps/manifest.csv

Shows, for a clip picked from the manifest's readable rows: one frame at a time (read alone
through :func:`ultrassl.io.read_clip`), the detected scan sector, the ground-truth plane of
the frame and of the whole clip, and the sonographer's gaze (fixation circles and a density
map). With trained models of the tasks that predict whole loops (the task registry,
:mod:`ultrassl.downstream.tasks`: ``--plane-model`` and ``--saliency-model``, each a
``model.ckpt`` of ``ultrassl evaluate`` or ``ultrassl fit``) it adds what each predicts for
every frame: the predicted class on a timeline, where each class is best seen and the
per-frame map (the class-activation map of the predicted plane, the saliency map). What the
page offers for a task comes from the task (:class:`~ultrassl.downstream.task.ViewerSpec`). Everything outside the scan sector, where scanners burn in patient
details, is hidden unless the user turns masking off. The refused rows are listed with their
reasons.

The drawing lives in :mod:`apps.overlays` and the reading in :mod:`apps.loading`; this file
only lays out the page.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run from a checkout: the packages need not be installed
    sys.path.insert(0, str(_ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from apps import loading, overlays  # noqa: E402
from ultrassl.downstream.inference import LoopPredictor  # noqa: E402
from ultrassl.downstream.task import Task  # noqa: E402
from ultrassl.downstream.tasks import TASKS  # noqa: E402
from ultrassl.errors import UltrasslError  # noqa: E402
from ultrassl.io import ClipInfo, probe_clip, read_clip  # noqa: E402
from ultrassl.transforms.ultrasound import LoopSector  # noqa: E402

#: decoded frames kept in memory (never on disk: frames may carry burned-in patient text)
FRAME_CACHE_ENTRIES = 512
#: widget keys, also used by the tests
MANIFEST_KEY = "manifest_path"


def viewed_tasks() -> list[Task]:
    """The registered tasks whose models the page shows, in registry order."""
    return [task for task in TASKS.values() if task.viewer is not None and task.predicts_loops]


def model_key(task: Task) -> str:
    """The session key of a task's model path."""
    return f"{task.viewer.key}_model_path"


def command_line(argv: list[str] | None = None) -> argparse.Namespace:
    """``--manifest`` and every shown task's ``--<key>-model`` (``--plane-model``,
    ``--saliency-model``) from the arguments after ``streamlit run apps/viewer.py --``
    (each ``""`` when absent; attributes ``manifest`` and ``<key>_model``)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--manifest", default="")
    for task in viewed_tasks():
        parser.add_argument(f"--{task.viewer.key}-model", default="")
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return known


def manifest_from_command_line(argv: list[str] | None = None) -> str:
    """``--manifest`` from the arguments after ``streamlit run apps/viewer.py --``, or ``""``."""
    return command_line(argv).manifest


def _stamp(path: str) -> tuple[int, int] | None:
    """Modification time and size: part of every cache key, so an edited file is read again.

    ``None`` when the file cannot be looked at; the reader then says why (errors are not cached).
    """
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


# Caches live in this process's memory only (no ``persist``): pixels may hold burned-in text.
@st.cache_data(max_entries=8, show_spinner=False)
def cached_manifest(path: str, stamp: tuple[int, int] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    return loading.load_manifest(path)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_info(path: str, stamp: tuple[int, int] | None) -> ClipInfo:
    # ClipInfo carries only non-identifying header facts (see ultrassl.io.types).
    return probe_clip(path)


@st.cache_data(max_entries=FRAME_CACHE_ENTRIES, show_spinner=False)
def cached_frame(path: str, index: int, stamp: tuple[int, int] | None) -> np.ndarray:
    """Frame ``index`` of the clip, uint8 ``(H, W, C)``, decoded on its own."""
    return read_clip(path, [index], info=cached_info(path, stamp)).frames[0]


@st.cache_resource(show_spinner=False)
def loop_sector(frames: int) -> LoopSector:
    """The sector finder training uses (:class:`~ultrassl.transforms.ultrasound.LoopSector`): on
    ``frames`` frames spread over the whole loop, kept per file while it is unchanged."""
    return LoopSector(frames)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_labels(
    path: str, n_frames: int, classes: tuple[str, ...] | None, stamp: tuple[int, int] | None
) -> tuple[np.ndarray, list[str]]:
    return loading.load_plane_labels(path, n_frames, None if classes is None else list(classes))


@st.cache_data(max_entries=64, show_spinner=False)
def cached_fixations(path: str, stamp: tuple[int, int] | None) -> dict[int, np.ndarray]:
    return loading.load_fixations(path)


# The model and its outputs stay in memory too; outputs are computed from sector-masked frames.
@st.cache_resource(max_entries=4, show_spinner=False)
def cached_predictor(path: str, stamp: tuple[int, int] | None) -> LoopPredictor:
    return LoopPredictor(path)


@st.cache_data(max_entries=16, show_spinner="Running the model over the clip...")
def cached_prediction(model_path: str, model_stamp: tuple[int, int] | None, clip_path: str,
                      clip_stamp: tuple[int, int] | None) -> dict:
    """The model's output on every frame, as numpy arrays (see :class:`LoopPrediction`)."""
    prediction = cached_predictor(model_path, model_stamp).predict(clip_path)
    as_numpy = lambda t: None if t is None else t.numpy()  # noqa: E731
    return {"task": prediction.task, "class_names": prediction.class_names,
            "probabilities": as_numpy(prediction.probabilities), "maps": as_numpy(prediction.maps),
            "best_frames": prediction.best_frames}


def _clip_title(row: pd.Series) -> str:
    extras = [str(row[c]) for c in ("subject", "split") if c in row.index and str(row[c]).strip()]
    n_frames = int(row["n_frames"])
    return " · ".join([row["clip"], *extras, f"{n_frames} frame{'s' if n_frames != 1 else ''}"])


def _legend(class_names: list[str], colours: list[tuple[int, int, int]], present: set[int]) -> str:
    """HTML swatches of the classes that occur in the clip."""
    items = []
    for i in sorted(present):
        if 0 <= i < len(class_names):
            r, g, b = colours[i]
            items.append(
                f'<span style="white-space:nowrap;margin-right:0.9em">'
                f'<span style="display:inline-block;width:0.9em;height:0.9em;background:rgb({r},{g},{b});'
                f'vertical-align:middle;margin-right:0.3em;border:1px solid #888"></span>'
                f"{html.escape(class_names[i])}</span>"
            )
    return " ".join(items)


def _format_spacing(info: ClipInfo) -> tuple[str, str | None]:
    if info.spacing_mm is None:
        return "unknown", None
    row_mm, col_mm = info.spacing_mm
    field = f"field {info.width * col_mm / 10:.1f} × {info.height * row_mm / 10:.1f} cm"
    if np.isclose(row_mm, col_mm, rtol=1e-3):
        return f"{row_mm:.3g} mm", field
    return f"{row_mm:.3g} × {col_mm:.3g} mm", field


def _sidebar_options() -> tuple[overlays.ViewOptions, int, int]:
    """The overlay switches; returns the options, the sector window and the density window."""
    defaults = overlays.ViewOptions()
    st.sidebar.subheader("Overlays")
    hide = st.sidebar.toggle(
        "Hide outside the scan sector",
        value=defaults.hide_outside_sector,
        key="hide_outside_sector",
        help="Scanners burn patient details (name, dates, institution) into the image outside the "
        "scan sector. Keep this on unless you need to see that area.",
    )
    outline = st.sidebar.toggle("Sector outline", value=defaults.sector_outline, key="sector_outline")
    sector_frames = st.sidebar.slider(
        "Sector detection: frames over the loop", 2, 32, 16, key="sector_frames",
        help="The sector is found where speckle changes over this many frames spread through the whole "
        "loop (burned-in text does not change), as training finds it.",
    )
    fixations = st.sidebar.toggle("Gaze fixations", value=defaults.fixations, key="show_fixations")
    density = st.sidebar.toggle("Fixation density map", value=defaults.density, key="show_density")
    sigma_percent = st.sidebar.slider(
        "Density sigma (% of the frame's longer side)", 0.5, 10.0, 100 * defaults.density_sigma_fraction, 0.5,
        key="density_sigma_percent", disabled=not density,
        help="Standard deviation of the Gaussian each fixation is blurred with (at least 1 pixel).",
    )
    density_frames = st.sidebar.slider(
        "Density: fixations of frames either side", 0, 12, 0, key="density_frames", disabled=not density,
    )
    alpha = st.sidebar.slider("Density opacity", 0.1, 1.0, defaults.density_alpha, 0.05, key="density_alpha",
                              disabled=not density)
    options = overlays.ViewOptions(
        hide_outside_sector=hide,
        sector_outline=outline,
        fixations=fixations,
        density=density,
        density_sigma_fraction=sigma_percent / 100.0,
        density_alpha=alpha,
    )
    return options, sector_frames, density_frames


def _model_sidebar() -> tuple[dict[str, str], dict[str, bool], float]:
    """The model path of every shown task (``{task: path}``, empty ones left out), whether to
    draw each task's map, and the maps' opacity."""
    tasks = viewed_tasks()
    if any(model_key(task) not in st.session_state for task in tasks):
        args = command_line()
        for task in tasks:
            st.session_state.setdefault(model_key(task), getattr(args, f"{task.viewer.key}_model"))
    st.sidebar.subheader("Models")
    paths = {task.name: st.sidebar.text_input(task.viewer.model_label, key=model_key(task),
                                              help=task.viewer.model_help).strip() for task in tasks}
    show = {task.name: st.sidebar.toggle(task.viewer.map_label, value=True, key=task.viewer.map_key,
                                         disabled=not paths[task.name], help=task.viewer.map_help)
            and bool(paths[task.name]) for task in tasks}
    alpha = st.sidebar.slider("Model map opacity", 0.1, 1.0, 0.6, 0.05, key="model_alpha",
                              disabled=not any(paths.values()))
    return {name: path for name, path in paths.items() if path}, show, alpha


def _title(task_name: str) -> str:
    return task_name.replace("_", " ")


def _predictions(models: dict[str, str], clip_path: str, clip_stamp, n_frames: int, notes: list[str]) -> dict[str, dict]:
    """``{task: output}`` of the models given (``{task: path}``), for the clip; problems go to ``notes``."""
    out = {}
    for task, model_path in models.items():
        try:
            prediction = cached_prediction(model_path, _stamp(model_path), clip_path, clip_stamp)
        except (UltrasslError, OSError) as exc:
            notes.append(f"{_title(task).capitalize()} model not shown: {loading.describe_error(exc)}")
            continue
        if prediction["task"] != task:
            notes.append(f"{model_path} is a {_title(prediction['task'])} model, not a {_title(task)} one.")
            continue
        per_frame = prediction["probabilities"] if prediction["probabilities"] is not None else prediction["maps"]
        frames = len(per_frame)
        if frames != n_frames:
            notes.append(f"{_title(task).capitalize()} model not shown: it saw {frames} frames, "
                         f"the clip has {n_frames}.")
            continue
        out[task] = prediction
    return out


def _classified(predictions: dict[str, dict]) -> list[tuple[str, dict]]:
    """The predictions that name a class per frame."""
    return [(task, p) for task, p in predictions.items()
            if p["probabilities"] is not None and TASKS[task].viewer.class_label]


def _manifest_tables(ok: pd.DataFrame, refused: pd.DataFrame) -> None:
    with st.expander(f"Readable clips ({len(ok)})"):
        st.dataframe(loading.clip_table(ok), hide_index=True)
    with st.expander(f"Refused files ({len(refused)})", expanded=False):
        if len(refused):
            st.dataframe(refused[["clip", "format", "error"]], hide_index=True)
        else:
            st.caption("The indexer refused no file.")


def main() -> None:
    st.set_page_config(page_title="ultrassl data viewer", layout="wide")
    st.title("ultrassl data viewer")
    if MANIFEST_KEY not in st.session_state:
        st.session_state[MANIFEST_KEY] = manifest_from_command_line()
    manifest_path = st.sidebar.text_input("Manifest CSV", key=MANIFEST_KEY).strip()
    if not manifest_path:
        st.info("Enter the path of a manifest CSV (made by `ultrassl data index` or `make demo`) in the sidebar.")
        return
    try:
        ok, refused = cached_manifest(manifest_path, _stamp(manifest_path))
    except (UltrasslError, OSError) as exc:
        st.error(loading.describe_error(exc))
        return
    st.sidebar.caption(f"{len(ok)} readable clips, {len(refused)} refused (listed below the frame).")
    if not len(ok):
        st.warning("The manifest lists no readable clip.")
        _manifest_tables(ok, refused)
        return

    rows = {row["clip"]: row for _, row in ok.iterrows()}
    clip_name = st.sidebar.selectbox(
        "Clip", list(rows), format_func=lambda name: _clip_title(rows[name]), key=f"clip::{manifest_path}"
    )
    options, sector_frames, density_frames = _sidebar_options()
    models, show_maps, model_alpha = _model_sidebar()
    row = rows[clip_name]
    path = row["path"]

    st.subheader(clip_name)
    try:
        stamp = _stamp(path)
        info = cached_info(path, stamp)
    except (UltrasslError, OSError) as exc:
        st.error(loading.describe_error(exc))
        _manifest_tables(ok, refused)
        return
    n_frames = info.n_frames
    spacing, field = _format_spacing(info)
    facts = st.columns(4)
    duration = f"{info.duration_s:.2f} s" if info.duration_s else None
    facts[0].metric("Frames", n_frames, delta=duration, delta_color="off", delta_arrow="off")
    facts[1].metric("Frame rate", f"{info.fps:.4g} fps" if info.fps else "unknown")
    facts[2].metric("Size", f"{info.width} × {info.height} px",
                    delta="grey" if info.channels == 1 else "RGB", delta_color="off", delta_arrow="off")
    facts[3].metric("Pixel spacing", spacing, delta=field, delta_color="off", delta_arrow="off")

    frame_index = 0
    if n_frames > 1:
        frame_index = st.slider("Frame", 0, n_frames - 1, 0, key=f"frame::{path}")
    try:
        frame = cached_frame(path, frame_index, stamp)
        sector = None
        if options.hide_outside_sector or options.sector_outline:
            sector = loop_sector(sector_frames)(path, cached_info(path, stamp))
    except UltrasslError as exc:
        st.error(loading.describe_error(exc))
        _manifest_tables(ok, refused)
        return

    labels = class_names = None
    notes = []
    if loading.has_sidecar(row, "frame_labels"):
        try:
            classes = loading.plane_classes(manifest_path)
            labels, class_names = cached_labels(
                row["frame_labels"], n_frames, None if classes is None else tuple(classes),
                _stamp(row["frame_labels"]),
            )
        except (UltrasslError, OSError) as exc:
            notes.append(f"Frame labels not shown: {loading.describe_error(exc)}")
    fixations: dict[int, np.ndarray] | None = None
    if loading.has_sidecar(row, "fixations"):
        try:
            fixations = cached_fixations(row["fixations"], _stamp(row["fixations"]))
        except (UltrasslError, OSError) as exc:
            notes.append(f"Fixations not shown: {loading.describe_error(exc)}")

    gaze = fixations or {}
    here = loading.fixations_between(gaze, frame_index, frame_index)
    around = loading.fixations_between(gaze, frame_index - density_frames, frame_index + density_frames)
    scale = overlays.display_scale(info.width)
    image = overlays.render_view(frame, options, sector, here, around, scale)
    predictions = _predictions(models, path, stamp, n_frames, notes)
    map_sector = sector if options.hide_outside_sector else None
    for task, prediction in predictions.items():
        if show_maps[task] and prediction["maps"] is not None:
            image = overlays.model_map_heat(image, prediction["maps"][frame_index], map_sector, scale, model_alpha,
                                            shift_to_zero=TASKS[task].viewer.signed_maps)

    left, right = st.columns([3, 1])
    with left:
        time_text = f" · {frame_index / info.fps:.2f} s" if info.fps else ""
        st.image(image, caption=f"frame {frame_index} of {n_frames}{time_text}", output_format="PNG")
        if options.hide_outside_sector:
            st.caption("Outside the scan sector is hidden: scanners burn patient details into that area.")
        else:
            st.warning("Masking is off: burned-in text outside the scan sector is shown and may identify the patient.")
        if labels is not None:
            colours = overlays.class_colours(class_names)
            strip = overlays.plane_timeline(labels, colours, current=frame_index, width=image.shape[1])
            st.image(strip, caption="Ground-truth plane of every frame (▲ the current frame)", output_format="PNG")
            st.markdown(_legend(class_names, colours, set(labels.tolist())), unsafe_allow_html=True)
        for task, prediction in _classified(predictions):
            noun = TASKS[task].viewer.class_label.lower()
            predicted = prediction["probabilities"].argmax(axis=1)
            model_colours = overlays.class_colours(prediction["class_names"])
            strip = overlays.plane_timeline(predicted, model_colours, current=frame_index, width=image.shape[1])
            st.image(strip, caption=f"Predicted {noun} of every frame (▲ the current frame)", output_format="PNG")
            st.markdown(_legend(prediction["class_names"], model_colours, set(predicted.tolist())),
                        unsafe_allow_html=True)
            if prediction["best_frames"]:
                st.caption(f"Where the model sees each {noun} best")
                st.dataframe(pd.DataFrame([{noun: name, "frame": entry["frame"], "probability": entry["probability"],
                                            "frames predicted": len(entry["predicted_frames"])}
                                           for name, entry in prediction["best_frames"].items()]), hide_index=True)
        if fixations is not None:
            counts = loading.fixation_counts(fixations, n_frames)
            st.caption("Fixations per frame")
            st.bar_chart(pd.DataFrame({"fixations": counts}, index=pd.RangeIndex(n_frames, name="frame")),
                         height=140, width=image.shape[1])
    with right:
        if labels is not None:
            st.metric("Plane (ground truth)", class_names[int(labels[frame_index])])
        elif not loading.has_sidecar(row, "frame_labels"):
            st.metric("Plane (ground truth)", "—", help="The manifest names no frame-label file for this clip.")
        for task, prediction in _classified(predictions):
            probabilities = prediction["probabilities"][frame_index]
            best = int(probabilities.argmax())
            st.metric(f"{TASKS[task].viewer.class_label} (model)", prediction["class_names"][best],
                      delta=f"p = {probabilities[best]:.2f}", delta_color="off", delta_arrow="off")
        if fixations is not None:
            st.metric("Fixations on this frame", len(here))
        elif not loading.has_sidecar(row, "fixations"):
            st.metric("Fixations on this frame", "—", help="The manifest names no fixation file for this clip.")
        if options.density:
            sigma = overlays.density_sigma_px(info.height, info.width, options.density_sigma_fraction)
            sigma_mm = f" ({sigma * info.spacing_mm[1]:.2f} mm)" if info.spacing_mm else ""
            noun = "fixation" if len(around) == 1 else "fixations"
            st.caption(f"Density: {len(around)} {noun}, sigma {sigma:.1f} px{sigma_mm}")
        for note in notes:
            st.warning(note)

    _manifest_tables(ok, refused)
    with st.expander("File facts (non-identifying header fields the reader keeps)"):
        st.caption(f"{info.format} · {path}")
        st.json(info.metadata, expanded=1)


main()
