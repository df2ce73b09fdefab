"""ultrassl data viewer: browse the clips of a folder or manifest frame by frame, with their annotations.

Start it with ``ultrassl app FOLDER_OR_MANIFEST --runs RUNS`` (:mod:`ultrassl.app`), which
binds it to 127.0.0.1 with safe server options; the arguments after ``--`` of ``streamlit run
apps/viewer.py -- ...`` are ``--data FOLDER``, ``--manifest CSV``, ``--runs FOLDER`` (repeatable),
``--unmasked`` and each shown task's ``--<key>-model CKPT``.

The page serves the data folder and the run folders it was started with and nothing else
(:mod:`apps.serving`): a visitor picks a manifest found under the data folder, a clip of the
folder itself (no manifest needed) or uploads one loop, and picks models among the
checkpoints of the run folders, described by task, objective and date; no free path is
taken, and a manifest row that points outside the served folders is not opened.

Shows, for the chosen clip: one frame at a time (read alone through
:func:`ultrassl.io.read_clip`), the detected scan sector, the ground-truth plane of the frame
and of the whole clip, and the sonographer's gaze (fixation circles and a density map). With
trained models of the tasks that predict whole loops (the task registry,
:mod:`ultrassl.downstream.tasks`) it adds what each predicts for every frame: the predicted
class on a timeline, where each class is best seen and the per-frame map (the
class-activation map of the predicted plane, the saliency map). What the page offers for a
task comes from the task (:class:`~ultrassl.downstream.task.ViewerSpec`). Everything outside
the scan sector, where scanners burn in patient details, is hidden; only a server started
with ``--unmasked`` offers a switch to show it. Errors are one-line messages in the page.

The drawing lives in :mod:`apps.overlays`, the reading in :mod:`apps.loading` and what may
be opened in :mod:`apps.serving`; this file only lays out the page.
"""

from __future__ import annotations

