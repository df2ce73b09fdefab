"""Action recognition on an HMDB51-layout data set, from its official-format split files to
the results table (the embedded motion clips, relabelled into HMDB51's per-class lists)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ultrassl.data.indexing import index_folder
from tests.downstream.test_evaluate import tiny_config
from ultrassl.data.manifest import read_manifest, write_manifest
from ultrassl.data.splits import hmdb51_annotations
from ultrassl.downstream.evaluate import evaluate_checkpoint
from ultrassl.synth import synthesize_motion


@pytest.fixture(scope="module")
def hmdb51_manifest(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Motion clips with HMDB51 split files for fold 1: per class, one clip unused (id 0),
    one test (id 2), the rest train (id 1); videos named ``.avi`` as HMDB51 lists them,
    stored as ``.mp4``."""
    root = tmp_path_factory.mktemp("hmdb51")
    table = synthesize_motion(root, n_per_class=4, n_frames=12, size=(32, 32), clips_per_group=1)
    split_dir = root / "testTrainMulti_7030_splits"
    split_dir.mkdir()
    expected = {}
    for class_name, rows in table.groupby("class_name"):
        lines = []
        for k, path in enumerate(sorted(rows.path)):
            split_id = {0: 0, 1: 2}.get(k, 1)
            stem = Path(path).stem
            lines.append(f"{stem}.avi {split_id} \n")  # trailing space, as the official files
            expected[stem] = {0: "unused", 1: "train", 2: "test"}[split_id]
        (split_dir / f"{class_name}_test_split1.txt").write_text("".join(lines))
    manifest = index_folder(root / "videos", annotations=hmdb51_annotations(split_dir, 1), match="stem",
                            progress=False)
    return write_manifest(manifest, root / "manifest.csv"), expected


def test_split_files_assign_every_video_and_classes_follow_sorted_names(hmdb51_manifest):
    manifest, expected = hmdb51_manifest
    table = read_manifest(manifest, status="ok")
    assert {Path(p).stem: s for p, s in zip(table.path, table.split)} == expected
    names = sorted(set(table.class_name))
    assert all(label == names.index(name) for label, name in zip(table.label, table.class_name))


def test_action_recognition_trains_on_train_and_scores_the_test_list(checkpoint_factory, hmdb51_manifest, tmp_path):
    manifest, expected = hmdb51_manifest
    config = tiny_config("action_recognition", size=(24, 24))
    results = evaluate_checkpoint(checkpoint_factory("cvrl", "tiny3d"), tmp_path, tasks=["action_recognition"],
                                  configs={"action_recognition": config}, manifest=manifest, max_steps=2,
                                  batch_size=4, protocols={"action_recognition": ["linear", "finetune"]}, log=None)
    entry = results["tasks"]["action_recognition"]
    n_test = sum(s == "test" for s in expected.values())
    n_train = sum(s == "train" for s in expected.values())
    # unused videos (id 0) neither train nor score
    assert entry["budget"]["held_out_videos"] == n_test and entry["budget"]["train_videos"] == n_train
    report = entry["details"]["finetune"]["pretrained"]["report"]
    assert sum(map(sum, report["confusion"])) == n_test
    assert report["class_names"] == sorted(report["class_names"])
    rows = {(r["protocol"], r["metric"]) for r in entry["rows"]}
    assert {("linear", "accuracy"), ("finetune", "accuracy"), ("knn", "recall@1")} <= rows
