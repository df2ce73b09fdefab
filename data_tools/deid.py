"""``ultrassl data deid``: de-identify DICOM ultrasound exports, header and pixels.

Header: dicognito, chosen over pydicom's deid recipes because it replaces identifying values
as a library call rather than a recipe to maintain, and because its ``seed`` makes every
replacement keyed and reproducible. The seed is per patient (:func:`patient_seed`, an HMAC of
the patient ID under the user's key), so the same key maps a patient to the same pseudonym,
the same UIDs and the same date shift in every run and across studies, and each patient has
their own shift (the Retain Longitudinal Temporal Information with Modified Dates option).
dicognito covers names, IDs, UIDs, dates and addresses, not the profile's whole table:
:mod:`data_tools.deid_profile` then applies PS3.15 Table E.1-1's action to every other listed
attribute (descriptions, comments, serial numbers, overlays ...). On top: private tags
removed, Patient Identity Removed = YES, and the De-identification Method Code Sequence
naming the profile (DCM 113100) and the option (DCM 113107).

Pixels: scanners burn the patient's name and dates into the image outside the scan area. Only
the Sequence of Ultrasound Regions is kept (or, where a file has no regions, the scan sector
detected over the loop as training detects it), everything else is set to 0, the pixel data
is written uncompressed, and Burned In Annotation = NO. A file that cannot be cleaned safely
(no pixel data, no region and no sector found, a decoding error) is copied to the quarantine
folder with its reason, never to the output.

Outputs are named by their new identifiers (``<patient>/<study UID>/<instance UID>.dcm``),
never by the source names, which may carry the patient's; a rerun skips what is already
written, so a killed run resumes. The pseudonym map (original -> new patient ID) is written
only to a file the user names.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import hmac
import io
import logging
import os
import shutil
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_tools import deid_profile
from ultrassl.atomic import atomic_write, write_text_atomically

#: DICOM codes of the de-identification performed (PS3.16 CID 7050)
PROFILE_CODES = (("113100", "Basic Application Confidentiality Profile"),
                 ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
#: share of the frame a detected scan sector must cover to be trusted for cleaning
SECTOR_SHARE = (0.05, 0.97)


class CannotCleanError(Exception):
    """The file cannot be de-identified safely; it goes to quarantine with this reason."""


@dataclass(frozen=True)
class DeidResult:
    """One file: where it went (``output`` or ``quarantined``), and why when quarantined."""

    source: str
    output: str | None = None
    quarantined: str | None = None
    reason: str = ""
    skipped: bool = False


def patient_seed(key: str, patient_id: str) -> str:
    """dicognito's seed for one patient: HMAC-SHA256 of the original patient ID under the key.

    dicognito draws its date offset from the seed alone, so one seed for a whole archive would
    shift every patient by the same interval; a seed per patient gives each patient their own
    shift (the same in every study and run with the same key) and keeps the key out of reach
    of anyone who learns one patient's shift."""
    return hmac.new(key.encode(), b"patient:" + patient_id.encode(), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=256)
def _anonymizer(seed: str):
    from dicognito.anonymizer import Anonymizer

    return Anonymizer(seed=seed)


def _deidentify_header(ds, seed: str) -> None:
    """dicognito's keyed replacements, then every other attribute of PS3.15 Table E.1-1."""
    before = deid_profile.snapshot(ds)
    with _quiet_keyword_lookups():
        _anonymizer(seed).anonymize(ds)
    deid_profile.enforce(ds, before, seed.encode())


class _KeywordLookupFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _KEYWORD_LOOKUP not in record.getMessage()


#: what pydicom says when dicognito looks up the time that goes with a date attribute
#: ("FirstTreatmentDate" -> "FirstTreatmentTime") that has no such partner; harmless
_KEYWORD_LOOKUP = "used with the 'in' operator"


@contextlib.contextmanager
def _quiet_keyword_lookups():
    """Keeps pydicom's warning and log line about a missing keyword out of the terminal: one
    per date attribute without a time partner, per file, says nothing to the user."""
    quiet = _KeywordLookupFilter()
    logger = logging.getLogger("pydicom")
    logger.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=f".*{_KEYWORD_LOOKUP}")
            yield
    finally:
        logger.removeFilter(quiet)


def _keep_mask(ds, source: Path, n_rows: int, n_cols: int) -> tuple[np.ndarray, str]:
    """Bool ``(rows, cols)`` of the pixels kept, and what they are ("regions" or "sector")."""
    regions = ds.get("SequenceOfUltrasoundRegions") or []
    if regions:
        keep = np.zeros((n_rows, n_cols), dtype=bool)
        for item in regions:
            x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
            x1, y1 = int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)
            keep[max(y0, 0): y1 + 1, max(x0, 0): x1 + 1] = True
        return keep, "regions"
    from ultrassl.errors import UltrasslError
    from ultrassl.transforms.ultrasound import LoopSector

    try:
        sector = LoopSector(16)(str(source))
    except (UltrasslError, ValueError) as exc:
        raise CannotCleanError(f"no ultrasound regions and the scan sector could not be found ({exc})") from None
    share = float(sector.mean())
    if not SECTOR_SHARE[0] <= share <= SECTOR_SHARE[1]:
        raise CannotCleanError(f"no ultrasound regions, and the detected sector covers {share:.0%} of the frame")
    return sector, "sector"


