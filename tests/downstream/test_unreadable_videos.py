"""Transfer over data where some videos cannot be read: held-out ones are left out of the
scores and listed, training ones are replaced in the probe's sweeps and recorded, and the
strict policy stops at once."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from ultrassl.data.bad_clips import BadClipLimitError, BadClipPolicy
from ultrassl.downstream.evaluate import evaluate_checkpoint
from ultrassl.downstream.scoring import ScoredVideos
from ultrassl.errors import CorruptFileError
from tests.data.clip_files import dicom_broken_jpeg_fragment, mp4_truncated
from tests.downstream.test_evaluate import tiny_config


@pytest.fixture(scope="module")
def manifest_with_damage(fetal_manifest_two_held_out, tmp_path_factory) -> tuple[Path, str, str]:
    """The six-sweep manifest plus a held-out and a training row, status ok, that cannot be read."""
    folder = tmp_path_factory.mktemp("damaged_transfer")
    held_out, training = folder / "held_out_broken.dcm", folder / "training_truncated.mp4"
    rows = [{**dicom_broken_jpeg_fragment(held_out, n_frames=16), "path": str(held_out), "split": "val",
             "subject": "BAD_held_out"},
            {**mp4_truncated(training), "path": str(training), "split": "train", "subject": "BAD_training"}]
    table = pd.read_csv(fetal_manifest_two_held_out, dtype=str, keep_default_na=False)
    base = Path(fetal_manifest_two_held_out).parent
    for column in ("path", "frame_labels", "fixations"):
        if column in table.columns:
            table[column] = [str((base / p).resolve()) if p else p for p in table[column]]
    manifest = folder / "manifest.csv"
    pd.concat([table, pd.DataFrame(rows).astype(str)], ignore_index=True).to_csv(manifest, index=False)
    return manifest, str(held_out), str(training)


def _evaluate(checkpoint, manifest, out, bad_clips):
    config = tiny_config("plane_detection")
    config["data"]["init_args"]["bad_clips"] = bad_clips
    return evaluate_checkpoint(checkpoint, out, tasks=["plane_detection"], configs={"plane_detection": config},
                               manifest=manifest, protocols={"plane_detection": ["linear"]}, max_steps=2,
                               batch_size=4, log=None)


def test_scores_leave_out_unreadable_videos_and_say_which(checkpoint_factory, manifest_with_damage, tmp_path):
    manifest, held_out, training = manifest_with_damage
    _evaluate(checkpoint_factory("order_geometry", "tiny3d"), manifest, tmp_path, {"max_bad_clips": 20})
    entry = json.loads((tmp_path / "results.json").read_text())["tasks"]["plane_detection"]
    assert entry["budget"]["held_out_videos"] == 3  # listed: the two readable ones and the broken one
    # every frame of the two readable held-out loops is scored, none of the broken one
    for init in ("pretrained", "random_init"):
        scored = entry["details"]["linear"][init]
        assert sum(map(sum, scored["report"]["confusion"])) == 2 * 16
        assert [v["path"] for v in scored["left_out"]] == [held_out]
        assert scored["left_out"][0]["error"].startswith("CorruptFileError")
    assert {(v["path"], v["split"]) for v in entry["left_out"]} == {(held_out, "held-out"), (training, "training")}
    # the probe's training sweeps replaced the truncated mp4 and recorded it, in the arm's folder too
    for init in ("pretrained", "random_init"):
        replaced = entry["training"][f"linear/{init}"]["replaced_clips"]
        assert {r["path"] for r in replaced} == {training} and {r["stage"] for r in replaced} == {"probe"}
        with open(tmp_path / "plane_detection" / f"linear_{init}" / "bad_clips.csv", newline="") as handle:
            assert {r["path"] for r in csv.DictReader(handle)} == {training}
    markdown = (tmp_path / "results.md").read_text()
    assert "Left out of scoring, unreadable (2)" in markdown and f"`{held_out}` (held-out)" in markdown
    assert "Training replaced clips that failed to read" in markdown


def test_the_strict_policy_stops_at_the_first_unreadable_video(checkpoint_factory, manifest_with_damage, tmp_path):
    manifest, _, _ = manifest_with_damage
    with pytest.raises(CorruptFileError):
        _evaluate(checkpoint_factory("order_geometry", "tiny3d"), manifest, tmp_path, "raise")


def test_more_unreadable_held_out_videos_than_the_limit_stop_the_scoring():
    class Broken:
        def __len__(self):
            return 4

        def __getitem__(self, index):
            if index < 2:
                raise CorruptFileError("cannot decode frame 3", f"/data/broken_{index}.dcm")
            return {"index": index}

    videos = ScoredVideos(Broken(), BadClipPolicy(max_bad_clips=2))
    assert [item["index"] for item in videos] == [2, 3] and len(videos.left_out) == 2
    with pytest.raises(BadClipLimitError, match="2 of 4 held-out videos failed to read, more than the limit of 1"):
        list(ScoredVideos(Broken(), BadClipPolicy(max_bad_clips=1)))
