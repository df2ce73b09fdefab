"""``ultrassl data deid``: keyed, reproducible header de-identification and pixel cleaning."""

from __future__ import annotations

import csv

import numpy as np
import pydicom
import pytest

from data_tools.cli import main as data_main
from data_tools.deid import deidentify
from tests.media import truncate_file
from ultrassl.io import probe_clip, read_clip
from ultrassl.synth import synthesize_fetal_sweeps


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """Three simulated DICOM sweeps, two of one patient, with invented identities in header and pixels."""
    root = tmp_path_factory.mktemp("export")
    synthesize_fetal_sweeps(root, n_sweeps=3, n_frames=6, size=(64, 80), workers=1, formats=("dicom",),
                            sweeps_per_subject=2)
    return sorted((root / "sweeps").glob("*.dcm"))


def test_headers_lose_identity_and_pixels_outside_the_regions_are_zeroed(export, tmp_path):
    results = deidentify([str(p) for p in export], tmp_path / "out", "secret")
    assert all(r.output and not r.quarantined for r in results)
    for result in results:
        before, after = pydicom.dcmread(result.source), pydicom.dcmread(result.output)
        written = open(result.output, "rb").read()
        for value in (before.PatientName, before.PatientID, before.StudyDate, before.StudyInstanceUID,
                      before.SOPInstanceUID, before.get("InstitutionName"), before.get("PatientBirthDate")):
            if value:
                assert str(value).encode() not in written, value
        assert after.PatientIdentityRemoved == "YES" and after.BurnedInAnnotation == "NO"
        assert [c.CodeValue for c in after.DeidentificationMethodCodeSequence] == ["113100", "113107"]
        assert not any(element.tag.is_private for element in after)
        region = before.SequenceOfUltrasoundRegions[0]
        keep = np.zeros((before.Rows, before.Columns), bool)
        keep[region.RegionLocationMinY0: region.RegionLocationMaxY1 + 1,
             region.RegionLocationMinX0: region.RegionLocationMaxX1 + 1] = True
        pixels = after.pixel_array
        assert pixels[:, ~keep].max() == 0 and (before.pixel_array[:, ~keep] > 100).sum() > 0
        np.testing.assert_array_equal(pixels[:, keep], before.pixel_array[:, keep])
        # the output reads in the data layer
        assert probe_clip(result.output).n_frames == 6 and read_clip(result.output, [0]).frames.shape[0] == 1
    # one patient's two studies: one pseudonym, one date shift (longitudinal order kept)
    first, second = (pydicom.dcmread(r.output) for r in results[:2])
    originals = [pydicom.dcmread(r.source) for r in results[:2]]
    assert originals[0].PatientID == originals[1].PatientID and first.PatientID == second.PatientID
    assert first.StudyInstanceUID != second.StudyInstanceUID
    shift = lambda a, b: (np.datetime64(f"{a[:4]}-{a[4:6]}-{a[6:]}") - np.datetime64(f"{b[:4]}-{b[4:6]}-{b[6:]}"))  # noqa: E731
    assert shift(first.StudyDate, originals[0].StudyDate) == shift(second.StudyDate, originals[1].StudyDate)
    third, third_original = pydicom.dcmread(results[2].output), pydicom.dcmread(results[2].source)
    assert (third.PatientID == first.PatientID) == (third_original.PatientID == originals[0].PatientID)


def test_the_same_key_gives_the_same_output_another_key_another(export, tmp_path):
    one = deidentify([str(export[0])], tmp_path / "a", "key-one")[0]
    again = deidentify([str(export[0])], tmp_path / "b", "key-one")[0]
    other = deidentify([str(export[0])], tmp_path / "c", "key-two")[0]
    name = lambda r, root: r.output.replace(str(tmp_path / root), "")  # noqa: E731
    assert name(one, "a") == name(again, "b") and name(one, "a") != name(other, "c")
    rerun = deidentify([str(export[0])], tmp_path / "a", "key-one")[0]
    assert rerun.skipped and rerun.output == one.output  # a rerun resumes


