"""Parsing of the official UCF101 and HMDB51 split files (fake trees in the official formats)."""

from __future__ import annotations

import pytest

from ultrassl.data.splits import clip_key, hmdb51_annotations, ucf101_annotations
from ultrassl.errors import ManifestError

UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "HandstandPushups"]


def write_ucf101_splits(split_dir, train, test, classes=UCF_CLASSES, fold=1):
    """classInd.txt, trainlist0N.txt and testlist0N.txt as distributed (CRLF line ends)."""
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / "classInd.txt").write_bytes(
        "".join(f"{i} {name}\r\n" for i, name in enumerate(classes, start=1)).encode()
    )
    index = {name: i for i, name in enumerate(classes, start=1)}
    (split_dir / f"trainlist{fold:02d}.txt").write_bytes(
        "".join(f"{video} {index[video.split('/')[0]]}\r\n" for video in train).encode()
    )
    (split_dir / f"testlist{fold:02d}.txt").write_bytes("".join(f"{video}\r\n" for video in test).encode())


def write_hmdb51_splits(split_dir, assignments, fold=1):
    """``<class>_test_split<N>.txt`` files: ``{class: [(video, id), ...]}``, ids 0/1/2."""
    split_dir.mkdir(parents=True, exist_ok=True)
    for class_name, videos in assignments.items():
        text = "".join(f"{video} {split_id} \n" for video, split_id in videos)  # trailing space as shipped
        (split_dir / f"{class_name}_test_split{fold}.txt").write_text(text)


UCF_TRAIN = [
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
    "Basketball/v_Basketball_g08_c02.avi",
    "HandstandPushups/v_HandStandPushups_g08_c01.avi",
]
UCF_TEST = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "HandstandPushups/v_HandStandPushups_g01_c01.avi"]


def test_ucf101_labels_are_classind_minus_one(tmp_path):
    write_ucf101_splits(tmp_path, UCF_TRAIN, UCF_TEST)
    table = ucf101_annotations(tmp_path, fold=1)
    assert list(table.columns) == ["path", "label", "class_name", "split", "group"]
    assert table.set_index("path")["group"].to_dict() == {
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi": 1, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi": 8,
        "Basketball/v_Basketball_g08_c02.avi": 8, "HandstandPushups/v_HandStandPushups_g01_c01.avi": 1,
        "HandstandPushups/v_HandStandPushups_g08_c01.avi": 8,
    }
    rows = {r.path: (r.label, r.class_name, r.split) for r in table.itertuples()}
    assert rows == {
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi": (0, "ApplyEyeMakeup", "train"),
        "Basketball/v_Basketball_g08_c02.avi": (1, "Basketball", "train"),
        "HandstandPushups/v_HandStandPushups_g08_c01.avi": (2, "HandstandPushups", "train"),
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi": (0, "ApplyEyeMakeup", "test"),
        "HandstandPushups/v_HandStandPushups_g01_c01.avi": (2, "HandstandPushups", "test"),
    }
    assert table["label"].dtype == "int64"


def test_ucf101_other_folds_and_missing_files(tmp_path):
    write_ucf101_splits(tmp_path, UCF_TRAIN[:1], UCF_TEST[:1], fold=2)
    assert ucf101_annotations(tmp_path, fold=2)["split"].tolist() == ["test", "train"]
    with pytest.raises(ManifestError, match="trainlist01.txt: no such split file"):
        ucf101_annotations(tmp_path, fold=1)
    with pytest.raises(ManifestError, match="fold must be 1, 2 or 3"):
        ucf101_annotations(tmp_path, fold=4)


@pytest.mark.parametrize(
    "train, test, message",
    [
        (["Basketball/v_Basketball_g08_c02.avi 1"], [], "label 1 disagrees with classInd's id 2"),
        (["Skiing/v_Skiing_g01_c01.avi 1"], [], "'Skiing' of 'Skiing/v_Skiing_g01_c01.avi' is not in classInd"),
        ([], ["Basketball/v_Basketball_g01_c01.avi 2"], "expected '<Class>/<video>.avi'"),
        (["Basketball/v_Basketball_g01_c01.avi 2"], ["Basketball/v_Basketball_g01_c01.avi"], "listed twice"),
    ],
)
def test_ucf101_inconsistent_lists_are_refused_with_the_line(tmp_path, train, test, message):
    write_ucf101_splits(tmp_path, [], [])
    (tmp_path / "trainlist01.txt").write_text("".join(f"{line}\n" for line in train))
    (tmp_path / "testlist01.txt").write_text("".join(f"{line}\n" for line in test))
    with pytest.raises(ManifestError, match="line 1") as caught:
        ucf101_annotations(tmp_path)
    assert message in str(caught.value)


def test_ucf101_bad_class_index(tmp_path):
    write_ucf101_splits(tmp_path, [], [])
    (tmp_path / "classInd.txt").write_text("1 A\n3 B\n")
    with pytest.raises(ManifestError, match="not 1..N without gaps"):
        ucf101_annotations(tmp_path)


def test_hmdb51_ids_classes_and_labels(tmp_path):
    write_hmdb51_splits(
        tmp_path,
        {
            "ride_bike": [("Bike_ride_1_ride_bike_f_cm_np1_ba_med_0.avi", 1), ("bikes_ride_bike_u_cm_np1_fr_goo_1.avi", 2)],
            "brush_hair": [("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 1), ("#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi", 0)],
            "clap": [("clap_hands_clap_u_cm_np1_fr_med_0.avi", 2)],
        },
    )
    (tmp_path / "clap_test_split2.txt").write_text("other_fold.avi 1\n")  # another fold: ignored
    table = hmdb51_annotations(tmp_path, fold=1)
    rows = {r.path: (r.label, r.class_name, r.split) for r in table.itertuples()}
    # Labels follow the sorted class names: brush_hair 0, clap 1, ride_bike 2.
    assert rows == {
        "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi": (0, "brush_hair", "train"),
        "brush_hair/#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi": (0, "brush_hair", "unused"),
        "clap/clap_hands_clap_u_cm_np1_fr_med_0.avi": (1, "clap", "test"),
        "ride_bike/Bike_ride_1_ride_bike_f_cm_np1_ba_med_0.avi": (2, "ride_bike", "train"),
        "ride_bike/bikes_ride_bike_u_cm_np1_fr_goo_1.avi": (2, "ride_bike", "test"),
    }


def test_hmdb51_bad_files(tmp_path):
    with pytest.raises(ManifestError, match="no '<class>_test_split1.txt' files"):
        hmdb51_annotations(tmp_path)
    (tmp_path / "clap_test_split1.txt").write_text("a.avi 1\nb.avi 7\n")
    with pytest.raises(ManifestError, match=r"clap_test_split1.txt: line 2: expected '<video>.avi <0\|1\|2>'"):
        hmdb51_annotations(tmp_path)


def test_clip_key_matches_videos_and_frame_folders():
    assert clip_key("root/videos/Basketball/v_Basketball_g01_c01.avi") == ("basketball", "v_basketball_g01_c01")
    assert clip_key("/frames/Basketball/v_Basketball_g01_c01") == ("basketball", "v_basketball_g01_c01")
    assert clip_key("HandstandPushups/v_HandStandPushups_g01_c01.mp4") == clip_key(
        "handstandpushups/v_HandstandPushups_g01_c01.avi"
    )
    # Only known video suffixes are stripped: dots inside names stay.
    assert clip_key("a/clip.v2.avi") == ("a", "clip.v2")
