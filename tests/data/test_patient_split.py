"""``ultrassl data split``: train / val / test by patient, stratified, reproducible, in the manifest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_tools.cli import main as data_main
from ultrassl.data.manifest import read_manifest, write_manifest
from ultrassl.data.patient_split import split_by_group
from ultrassl.errors import ManifestError


def _manifest(tmp_path, n_patients=30, clips=4, labelled=True, refused=2):
    rng = np.random.default_rng(0)
    rows = []
    for patient in range(n_patients):
        label = patient % 3  # a patient's clips share a label (one diagnosis per patient)
        for clip in range(clips):
            rows.append({"path": str(tmp_path / f"p{patient:02d}_{clip}.dcm"), "format": "dicom",
                         "n_frames": 10, "fps": 25.0, "height": 32, "width": 48, "channels": 1,
                         "spacing_row_mm": None, "spacing_col_mm": None, "has_audio": False, "status": "ok",
                         "error": "", "subject": f"P{patient:02d}", **({"label": label} if labelled else {})})
    for i in range(refused):
        rows.append({**rows[0], "path": str(tmp_path / f"bad{i}.dcm"), "status": "refused",
                     "error": "CorruptFileError: x", "subject": ""})
    rng.shuffle(rows)
    return write_manifest(pd.DataFrame(rows), tmp_path / "manifest.csv")


def test_no_patient_is_in_two_splits_and_labels_are_stratified(tmp_path, capsys):
    manifest = _manifest(tmp_path)
    assert data_main(["split", str(manifest), "--seed", "3"]) == 0
    table = read_manifest(manifest, status=None)
    ok = table[table["status"] == "ok"]
    assert (table.loc[table["status"] == "refused", "split"] == "").all()
    assert ok.groupby("subject")["split"].nunique().max() == 1  # never one patient in two splits
    shares = ok.groupby("split")["subject"].nunique() / ok["subject"].nunique()
    assert shares["train"] == pytest.approx(0.7, abs=0.12) and shares["test"] == pytest.approx(0.15, abs=0.08)
    for name in ("train", "val", "test"):  # every label in every split
        assert set(ok.loc[ok["split"] == name, "label"]) == {0, 1, 2}
    out = capsys.readouterr().out
    assert "stratified by 'label'" in out and "train" in out


def test_the_same_seed_gives_the_same_split_and_another_seed_another(tmp_path):
    table = read_manifest(_manifest(tmp_path, labelled=False), status="ok")
    first, _ = split_by_group(table, seed=1)
    again, _ = split_by_group(table, seed=1)
    other, _ = split_by_group(table, seed=2)
    assert first.equals(again) and not first.equals(other)
    by_patient = pd.DataFrame({"subject": table["subject"], "split": first}).groupby("subject")["split"].nunique()
    assert by_patient.max() == 1


def test_an_existing_split_is_kept_unless_overwritten_and_bad_input_is_one_line(tmp_path, capsys):
    manifest = _manifest(tmp_path)
    assert data_main(["split", str(manifest)]) == 0
    capsys.readouterr()
    assert data_main(["split", str(manifest)]) == 2
    assert "already has values in 'split'; --overwrite replaces them" in capsys.readouterr().err
    assert data_main(["split", str(manifest), "--overwrite", "--by", "study"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no 'study' column to split by" in err[0]
    table = read_manifest(manifest, status=None)
    table.loc[table.index[0], "subject"] = ""
    table.loc[table.index[0], "status"] = "ok"
    write_manifest(table, manifest)
    with pytest.raises(ManifestError, match="1 rows have no 'subject'"):
        split_by_group(read_manifest(manifest, status="ok"))