def test_damaged_files_are_quarantined_with_the_reason_and_the_map_only_when_asked(export, tmp_path, capsys,
                                                                                    monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in export[:2]:
        (folder / path.name).write_bytes(path.read_bytes())
    truncate_file(export[2], folder / "damaged.dcm", 0.6)
    key = tmp_path / "key.txt"
    key.write_text("secret\n")
    out = tmp_path / "out"
    code = data_main(["deid", str(folder), str(out), "--key-file", str(key), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 1 and "de-identified 2 files" in printed and "quarantined 1 files" in printed
    with open(tmp_path / "out_quarantine" / "reasons.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["source"] for r in rows] == [str(folder / "damaged.dcm")] and rows[0]["reason"]
    assert len(list(out.rglob("*.dcm"))) == 2 and not list(out.rglob("*.csv"))  # no map unless asked
    assert not list(tmp_path.glob("*map*"))
    mapping = tmp_path / "private" / "pseudonyms.csv"
    assert data_main(["deid", str(folder), str(out), "--key-file", str(key), "--quiet", "--map", str(mapping)]) == 1
    with open(mapping, newline="") as handle:
        pairs = list(csv.DictReader(handle))
    assert [p["original_patient_id"] for p in pairs] == [str(pydicom.dcmread(export[0]).PatientID)]
    monkeypatch.delenv("ULTRASSL_DEID_KEY", raising=False)
    assert data_main(["deid", str(folder), str(out), "--quiet"]) == 2
    assert "--key-file" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["color3d_jpeg_baseline.dcm", "US1_J2KR.dcm"])
def test_real_ultrasound_files_of_pydicom_are_deidentified_and_still_read(name, tmp_path):
    from pydicom.data import get_testdata_file

    source = get_testdata_file(name)
    result = deidentify([source], tmp_path / "out", "secret")[0]
    assert result.output, result.reason
    before, after = pydicom.dcmread(source), pydicom.dcmread(result.output)
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                    "InstitutionName", "ReferringPhysicianName", "AccessionNumber", "StudyID"):
        value = before.get(keyword)
        if value not in (None, ""):
            assert after.get(keyword) != value, keyword
    for keyword in ("StudyDate", "SeriesDate", "ContentDate"):
        if before.get(keyword):
            assert after.get(keyword) != before.get(keyword), keyword
    # every attribute of the profile's table that the real file holds, one by one
    from data_tools.deid_profile import action_of

    listed = [e for e in before if action_of(e.tag) is not None and e.tag != pydicom.tag.Tag("DeidentificationMethod")]
    assert listed
    for element in listed:
        if element.tag in after and after[element.tag].value not in (None, "", b"", []):
            assert after[element.tag].VR == "SQ" or str(after[element.tag].value) != str(element.value), element.keyword
            if action_of(element.tag).startswith("X"):
                assert element.VR in ("DA", "DT", "TM"), element.keyword  # only shifted dates stay
    assert after.PatientIdentityRemoved == "YES" and after.BurnedInAnnotation == "NO"
    info = probe_clip(result.output)
    assert info.n_frames == int(before.get("NumberOfFrames") or 1)
    frame = read_clip(result.output, [0]).frames[0]
    assert frame.shape[:2] == (before.Rows, before.Columns) and frame.max() > 0


#: a value of each representation, recognisable after de-identification
_PLANTED = {"PN": "DOE^JOHN", "DA": "19700102", "TM": "101010", "DT": "19700102101010", "AS": "045Y", "IS": "7",
            "DS": "1.5", "US": 7, "SS": 7, "UL": 7, "SL": 7, "SV": 7, "UV": 7, "FL": 1.5, "FD": 1.5, "AT": 0x00100010,
            "OB": b"PHIBYTES", "OW": b"PHIBYTES", "UN": b"PHIBYTES", "OD": b"PHIBYTES", "OF": b"PHIBYTES",
            "OL": b"PHIBYTES", "OV": b"PHIBYTES", "CS": "PHI", "AE": "PHIAE"}


def _planted_value(vr: str, number: int):
    if vr == "UI":
        return f"1.2.826.0.1.3680043.99.{number}"
    return _PLANTED.get(vr, f"PHI-VALUE-{number}")


def test_every_attribute_of_the_profile_table_loses_its_value(export, tmp_path):
    """Every attribute of PS3.15 Table E.1-1 (dicom-anonymizer's transcription, the table the
    command enforces) is planted in a real export file with an identifying value, nested
    sequences included; after de-identification none keeps it: X attributes are gone, Z ones
    empty or replaced, D and U ones replaced; dates keep their intervals."""
    from pydicom.datadict import dictionary_has_tag, dictionary_VR, keyword_for_tag
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.tag import Tag

    from data_tools.deid_profile import action_of, profile_table

    _, exact, masked = profile_table()
    tags = [Tag(t) for t in exact] + [Tag(g, e or 0x3000) for g, e, _, _, _ in masked]
    ds = pydicom.dcmread(export[0])
    planted = {}
    for tag in tags:
        if tag.group in (0x0000, 0x0002) or not dictionary_has_tag(tag):
            continue  # command and file-meta elements cannot sit in a file's dataset
        if tag in ds:
            planted[tag] = ds[tag].value if ds[tag].VR != "SQ" else None
            continue
        vr = dictionary_VR(tag).split(" or ")[0]
        if vr == "SQ":
            item = Dataset()
            item.PatientName, item.TextValue = "DOE^JOHN", "PHI-IN-A-SEQUENCE"
            ds.add_new(tag, "SQ", Sequence([item]))
            planted[tag] = None
        else:
            ds.add_new(tag, vr, _planted_value(vr, len(planted)))
            planted[tag] = ds[tag].value
    ds.AcquisitionDate, ds.StudyDate = "19700110", "19700102"  # an X and a Z date of the table
    source = tmp_path / "planted.dcm"
    ds.save_as(source, enforce_file_format=True)
    assert len(planted) > 550

    result = deidentify([str(source)], tmp_path / "out", "secret")[0]
    assert result.output, result.reason
    after = pydicom.dcmread(result.output)
    kept = []
    for tag, value in planted.items():
        action = action_of(tag)
        name = keyword_for_tag(tag) or str(tag)
        if action.startswith("X") and dictionary_VR(tag) not in ("DA", "DT", "TM"):
            if tag in after and not (tag == Tag("DeidentificationMethod")):
                kept.append((name, action, "present"))
            continue
        if tag not in after:
            continue
        element = after[tag]
        if element.VR == "SQ":
            if any(item.get("PatientName") == "DOE^JOHN" or "TextValue" in item for item in element.value):
                kept.append((name, action, "sequence item kept"))
        elif element.value not in (None, "", b"") and str(element.value) == str(value):
            kept.append((name, action, element.value))
    assert not kept, f"{len(kept)} attributes keep their values: {kept[:10]}"
    days = lambda d: np.datetime64(f"{d[:4]}-{d[4:6]}-{d[6:]}")  # noqa: E731
    assert days(after.AcquisitionDate) - days(after.StudyDate) == np.timedelta64(8, "D")
    assert after.StudyDate != "19700102"


def test_each_patient_has_their_own_date_shift_and_a_study_keeps_its_uid_across_runs(export, tmp_path):
    sources = []
    for number, patient in enumerate(("PATIENT-A", "PATIENT-B", "PATIENT-A")):
        ds = pydicom.dcmread(export[0])
        ds.PatientID, ds.StudyDate, ds.StudyInstanceUID = patient, "20200101", f"1.2.826.0.1.3680043.99.7.{number}"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.99.8.{number}"
        ds.save_as(tmp_path / f"{number}.dcm", enforce_file_format=True)
        sources.append(str(tmp_path / f"{number}.dcm"))
    results = deidentify(sources, tmp_path / "out", "secret")
    dates = [pydicom.dcmread(r.output).StudyDate for r in results]
    assert dates[0] == dates[2] and dates[0] != dates[1]
    # another file of patient A's first study, de-identified in a later run: the same study UID
    ds = pydicom.dcmread(sources[0])
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.99.8.9"
    ds.save_as(tmp_path / "later.dcm", enforce_file_format=True)
    later = pydicom.dcmread(deidentify([str(tmp_path / "later.dcm")], tmp_path / "out", "secret")[0].output)
    first = pydicom.dcmread(results[0].output)
    assert later.StudyInstanceUID == first.StudyInstanceUID and later.SOPInstanceUID != first.SOPInstanceUID
    assert later.PatientID == first.PatientID and later.StudyDate == first.StudyDate
