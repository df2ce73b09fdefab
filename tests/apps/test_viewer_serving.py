"""What the viewer serves: its folders only, a loop without a manifest, an upload, and errors
as one-line messages; and the ``ultrassl app`` command that starts it safe by default."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from apps import overlays, serving
from tests.apps.test_viewer import VIEWER, _app, _metric
from ultrassl.app import main as app_main
from ultrassl.cli import main as ultrassl_main


@pytest.fixture
def served_copy(fetal_set, tmp_path) -> Path:
    """A copy of the small fetal set that a test may edit; returns its manifest."""
    copy = tmp_path / "served"
    shutil.copytree(fetal_set.parent, copy)
    return copy / "manifest.csv"


def test_a_manifest_pointing_outside_the_served_folder_opens_nothing_there(served_copy, renders, tmp_path):
    secret = tmp_path / "elsewhere" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("frame,x,y\n0,SECRET-LINE,1\n")
    outside_clip = tmp_path / "elsewhere" / "other.dcm"
    shutil.copy(served_copy.parent / "sweeps" / "sweep_000.dcm", outside_clip)
    table = pd.read_csv(served_copy, dtype=str, keep_default_na=False)
    table.loc[0, "fixations"] = str(secret)  # a crafted sidecar
    extra = table.iloc[[1]].assign(path=str(outside_clip))  # a crafted clip row
    pd.concat([table, extra], ignore_index=True).to_csv(served_copy, index=False)
    app = _app(served_copy)
    assert not app.exception
    clips = next(s for s in app.sidebar.selectbox if s.label == "Clip")
    assert all("other.dcm" not in option for option in clips.options)
    assert any("1 rows of this manifest point outside the served folders" in c.value for c in app.sidebar.caption)
    assert any("Fixations not shown: the manifest names a file outside the folders" in w.value for w in app.warning)
    page = " ".join(str(getattr(e, "value", "")) for e in (*app.warning, *app.error, *app.caption, *app.markdown))
    assert "SECRET" not in page and str(secret) not in page
    assert len(renders) == 1  # the frame is still shown


def test_a_manifest_outside_the_served_folder_cannot_be_chosen(served_copy, renders, tmp_path):
    other = tmp_path / "other_manifest.csv"
    shutil.copy(served_copy, other)
    sys.argv[:] = [VIEWER, "--data", str(served_copy.parent)]
    app = AppTest.from_file(VIEWER, default_timeout=60)
    app.session_state["manifest_path"] = str(other)  # as a forged widget value would
    app.run()
    assert not app.exception
    assert app.sidebar.selectbox(key="manifest_path").value == str(served_copy)
    assert str(other) not in app.sidebar.selectbox(key="manifest_path").options


def test_served_folders_refuse_without_saying_whether_a_file_exists(tmp_path):
    served = serving.ServedFolders.of(tmp_path / "data", [tmp_path / "runs"])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "link.dcm").symlink_to("/etc/passwd")
    (tmp_path / "outside.tar").write_bytes(b"")
    (tmp_path / "data" / "link.tar").symlink_to(tmp_path / "outside.tar")
    messages = set()
    for path in ("/etc/shadow", "/etc/no-such-file", str(tmp_path / "data" / ".." / "x"),
                 str(tmp_path / "data" / "link.dcm"), f"{tmp_path / 'data' / 'link.tar'}::clip-00000001",
                 f"{tmp_path / 'outside.tar'}::clip-00000001"):
        with pytest.raises(serving.NotServedError) as caught:
            served.check(path)
        messages.add(str(caught.value))
    assert len(messages) == 1  # the same words for every refused path
    assert served.check(str(tmp_path / "runs" / "a" / "model.ckpt"))
    assert served.check(f"{tmp_path / 'data' / 'shards' / 'a.tar'}::clip-00000001")  # a packed clip of the folder


def test_a_clip_of_the_folder_opens_without_a_manifest(served_copy, renders):
    served_copy.unlink()
    sys.argv[:] = [VIEWER, "--data", str(served_copy.parent)]
    app = AppTest.from_file(VIEWER, default_timeout=60).run()
    assert not app.exception
    assert app.sidebar.radio(key="source").value == "Folder"  # no manifest under the folder
    box = app.sidebar.selectbox(key="folder_clip")
    assert box.options == ["sweeps/sweep_000.dcm", "sweeps/sweep_001.mp4", "sweeps/sweep_broken.dcm"]
    assert _metric(app, "Frames") == "12"
    box.select(str(served_copy.parent / "sweeps" / "sweep_broken.dcm")).run()
    assert not app.exception
    assert app.error[0].value.startswith("CorruptFileError: ") and "sweep_broken.dcm" in app.error[0].value


def test_an_uploaded_loop_is_shown_under_a_neutral_name(fetal_set, renders):
    sys.argv[:] = [VIEWER, "--data", str(fetal_set.parent)]
    app = AppTest.from_file(VIEWER, default_timeout=60).run()
    app.sidebar.radio(key="source").set_value("Upload").run()
    assert "Upload a loop" in app.info[0].value
    data = (fetal_set.parent / "sweeps" / "sweep_001.mp4").read_bytes()
    app.sidebar.file_uploader(key="upload").upload("DOE^JANE_2026-12-01.mp4", data, "video/mp4")
    app.run()
    assert not app.exception, app.exception
    assert _metric(app, "Frames") == "12" and renders[-1]["frame"].shape[:2] == (64, 80)
    page = " ".join(str(getattr(e, "value", "")) for e in (*app.caption, *app.markdown, *app.subheader))
    assert "DOE" not in page and "uploaded loop" in page
    saved = list(Path(app.session_state["upload_dir"]).iterdir())
    assert [p.name for p in saved] == ["uploaded_loop.mp4"]
    if Path("/dev/shm").is_dir():  # in memory, not on disk
        assert app.session_state["upload_dir"].startswith("/dev/shm/")
    garbage = b"\x00" * 4096
    app.sidebar.file_uploader(key="upload").upload("broken.dcm", garbage, "application/dicom")
    app.run()
    assert not app.exception
    assert app.error and app.error[0].value.split(":")[0] in ("CorruptFileError", "UnsupportedFormatError")


def test_unexpected_errors_are_one_line_without_their_details(fetal_set, renders, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise KeyError("internal detail /secret/path")

    monkeypatch.setattr(overlays, "render_view", broken)
    app = _app(fetal_set)
    assert not app.exception
    assert app.error[0].value == ("The page stopped on an unexpected KeyError; the details are in the server's "
                                  "terminal.")
    assert "secret" not in " ".join(e.value for e in app.error)
    assert "/secret/path" in capsys.readouterr().err  # for the operator, in the terminal


def test_class_names_that_are_not_utf8_are_a_message(served_copy, renders):
    (served_copy.parent / "planes.txt").write_bytes("Background\nCérébral\n".encode("latin-1"))
    app = _app(served_copy)
    assert not app.exception
    assert any(w.value.startswith("Frame labels not shown: ManifestError") and "not UTF-8" in w.value
               for w in app.warning)


def test_the_app_command_starts_safe_by_default(fetal_set, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    runs.mkdir()
    assert ultrassl_main(["app", str(fetal_set), "--runs", str(runs), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "serving on http://127.0.0.1:8501 (this machine only)" in out
    command = out.strip().splitlines()[-1].split()
    for option in ("--server.address=127.0.0.1", "--server.enableXsrfProtection=true",
                   "--browser.gatherUsageStats=false", "--client.showErrorDetails=none",
                   "--server.maxUploadSize=1024", "--server.headless=true"):
        assert option in command, option
    viewer_args = command[command.index("--") + 1:]
    assert viewer_args == ["--data", str(fetal_set.parent), "--manifest", str(fetal_set), "--runs", str(runs)]
    assert "--unmasked" not in command and "always hidden" in out


def test_serving_on_the_network_is_asked_for_and_says_what_it_exposes(fetal_set, capsys):
    assert app_main([str(fetal_set.parent), "--address", "192.0.2.7", "--unmasked", "--port", "9000",
                     "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--server.address=192.0.2.7" in out and "address 192.0.2.7, port 9000" in out
    assert "there is no login" in out and "--unmasked" in out
    assert app_main([str(fetal_set.parent), "--address", "::1", "--dry-run"]) == 0
    assert "(this machine only)" in capsys.readouterr().out
    assert app_main(["/no/such/folder", "--dry-run"]) == 2
    assert "no such folder or manifest" in capsys.readouterr().err


def test_a_real_ultrasound_dicom_uploaded_shows_frames_predictions_and_no_header_identity(models, renders):
    import pydicom
    from pydicom.data import get_testdata_file

    source = get_testdata_file("color3d_jpeg_baseline.dcm")
    header = pydicom.dcmread(source, stop_before_pixels=True)
    runs = models["plane_detection"].parent
    sys.argv[:] = [VIEWER, "--data", str(runs), "--runs", str(runs), "--plane-model", str(models["plane_detection"])]
    app = AppTest.from_file(VIEWER, default_timeout=180).run()
    app.sidebar.radio(key="source").set_value("Upload").run()
    app.sidebar.file_uploader(key="upload").upload("echo.dcm", Path(source).read_bytes(), "application/dicom")
    app.run()
    assert not app.exception, app.exception
    assert _metric(app, "Frames") == "120" and renders[-1]["frame"].shape == (480, 640, 3)
    assert any(i.captions[0].startswith("Predicted plane of every frame") for i in app.image)  # the timeline
    assert "Plane (model)" in [m.label for m in app.metric]
    # what the app shows, not the uploader's own value (the upload's random file ids, in which a
    # short header value such as PatientID "204" can occur by chance)
    elements = [*app.main, *app.sidebar]
    shown = [e for e in elements if getattr(e, "type", None) != "file_uploader"]
    assert len(shown) == len(elements) - 1  # the uploader, and only it
    page = " ".join(str(getattr(e, "value", "")) for e in shown)
    page += " ".join(c for i in app.image for c in i.captions)
    page += " ".join(str(j.value) for j in app.json)
    for value in (str(header.PatientName), str(header.PatientID), str(header.StudyDate),
                  str(header.StudyInstanceUID), str(header.get("InstitutionName") or "NONE-GIVEN")):
        assert value not in page, value