def _clean_pixels(ds, source: Path) -> str:
    """Zero every pixel outside the regions or sector; store uncompressed. Returns the mask kind."""
    from pydicom.uid import ExplicitVRLittleEndian

    if "PixelData" not in ds:
        raise CannotCleanError("no pixel data")
    try:
        pixels = ds.pixel_array  # decoded; YBR JPEG frames come out as RGB
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the file cannot be cleaned
        raise CannotCleanError(f"pixel data cannot be decoded ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
                               ) from None
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    rows, cols = int(ds.Rows), int(ds.Columns)
    keep, kind = _keep_mask(ds, source, rows, cols)
    shaped = pixels.reshape(frames, rows, cols, samples)
    cleaned = np.where(keep[None, :, :, None], shaped, 0).astype(pixels.dtype)
    ds.PixelData = np.ascontiguousarray(cleaned.reshape(pixels.shape)).tobytes()
    ds["PixelData"].VR = "OB" if ds.BitsAllocated == 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if samples == 3:
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    ds.BurnedInAnnotation = "NO"
    return kind


def _mark(ds) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds.remove_private_tags()
    ds.PatientIdentityRemoved = "YES"
    codes = []
    for value, meaning in PROFILE_CODES:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
        codes.append(code)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    edition = deid_profile.profile_table()[0]
    ds.DeidentificationMethod = f"ultrassl: PS3.15 Basic ({edition}), Modified Dates, pixels cleaned"[:64]  # LO


def output_name(ds) -> Path:
    """``<patient ID>/<study UID>/<SOP instance UID>.dcm`` of a de-identified dataset."""
    safe = lambda value: "".join(c for c in str(value) if c.isalnum() or c in ".-_") or "unknown"  # noqa: E731
    return Path(safe(ds.get("PatientID"))) / safe(ds.get("StudyInstanceUID")) / f"{safe(ds.get('SOPInstanceUID'))}.dcm"


def deidentify_file(source: str | os.PathLike, out: Path, quarantine: Path, key: str,
                    pseudonyms: dict[str, str] | None = None) -> DeidResult:
    """De-identify one DICOM file into ``out`` (or quarantine it); never raises for a bad file."""
    import pydicom

    source = Path(source)
    try:
        header = pydicom.dcmread(source, stop_before_pixels=True)
        original_id = str(header.get("PatientID", ""))
        seed = patient_seed(key, original_id)
        _deidentify_header(header, seed)
        if pseudonyms is not None:
            pseudonyms[original_id] = str(header.PatientID)
        target = out / output_name(header)
        if target.is_file():  # written by an earlier run with this key
            return DeidResult(str(source), output=str(target), skipped=True)
        ds = pydicom.dcmread(source)
        _clean_pixels(ds, source)
        _deidentify_header(ds, seed)
        _mark(ds)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        with atomic_write(target, "wb") as stream:  # a kill never leaves half a file under its name
            stream.write(buffer.getvalue())
        return DeidResult(str(source), output=str(target))
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop a run over an archive
        reason = str(exc) if isinstance(exc, CannotCleanError) else f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        quarantine.mkdir(parents=True, exist_ok=True)
        # named by a digest of the source path: neutral, and the same file again on a rerun
        kept = quarantine / f"{hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:20]}.dcm"
        shutil.copyfile(source, kept)
        return DeidResult(str(source), quarantined=str(kept), reason=reason[:500])


def deidentify(sources: Iterable[str], out: str | os.PathLike, key: str, quarantine: str | os.PathLike | None = None,
               map_file: str | os.PathLike | None = None,
               progress: Callable[[int], None] | None = None) -> list[DeidResult]:
    """De-identify ``sources`` into ``out``; quarantined files and their reasons go to
    ``quarantine`` (default ``<out>_quarantine``, with ``reasons.csv``); the pseudonym map to
    ``map_file`` only when given."""
    if not key:
        raise ValueError("a de-identification key is needed (it makes pseudonyms and date shifts reproducible)")
    out = Path(out)
    quarantine = Path(quarantine) if quarantine else out.with_name(out.name + "_quarantine")
    pseudonyms: dict[str, str] | None = {} if map_file else None
    results = []
    for done, source in enumerate(sources, start=1):
        results.append(deidentify_file(source, out, quarantine, key, pseudonyms))
        if progress is not None:
            progress(done)
    quarantined = [r for r in results if r.quarantined]
    if quarantined:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["quarantined", "source", "reason"])
        writer.writerows([Path(r.quarantined).name, r.source, r.reason] for r in quarantined)
        write_text_atomically(quarantine / "reasons.csv", buffer.getvalue(), newline="")
    if map_file and pseudonyms:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["original_patient_id", "pseudonym"])
        writer.writerows(sorted(pseudonyms.items()))
        write_text_atomically(map_file, buffer.getvalue(), newline="")
    return results