import argparse
import atexit
import html
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run from a checkout: the packages need not be installed
    sys.path.insert(0, str(_ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from apps import checks, cine, embedding, loading, memory, overlays, pretext, serving  # noqa: E402
from ultrassl.downstream.inference import LoopPredictor  # noqa: E402
from ultrassl.downstream.task import Task  # noqa: E402
from ultrassl.downstream.tasks import TASKS  # noqa: E402
from ultrassl.errors import UltrasslError  # noqa: E402
from ultrassl.io import ClipInfo, probe_clip, read_clip  # noqa: E402
from ultrassl.transforms.ultrasound import LoopSector  # noqa: E402

#: bytes of decoded frames kept in memory (never on disk: frames may carry burned-in patient text)
FRAME_CACHE_BYTES = 256 * 2**20
#: widget keys, also used by the tests
MANIFEST_KEY = "manifest_path"
SOURCE_KEY = "source"
FOLDER_CLIP_KEY = "folder_clip"
UPLOAD_KEY = "upload"
#: a frame to open, set by a click in the embedding view and applied on the next run
OPEN_REQUEST_KEY = "open_request"
#: the sources of a clip offered in the sidebar
SOURCES = ("Manifest", "Folder", "Upload")
#: file types an upload may be: single-file loops (an .mhd header needs its raw file beside it)
UPLOAD_TYPES = ("dcm", "dicom", "mha", "nii", "gz", "nrrd", "mp4", "avi", "mov", "mkv", "m4v", "webm")
NO_MODEL = ""


def viewed_tasks() -> list[Task]:
    """The registered tasks whose models the page shows, in registry order."""
    return [task for task in TASKS.values() if task.viewer is not None and task.predicts_loops]


def model_key(task: Task) -> str:
    """The session key of a task's model path."""
    return f"{task.viewer.key}_model_path"


def command_line(argv: list[str] | None = None) -> argparse.Namespace:
    """The viewer's arguments after ``streamlit run apps/viewer.py --`` (see the module
    docstring): ``data``, ``manifest``, ``runs`` (a list), ``unmasked`` and every shown task's
    ``<key>_model`` (``""`` when absent)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--data", default="")
    parser.add_argument("--manifest", default="")
    parser.add_argument("--runs", action="append", default=[])
    parser.add_argument("--unmasked", action="store_true")
    for task in viewed_tasks():
        parser.add_argument(f"--{task.viewer.key}-model", default="")
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return known


def manifest_from_command_line(argv: list[str] | None = None) -> str:
    """``--manifest`` from the arguments after ``streamlit run apps/viewer.py --``, or ``""``."""
    return command_line(argv).manifest


def served_folders(args: argparse.Namespace) -> serving.ServedFolders | None:
    """The folders this server was started with: ``--data`` (else the manifest's folder) and
    ``--runs``; None when neither a data folder nor a manifest was given."""
    data = args.data or (str(Path(args.manifest).resolve().parent) if args.manifest else "")
    if not data:
        return None
    return serving.ServedFolders.of(data, args.runs)


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


@st.cache_resource(show_spinner=False)
def frame_store() -> memory.ByteBudgetLRU:
    return memory.ByteBudgetLRU(FRAME_CACHE_BYTES)


def cached_frame(path: str, index: int, stamp: tuple[int, int] | None) -> np.ndarray:
    """Frame ``index`` of the clip, uint8 ``(H, W, C)``, decoded on its own; decoded frames are
    kept within :data:`FRAME_CACHE_BYTES` over all visitors (least recently used go first)."""
    key = (path, int(index), stamp)
    frame = frame_store().get(key)
    if frame is None:
        frame = read_clip(path, [index], info=cached_info(path, stamp)).frames[0]
        frame_store().put(key, frame)
    return frame


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


#: bytes of model outputs kept in memory, over all visitors (see apps.memory)
PREDICTION_BUDGET_BYTES = 512 * 2**20


@st.cache_resource(show_spinner=False)
def prediction_store() -> memory.ByteBudgetLRU:
    return memory.ByteBudgetLRU(PREDICTION_BUDGET_BYTES)


def cached_prediction(model_path: str, model_stamp: tuple[int, int] | None, clip_path: str,
                      clip_stamp: tuple[int, int] | None, n_frames: int = 0) -> dict:
    """The model's output on every frame, as numpy arrays (see :class:`LoopPrediction`), kept
    within :data:`PREDICTION_BUDGET_BYTES`; a progress bar with the time left while it runs."""
    key = (model_path, model_stamp, clip_path, clip_stamp)
    store = prediction_store()
    found = store.get(key)
    if found is not None:
        return found
    bar = st.progress(0.0, text=f"Running {Path(model_path).name} over the clip...")
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        left = (time.perf_counter() - started) / max(done, 1) * (total - done)
        bar.progress(done / max(total, 1), text=f"Running the model: {done} of {total} frames, about {left:.0f} s left")

    try:
        prediction = cached_predictor(model_path, model_stamp).predict(clip_path, progress=progress)
    finally:
        bar.empty()
    as_numpy = lambda t: None if t is None else t.numpy()  # noqa: E731
    out = {"task": prediction.task, "class_names": prediction.class_names,
           "probabilities": as_numpy(prediction.probabilities), "maps": as_numpy(prediction.maps),
           "best_frames": prediction.best_frames}
    store.put(key, out)
    return out


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


def _sidebar_options(unmasking_allowed: bool) -> tuple[overlays.ViewOptions, int, int]:
    """The overlay switches; returns the options, the sector window and the density window.
    Masking can be turned off only on a server started with ``--unmasked``."""
    defaults = overlays.ViewOptions()
    st.sidebar.subheader("Overlays")
    if unmasking_allowed:
        hide = st.sidebar.toggle(
            "Hide outside the scan sector",
            value=defaults.hide_outside_sector,
            key="hide_outside_sector",
            help="Scanners burn patient details (name, dates, institution) into the image outside the "
            "scan sector. Keep this on unless you need to see that area.",
        )
    else:
        hide = True
        st.sidebar.caption("Outside the scan sector is always hidden: this server was started without "
                           "--unmasked.")
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


@st.cache_data(max_entries=2048, show_spinner=False)
def cached_checkpoint_entry(path: str, stamp: tuple[int, int] | None,
                            _served: serving.ServedFolders) -> serving.CheckpointEntry | None:
    # _served is not part of the key: it is fixed for the server's lifetime
    return serving.describe_checkpoint(path, _served)


@st.cache_data(ttl=30, show_spinner=False)
def cached_checkpoints(runs: tuple[str, ...]) -> list[str]:
    """The run folders' checkpoints, walked once per half minute rather than on every rerun
    (a new checkpoint shows up within 30 s)."""
    return [str(p) for p in serving.find_checkpoints([Path(r) for r in runs])]


def model_choices(task: Task, served: serving.ServedFolders) -> dict[str, str]:
    """``{checkpoint path: label}`` of the task's models under the run folders, newest first."""
    choices = {}
    for path in cached_checkpoints(tuple(str(r) for r in served.runs)):
        entry = cached_checkpoint_entry(str(path), _stamp(str(path)), served)
        if entry is not None and entry.task == task.name:
            choices[entry.path] = entry.label
    return choices


def _model_sidebar(served: serving.ServedFolders, args: argparse.Namespace,
                   notes: list[str]) -> tuple[dict[str, str], dict[str, bool], float]:
    """The model chosen for every shown task among the checkpoints of the run folders
    (``{task: path}``, tasks without one left out), whether to draw each task's map, and the
    maps' opacity."""
    st.sidebar.subheader("Models")
    if not served.runs:
        st.sidebar.caption("No run folder was given at start (ultrassl app ... --runs RUNS).")
    paths: dict[str, str] = {}
    comparisons: dict[str, str] = {}
    for task in viewed_tasks():
        choices = {NO_MODEL: "(none)", **model_choices(task, served)}
        given = getattr(args, f"{task.viewer.key}_model")
        if given and model_key(task) not in st.session_state:
            if served.contains(given) and given not in choices:
                choices[given] = f"{Path(given).name} (from the command line)"
            if given in choices:
                st.session_state[model_key(task)] = given
            else:
                notes.append(f"{task.viewer.model_label} from the command line not offered: it is outside the "
                             "folders this app serves.")
        if st.session_state.get(model_key(task), NO_MODEL) not in choices:
            st.session_state[model_key(task)] = NO_MODEL
        paths[task.name] = st.sidebar.selectbox(task.viewer.model_label, list(choices), key=model_key(task),
                                                format_func=choices.get, help=task.viewer.model_help)
        if task.viewer.class_label and paths[task.name]:
            key = compare_key(task)
            if st.session_state.get(key, NO_MODEL) not in choices:
                st.session_state[key] = NO_MODEL
            compared = st.sidebar.selectbox(
                f"Compare with ({_title(task.name)})", list(choices), key=key, format_func=choices.get,
                help="A second model of the task, e.g. the random-init arm beside the pretrained one: its "
                "prediction of every frame is shown under the first one's.")
            if compared and compared != paths[task.name]:
                comparisons[task.name] = compared
    show = {task.name: st.sidebar.toggle(task.viewer.map_label, value=True, key=task.viewer.map_key,
                                         disabled=not paths[task.name], help=task.viewer.map_help)
            and bool(paths[task.name]) for task in viewed_tasks()}
    alpha = st.sidebar.slider("Model map opacity", 0.1, 1.0, 0.6, 0.05, key="model_alpha",
                              disabled=not any(paths.values()))
    st.session_state["compared_models"] = comparisons
    return {name: path for name, path in paths.items() if path}, show, alpha


def compare_key(task: Task) -> str:
    """The session key of a task's second (compared) model path."""
    return f"{task.viewer.key}_compare_path"


def _title(task_name: str) -> str:
    return task_name.replace("_", " ")


def _predictions(models: dict[str, str], clip_path: str, clip_stamp, n_frames: int, notes: list[str]) -> dict[str, dict]:
    """``{task: output}`` of the models given (``{task: path}``), for the clip; problems go to ``notes``."""
    out = {}
    for task, model_path in models.items():
        try:
            prediction = cached_prediction(model_path, _stamp(model_path), clip_path, clip_stamp)
        except (UltrasslError, OSError, ValueError) as exc:
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


@st.cache_data(max_entries=4, show_spinner="Looking for manifests...")
def cached_manifests(folder: str) -> list[str]:
    return [str(p) for p in serving.find_manifests(Path(folder))]


@st.cache_data(max_entries=4, show_spinner="Looking for clips...")
def cached_loops(folder: str) -> list[str]:
    return serving.find_loops(Path(folder))


def _upload_folder() -> Path:
    """This visitor's private folder for uploads (mode 0700, in memory under /dev/shm where there
    is one, removed when the server stops)."""
    if "upload_dir" not in st.session_state:
        # memory-backed where the system has it: an uploaded DICOM carries its header to wherever it is written
        shared_memory = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        folder = tempfile.mkdtemp(prefix="ultrassl-upload-", dir=shared_memory)
        atexit.register(shutil.rmtree, folder, True)  # uploads do not outlive the server
        st.session_state["upload_dir"] = folder
    return Path(st.session_state["upload_dir"])


def _saved_upload(upload) -> str:
    """The uploaded loop written to this visitor's upload folder under a neutral name (an
    uploaded file's name may carry the patient's); returns its path."""
    name = upload.name.lower()
    suffix = ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix
    path = _upload_folder() / f"uploaded_loop{suffix}"
    marker = (upload.file_id, upload.size)
    if st.session_state.get("upload_saved") != marker:
        for old in _upload_folder().iterdir():
            old.unlink()
        path.write_bytes(upload.getbuffer())
        st.session_state["upload_saved"] = marker
    return str(path)


def _single_clip(path: str, name: str) -> pd.DataFrame:
    """A one-row table for a clip opened without a manifest (no annotations)."""
    return pd.DataFrame([{"clip": name, "path": path, "n_frames": 0}])


def _choose_source(served: serving.ServedFolders, args: argparse.Namespace):
    """The sidebar's source of clips: ``(ok, refused, manifest_path or "")``, or None when the
    page has nothing to show yet (it says why)."""
    manifests = cached_manifests(str(served.data))
    given = str(Path(args.manifest).resolve()) if args.manifest else ""
    if given and given not in manifests and served.contains(given) and Path(given).is_file():
        manifests = [given, *manifests]
    if SOURCE_KEY not in st.session_state:
        st.session_state[SOURCE_KEY] = SOURCES[0] if manifests else SOURCES[1]
    source = st.sidebar.radio("Open", SOURCES, key=SOURCE_KEY, horizontal=True,
                              help="A manifest found under the served folder, any clip of the folder "
                              "(no manifest needed), or one loop uploaded from your computer.")
    base = served.data
    if source == "Manifest":
        if not manifests:
            st.info("No manifest under the served folder; open a clip of the folder or upload one.")
            return None
        if st.session_state.get(MANIFEST_KEY) not in manifests:
            st.session_state[MANIFEST_KEY] = given if given in manifests else manifests[0]
        manifest_path = st.sidebar.selectbox(
            "Manifest", manifests, key=MANIFEST_KEY,
            format_func=lambda p: loading.relative_name(p, base))
        ok, refused = cached_manifest(manifest_path, _stamp(manifest_path))
        ok, outside = loading.split_served(ok, served)
        if len(outside):
            st.sidebar.caption(f"{len(outside)} rows of this manifest point outside the served folders and are "
                               "not opened.")
        return ok, refused, manifest_path
    if source == "Folder":
        loops = cached_loops(str(served.data))
        if not loops:
            st.info("No clip a reader can open under the served folder.")
            return None
        request = st.session_state.get(OPEN_REQUEST_KEY)
        if request and request["path"] in loops:
            st.session_state[FOLDER_CLIP_KEY] = request["path"]
        if st.session_state.get(FOLDER_CLIP_KEY) not in loops:
            st.session_state[FOLDER_CLIP_KEY] = loops[0]
        path = st.sidebar.selectbox("Clip of the folder", loops, key=FOLDER_CLIP_KEY,
                                    format_func=lambda p: loading.relative_name(p, base))
        return _single_clip(path, loading.relative_name(path, base)), loading.no_rows(), ""
    upload = st.sidebar.file_uploader("Upload one loop (DICOM, MHA/NIfTI, mp4/avi)", type=list(UPLOAD_TYPES),
                                      key=UPLOAD_KEY)
    if upload is None:
        st.info("Upload a loop in the sidebar: it is kept in a private folder in this server's memory until you "
                "upload another one or the server stops.")
        return None
    return _single_clip(_saved_upload(upload), "uploaded loop"), loading.no_rows(), ""


def main() -> None:
    st.set_page_config(page_title="ultrassl data viewer", layout="wide")
    st.title("ultrassl data viewer")
    args = command_line()
    served = served_folders(args)
    if served is None:
        st.info("Start the viewer with a folder or manifest to serve: `ultrassl app FOLDER --runs RUNS`.")
        return
    if "upload_dir" in st.session_state:
        served = served.with_extra(st.session_state["upload_dir"])
    try:
        chosen = _choose_source(served, args)
    except (UltrasslError, OSError, ValueError) as exc:
        st.error(loading.describe_error(exc))
        return
    if chosen is None:
        return
    ok, refused, manifest_path = chosen
    if manifest_path:
        st.sidebar.caption(f"{len(ok)} readable clips, {len(refused)} refused (listed below the frame).")
    if not len(ok):
        st.warning("The manifest lists no readable clip in the served folders.")
        _manifest_tables(ok, refused)
        return

    rows = {row["clip"]: row for _, row in ok.iterrows()}
    clip_name = next(iter(rows))
    request = st.session_state.get(OPEN_REQUEST_KEY)
    if manifest_path and request and request["clip"] in rows:
        st.session_state[f"clip::{manifest_path}"] = request["clip"]
    if manifest_path:
        clip_name = st.sidebar.selectbox(
            "Clip", list(rows), format_func=lambda name: _clip_title(rows[name]), key=f"clip::{manifest_path}"
        )
    options, sector_frames, density_frames = _sidebar_options(args.unmasked)
    notes: list[str] = []
    models, show_maps, model_alpha = _model_sidebar(served, args, notes)
    row = rows[clip_name]
    path = row["path"]

    # The title is written when this clip's frame is ready: until then the previous title stays
    # over the previous frame, never the new title over the old frame.
    title = st.empty()
    try:
        stamp = _stamp(path)
        info = cached_info(path, stamp)
    except (UltrasslError, OSError) as exc:
        title.subheader(clip_name)
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
        if request and request["path"] == path and 0 <= request["frame"] < n_frames:
            st.session_state[f"frame::{path}"] = request["frame"]
        start = {} if f"frame::{path}" in st.session_state else {"value": 0}
        frame_index = st.slider("Frame", 0, n_frames - 1, key=f"frame::{path}", **start)
    st.session_state.pop(OPEN_REQUEST_KEY, None)
    try:
        frame = cached_frame(path, frame_index, stamp)
        sector = None
        if options.hide_outside_sector or options.sector_outline:
            sector = loop_sector(sector_frames)(path, cached_info(path, stamp))
    except UltrasslError as exc:
        title.subheader(clip_name)
        st.error(loading.describe_error(exc))
        _manifest_tables(ok, refused)
        return

    labels = class_names = None
    for column, what in (("frame_labels", "Frame labels"), ("fixations", "Fixations")):
        if loading.has_sidecar(row, column) and not served.contains(row[column]):
            notes.append(f"{what} not shown: the manifest names a file outside the folders this app serves.")
            row = row.drop(column)
    if loading.has_sidecar(row, "frame_labels"):
        try:
            classes = loading.plane_classes(manifest_path)
            labels, class_names = cached_labels(
                row["frame_labels"], n_frames, None if classes is None else tuple(classes),
                _stamp(row["frame_labels"]),
            )
        except (UltrasslError, OSError, ValueError) as exc:
            notes.append(f"Frame labels not shown: {loading.describe_error(exc)}")
    fixations: dict[int, np.ndarray] | None = None
    if loading.has_sidecar(row, "fixations"):
        try:
            fixations = cached_fixations(row["fixations"], _stamp(row["fixations"]))
        except (UltrasslError, OSError, ValueError) as exc:
            notes.append(f"Fixations not shown: {loading.describe_error(exc)}")

    gaze = fixations or {}
    here = loading.fixations_between(gaze, frame_index, frame_index)
    around = loading.fixations_between(gaze, frame_index - density_frames, frame_index + density_frames)
    scale = overlays.display_scale(info.width)
    image = overlays.render_view(frame, options, sector, here, around, scale)
    predictions = _predictions(models, path, stamp, n_frames, notes)
    compared = _predictions(st.session_state.get("compared_models", {}), path, stamp, n_frames, notes)
    map_sector = sector if options.hide_outside_sector else None
    drawn_maps = []
    for task, prediction in predictions.items():
        if show_maps[task] and prediction["maps"] is not None:
            image = overlays.model_map_heat(image, prediction["maps"][frame_index], map_sector, scale, model_alpha,
                                            shift_to_zero=TASKS[task].viewer.signed_maps)
            drawn_maps.append(TASKS[task].viewer)

    left, right = st.columns([3, 1])
    with left:
        time_text = f" · {frame_index / info.fps:.2f} s" if info.fps else ""
        title.subheader(clip_name)
        st.image(image, caption=f"frame {frame_index} of {n_frames}{time_text}", output_format="PNG")
        if options.hide_outside_sector:
            st.caption("Outside the scan sector is hidden: scanners burn patient details into that area.")
        else:
            st.warning("Masking is off: burned-in text outside the scan sector is shown and may identify the patient.")
        if predictions:
            found = sector if sector is not None else loop_sector(sector_frames)(path, info)
            doubts = checks.bmode_doubts(frame, found)
            if doubts:
                st.warning("This loop does not look like the B-mode ultrasound the models were trained on: "
                           + "; ".join(doubts) + ". Read their predictions with care.")
        for viewer in drawn_maps:
            scale_text = ("class evidence of the predicted plane, from its lowest in the sector (transparent) to its "
                          "peak on this frame" if viewer.signed_maps else
                          "predicted gaze probability, from 0 (transparent) to its peak on this frame")
            st.image(overlays.colour_bar(image.shape[1] // 2), caption=f"{viewer.map_label}: {scale_text}",
                     output_format="PNG")
        _exports(image, frame_index, n_frames, labels, class_names, predictions)
        if n_frames > 1 and st.toggle("Play the loop", value=False, key="play_cine",
                                      help="The frames as shown here (masked, with the gaze overlays), at the "
                                      "file's frame rate, looped."):
            st.video(cached_movie(path, stamp, options, sector_frames, info.fps), format="video/mp4", loop=True,
                     autoplay=True, muted=True)
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
            other = compared.get(task)
            if other is not None and other["probabilities"] is not None:
                other_predicted = other["probabilities"].argmax(axis=1)
                strip = overlays.plane_timeline(other_predicted, model_colours, current=frame_index,
                                                width=image.shape[1])
                agree = float((other_predicted == predicted).mean())
                st.image(strip, caption=f"Compared model: predicted {noun} of every frame (agrees on {agree:.0%} "
                         "of the frames)", output_format="PNG")
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
            other = compared.get(task)
            if other is not None and other["probabilities"] is not None:
                other_probabilities = other["probabilities"][frame_index]
                other_best = int(other_probabilities.argmax())
                st.metric(f"{TASKS[task].viewer.class_label} (compared model)", other["class_names"][other_best],
                          delta=f"p = {other_probabilities[other_best]:.2f}", delta_color="off", delta_arrow="off")
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

    _pretext_section(row, path, stamp, unmasked=not options.hide_outside_sector)
    _embedding_section(ok, served, manifest_path)
    _manifest_tables(ok, refused)
    with st.expander("File facts (non-identifying header fields the reader keeps)"):
        st.caption(f"{info.format} · {clip_name}")
        st.json(info.metadata, expanded=1)


@st.cache_data(max_entries=16, show_spinner="Drawing a training sample...")
def cached_pretext(name: str, row: dict, stamp: tuple[int, int] | None, seed: int) -> list[pretext.PretextView]:
    config = pretext.objective_configs()[name]
    return pretext.pretext_views(pretext.pretext_sample(config, row, seed), config)


@st.cache_data(max_entries=4, show_spinner="Making the movie...")
def cached_movie(path: str, stamp, options: overlays.ViewOptions, sector_frames: int, fps: float | None) -> bytes:
    """The loop as the page shows it (masked, without model maps), as mp4 bytes, kept in memory."""
    info = cached_info(path, stamp)
    indices = cine.movie_frame_indices(info.n_frames)
    frames = read_clip(path, indices.tolist(), info=info).frames
    sector = loop_sector(sector_frames)(path, info) if options.hide_outside_sector or options.sector_outline else None
    plain = overlays.ViewOptions(hide_outside_sector=options.hide_outside_sector,
                                 sector_outline=options.sector_outline, fixations=False, density=False)
    scale = max(1, overlays.display_scale(info.width) // 2)
    shown = np.stack([overlays.render_view(frame, plain, sector, None, None, scale) for frame in frames])
    rate = fps * len(indices) / info.n_frames if fps else None  # subsampled loops keep their duration
    return cine.loop_movie(shown, rate)


def _exports(image: np.ndarray, frame_index: int, n_frames: int, labels, class_names,
             predictions: dict[str, dict]) -> None:
    """Download buttons: the view as shown (PNG) and, with labels or models, a table per frame."""
    import cv2

    left, right = st.columns(2)
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if ok:
        left.download_button("Download this view (PNG)", png.tobytes(), file_name=f"frame_{frame_index:05d}.png",
                             mime="image/png", key="download_view")
    table = pd.DataFrame({"frame": np.arange(n_frames)})
    if labels is not None:
        table["plane_true"] = [class_names[int(i)] for i in labels]
    for task, prediction in _classified(predictions):
        probabilities = prediction["probabilities"]
        table[f"{task}_predicted"] = [prediction["class_names"][int(i)] for i in probabilities.argmax(axis=1)]
        table[f"{task}_probability"] = probabilities.max(axis=1).round(4)
    if len(table.columns) > 1:
        right.download_button("Download the frame table (CSV)", table.to_csv(index=False).encode(),
                              file_name="frames.csv", mime="text/csv", key="download_table")


def _pretext_section(row: pd.Series, path: str, stamp, unmasked: bool) -> None:
    """What an objective's pipeline feeds the encoder from this clip (:mod:`apps.pretext`)."""
    st.subheader("What a self-supervised objective is fed")
    if not st.toggle("Draw a training sample of this clip", value=False, key="show_pretext",
                     help="Runs the training pipeline of the objective's shipped config on this clip, as the data "
                     "module does, and shows the clips the encoder receives with the parameters drawn."):
        return
    configs = pretext.objective_configs()
    # natural-video pipelines do not mask the scan sector: offered only where unmasking is
    modalities = {name: ((c["data"]["init_args"]["pipeline"].get("init_args") or {}).get("modality"))
                  for name, c in configs.items()}
    names = [name for name in configs if unmasked or modalities[name] == "ultrasound"]
    left, right = st.columns([3, 1])
    name = left.selectbox("Objective (configs/pretrain)", names, key="pretext_objective")
    seed = int(right.number_input("Seed of the draw", min_value=0, max_value=2**31 - 1, value=0, step=1,
                                  key="pretext_seed"))
    facts = {k: row[k] for k in row.index if k in ("path", "format", "n_frames", "fps", "height", "width", "channels",
                                                   "spacing_row_mm", "spacing_col_mm", "has_audio")}
    if not {"format", "n_frames"} <= set(facts):  # opened without a manifest: the header gives them
        info = cached_info(path, stamp)
        facts = {"path": path, "format": info.format, "n_frames": info.n_frames, "fps": info.fps or float("nan"),
                 "height": info.height, "width": info.width, "channels": info.channels,
                 "spacing_row_mm": info.spacing_mm[0] if info.spacing_mm else float("nan"),
                 "spacing_col_mm": info.spacing_mm[1] if info.spacing_mm else float("nan"),
                 "has_audio": info.has_audio}
    try:
        views = cached_pretext(name, {k: (v.item() if hasattr(v, "item") else v) for k, v in facts.items()}, stamp,
                               seed)
    except (UltrasslError, ValueError) as exc:
        st.error(loading.describe_error(exc))
        return
    for view in views:
        st.markdown(f"**{html.escape(view.key)}**")
        captions = [f"frame {i}" for i in view.frame_indices] if view.frame_indices else None
        st.image(list(view.frames), caption=captions, width=120)
        for note in view.notes:
            st.caption(note)
        with st.expander(f"{view.key}: recorded parameters"):
            st.json(view.params, expanded=1)


def _embedding_section(clips: pd.DataFrame, served: serving.ServedFolders, manifest_path: str) -> None:
    """Every clip's frames embedded with a chosen checkpoint, in 2D; a click opens a frame."""
    st.subheader("How an encoder organises these clips")
    if not st.toggle("Embed the clips", value=False, key="show_embedding",
                     help="Runs a checkpoint's encoder over frames spread through every clip and projects the "
                     "features to 2D; click a point to open that frame."):
        return
    entries = {}
    for path in cached_checkpoints(tuple(str(r) for r in served.runs)):
        entry = cached_checkpoint_entry(str(path), _stamp(str(path)), served)
        if entry is not None:
            entries[entry.path] = entry.label
    if not entries:
        st.info("No checkpoint under the run folders (ultrassl app ... --runs RUNS).")
        return
    columns = st.columns([3, 1, 1])
    checkpoint = columns[0].selectbox("Encoder of", list(entries), format_func=entries.get, key="embedding_checkpoint")
    methods = ["PCA", "UMAP"] if embedding.umap_available() else ["PCA"]
    method = columns[1].radio("Projection", methods, key="embedding_method", horizontal=True)
    per_clip = int(columns[2].number_input("Frames per clip", 1, 64, embedding.DEFAULT_FRAMES_PER_CLIP,
                                           key="embedding_frames"))
    key = (checkpoint, _stamp(checkpoint), method, per_clip, tuple(clips["path"]))
    stored = st.session_state.get("embedding")
    if stored is None or stored[0] != key:
        if not st.button(f"Embed {len(clips)} clip{'s' if len(clips) != 1 else ''}", key="embedding_run"):
            return
        bar = st.progress(0.0, text="Embedding...")
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            left = (time.perf_counter() - started) / done * (total - done)
            bar.progress(done / total, text=f"Embedding: {done} of {total} clips, about {left:.0f} s left")

        classes = loading.plane_classes(manifest_path) if manifest_path else None

        def planes(row: pd.Series, n_frames: int):
            if not loading.has_sidecar(row, "frame_labels") or not served.contains(row["frame_labels"]):
                return None
            try:
                labels, names = cached_labels(row["frame_labels"], n_frames, None if classes is None else tuple(classes),
                                              _stamp(row["frame_labels"]))
            except (UltrasslError, OSError, ValueError):
                return None
            return [names[i] for i in labels]

        try:
            model = embedding.embedding_model(checkpoint)
            result = embedding.embed_clips(model, clips, per_clip, method, planes, progress)
        except (UltrasslError, OSError, ValueError) as exc:
            bar.empty()
            st.error(loading.describe_error(exc))
            return
        bar.empty()
        st.session_state["embedding"] = stored = (key, result)
    result = stored[1]
    table = result.table
    colour_options = [c for c in ("plane", "subject", "split", "label", "clip") if c in table.columns]
    colour = st.radio("Colour by", colour_options, key="embedding_colour", horizontal=True)
    import altair as alt

    chart = alt.Chart(table).mark_circle(size=60).encode(
        x=alt.X("x", title=f"{result.method} 1" + (f" ({result.explained[0]:.0%})" if result.explained else "")),
        y=alt.Y("y", title=f"{result.method} 2" + (f" ({result.explained[1]:.0%})" if result.explained else "")),
        color=alt.Color(colour, type="nominal"), tooltip=["clip", "frame", *colour_options],
    ).add_params(alt.selection_point(name="picked", fields=["clip", "path", "frame"]))
    event = st.altair_chart(chart, on_select="rerun", key="embedding_chart")
    n_clips = table["clip"].nunique()
    st.caption(f"{len(table)} frames of {n_clips} clip{'s' if n_clips != 1 else ''}" + (
        f"; {len(result.left_out)} clips could not be read and are left out" if result.left_out else ""))
    picked = ((event or {}).get("selection") or {}).get("picked") or []
    if picked:
        point = picked[0]
        request = {"clip": point.get("clip"), "path": point.get("path"), "frame": int(point.get("frame", 0))}
        if st.session_state.get("last_pick") != request:
            st.session_state["last_pick"] = request
            st.session_state[OPEN_REQUEST_KEY] = request
            st.rerun()


def guarded_main() -> None:
    """:func:`main`, with any unexpected error turned into one line in the page; the
    traceback goes to the server's terminal only (the app starts with error details off)."""
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - the page's last line of defence
        if type(exc).__module__.startswith("streamlit"):
            raise  # Streamlit's own control flow (rerun, stop)
        traceback.print_exc(file=sys.stderr)
        st.error(f"The page stopped on an unexpected {type(exc).__name__}; the details are in the server's "
                 "terminal.")


guarded_main()
