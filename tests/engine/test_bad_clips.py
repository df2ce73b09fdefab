"""A fit over a manifest that lists damaged files as ok: each failed read is replaced by another
clip and recorded, reproducibly, up to the policy's limit; ``raise`` stops at once."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd
import pytest

from ultrassl.cli import main as ultrassl_main
from ultrassl.data.bad_clips import READ_FAILURES_KEY, BadClipPolicy, parse_failures
from ultrassl.data.datamodule import ManifestDataModule
from ultrassl.errors import CorruptFileError
from ultrassl.pipelines.order_geometry import OrderGeometryPipeline
from tests.data.clip_files import dicom_broken_jpeg_fragment, dicom_jpeg_frames, mp4_truncated, write_dicom
from tests.engine.test_cli_fit import small_run


#: the error each damaged or hostile file of :func:`damaged_manifest` is replaced for
EXPECTED_ERRORS = {
    "broken.dcm": "CorruptFileError", "truncated.mp4": "CorruptFileError", "short.dcm": "ClipTooShortError",
    "bomb.dcm": "ResourceLimitError", "understated.dcm": "ResourceLimitError", "fifo.dcm": "FileAccessError",
    "zero.dcm": "FileAccessError",
}


@pytest.fixture(scope="module")
def damaged_manifest(fetal_manifest, tmp_path_factory) -> tuple[Path, set[str]]:
    """The fetal manifest plus training rows, status ok, whose clips cannot or must not be
    read: a broken JPEG DICOM, a truncated mp4, a DICOM of 3 frames (too short for 4-frame
    clips), a decompression bomb (JPEG frames of 5000 x 5000 pixels, a few kB on disk), a
    DICOM whose header says 32 x 48 while its codestreams decode to 5000 x 5000, a FIFO (which
    would block a reader forever) and a link to /dev/zero (which would read forever)."""
    folder = tmp_path_factory.mktemp("damaged")
    makers = {
        "broken.dcm": lambda p: dicom_broken_jpeg_fragment(p, n_frames=24),
        "truncated.mp4": mp4_truncated,
        "short.dcm": lambda p: write_dicom(p, n_frames=3),
        "bomb.dcm": lambda p: dicom_jpeg_frames(p, (5000, 5000), n_frames=8),
        "understated.dcm": lambda p: dicom_jpeg_frames(p, (5000, 5000), header_size=(32, 48), n_frames=8),
    }
    rows = []
    for name, make in makers.items():
        rows.append({**make(folder / name), "path": str(folder / name), "split": "train", "subject": f"BAD_{name}"})
    os.mkfifo(folder / "fifo.dcm")
    (folder / "zero.dcm").symlink_to("/dev/zero")
    for name in ("fifo.dcm", "zero.dcm"):
        rows.append({**write_dicom(folder / "facts.dcm", n_frames=24), "path": str(folder / name), "split": "train",
                     "subject": f"BAD_{name}"})
    table = pd.read_csv(fetal_manifest)
    table["path"] = [str((Path(fetal_manifest).parent / p).resolve()) for p in table["path"]]
    for column in ("frame_labels", "fixations"):
        if column in table.columns:
            table[column] = [str((Path(fetal_manifest).parent / p).resolve()) if isinstance(p, str) and p else p
                             for p in table[column]]
    manifest = folder / "manifest.csv"
    # the good training sweeps listed five times, so that the bad rows are a quarter of the
    # data set and a replacement draw rarely meets another bad one
    training = table[table["split"] == "train"]
    pd.concat([table, *[training] * 4, pd.DataFrame(rows)], ignore_index=True).to_csv(manifest, index=False)
    return manifest, {str(folder / name) for name in EXPECTED_ERRORS}


def _items(manifest: Path, policy) -> object:
    pipeline = OrderGeometryPipeline(modality="ultrasound", in_channels=1, size=(32, 32), num_frames=4, spacing=2)
    module = ManifestDataModule(manifest, pipeline, seed=3, bad_clips=policy)
    module.setup("fit")
    return module.train_set


def test_a_failed_read_is_replaced_by_a_seeded_draw_and_carried_with_the_sample(damaged_manifest):
    manifest, broken = damaged_manifest
    items = _items(manifest, None)
    rows = items.dataset.manifest["path"].tolist()
    bad = [i for i, p in enumerate(rows) if p in broken]
    assert len(bad) == len(EXPECTED_ERRORS)
    for index in bad:
        sample = items[(1, index)]
        failures = parse_failures(sample[READ_FAILURES_KEY])
        expected = EXPECTED_ERRORS[Path(rows[index]).name]
        assert failures[0][0] == rows[index] and failures[0][1].startswith(expected + ":"), failures
        again = _items(manifest, None)[(1, index)]
        assert (again["order_clip"] == sample["order_clip"]).all()  # the same replacement
    good = next(i for i in range(len(rows)) if i not in bad)
    assert items[(1, good)][READ_FAILURES_KEY] == ""


def test_the_raise_policy_stops_at_the_first_failed_read(damaged_manifest):
    manifest, broken = damaged_manifest
    items = _items(manifest, "raise")
    index = items.dataset.manifest["path"].tolist().index(next(p for p in broken if p.endswith("broken.dcm")))
    with pytest.raises(CorruptFileError):
        items[(0, index)]


def test_a_fit_over_damaged_files_finishes_and_lists_exactly_them(damaged_manifest, tmp_path, capsys):
    manifest, broken = damaged_manifest
    code = ultrassl_main(small_run(manifest, tmp_path / "run", "--trainer.max_epochs=1",
                                   "--data.init_args.bad_clips={max_bad_clips: 1000}"))
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err[-2000:]
    listed = next((tmp_path / "run").rglob("bad_clips.csv"))
    with open(listed, newline="") as handle:
        records = list(csv.DictReader(handle))
    assert {r["path"] for r in records} == broken
    assert {r["stage"] for r in records} == {"train"}
    assert {Path(r["path"]).name: r["error"].split(":")[0] for r in records} == EXPECTED_ERRORS
    assert f"clip reads failed ({len(EXPECTED_ERRORS)} files) and were replaced by other clips: listed in {listed}" in out


@pytest.mark.parametrize("setting, message", [
    ("--data.init_args.bad_clips=raise", "damaged"),
    ("--data.init_args.bad_clips={max_bad_clips: 1}", "more than the limit of 1"),
])
def test_past_the_limit_or_when_strict_the_fit_stops_with_one_line(damaged_manifest, tmp_path, capsys, setting,
                                                                   message):
    manifest, _ = damaged_manifest
    code = ultrassl_main(small_run(manifest, tmp_path / "run", "--trainer.max_epochs=3", setting))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_policy_values_are_checked():
    assert BadClipPolicy.from_config("raise").on_error == "raise"
    assert BadClipPolicy(max_bad_clips=0.1).limit(200) == 20 and BadClipPolicy(max_bad_clips=3).limit(200) == 3
    with pytest.raises(ValueError, match="unknown keys"):
        BadClipPolicy.from_config({"max_bad": 3})
    with pytest.raises(ValueError, match="must be whole"):
        BadClipPolicy(max_bad_clips=2.5)


def test_the_records_travel_in_the_checkpoint_so_a_resumed_run_keeps_counting(damaged_manifest, tmp_path):
    import torch

    from ultrassl.engine.bad_clips import BadClipMonitor

    manifest, broken = damaged_manifest
    assert ultrassl_main(small_run(manifest, tmp_path / "run", "--trainer.max_epochs=1",
                                   "--data.init_args.bad_clips={max_bad_clips: 1000}")) == 0
    last = next((tmp_path / "run").rglob("last.ckpt"))
    state = torch.load(last, map_location="cpu", weights_only=True)["callbacks"]
    saved = next(v for k, v in state.items() if k.startswith("BadClipMonitor"))
    resumed = BadClipMonitor()
    resumed.load_state_dict(saved)
    assert {r["path"] for r in resumed.records} == broken
