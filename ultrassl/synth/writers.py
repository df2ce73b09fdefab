"""Writers of the synthetic clips: JPEG-baseline multi-frame ultrasound DICOM and H.264 mp4.

Both go through the same libraries and conventions as clinical exports, so the synthetic
data is read by the same code paths as real data.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

#: (0018,1063) Frame Time: the attribute Frame Increment Pointer points at for cine loops.
_FRAME_TIME_TAG = 0x00181063


@dataclass(frozen=True)
class UltrasoundRegion:
    """One calibrated region of the image (DICOM Sequence of Ultrasound Regions item).

    Attributes:
        bounds: inclusive pixel box (x0, y0, x1, y1).
        spacing_cm: (dx, dy) physical size of a pixel in cm (columns, rows).
        reference_pixel: (x, y) pixel of the physical origin (the centre of the transducer
            face), relative to the region's top-left corner as the standard requires.
    """

    bounds: tuple[int, int, int, int]
    spacing_cm: tuple[float, float]
    reference_pixel: tuple[int, int]


@dataclass(frozen=True)
class FakeIdentity:
    """Invented identifying attributes, present so that de-identification can be exercised."""

    patient_name: str = "SYNTH^PHANTOM"
    patient_id: str = "SYNTH0001"
    birth_date: str = "19900101"
    study_date: str = "20240305"
    study_time: str = "101500"
    accession: str = "SYNACC0001"
    institution: str = "ULTRASSL SIMULATED CLINIC"
    referring_physician: str = "SYNTH^REFERRER"
    operator: str = "SYNTH^SONOGRAPHER"


def write_ultrasound_dicom(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    region: UltrasoundRegion,
    identity: FakeIdentity,
    uid_seed: list[int],
    jpeg_quality: int = 92,
    series_description: str = "fetal sweep",
) -> Path:
    """Write grey frames as an Ultrasound Multi-frame Image (JPEG baseline, MONOCHROME2).

    Args:
        path: output file (``.dcm``).
        frames: uint8 (T, H, W).
        fps: frame rate (Frame Time and Cine Rate are derived from it).
        region: the calibrated sector (cm per pixel, bounds).
        identity: the (fake) identifying attributes to write.
        uid_seed: integers that make the UIDs reproducible for the same inputs.
        jpeg_quality: cv2 JPEG quality of every frame.

    Returns:
        the written path.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence
    from pydicom.uid import JPEGBaseline8Bit, UltrasoundMultiFrameImageStorage, generate_uid

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W), got {frames.dtype} {frames.shape}")
    n_frames, rows, cols = frames.shape
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality), cv2.IMWRITE_JPEG_PROGRESSIVE, 0,
              cv2.IMWRITE_JPEG_OPTIMIZE, 0]
    fragments = []
    for frame in frames:
        ok, buf = cv2.imencode(".jpg", frame, params)
        if not ok:
            raise RuntimeError(f"{path}: JPEG encoding of a frame failed")
        fragments.append(buf.tobytes())

    entropy = [str(v) for v in uid_seed]
    uid = lambda what: generate_uid(entropy_srcs=[*entropy, what])  # noqa: E731
    sop_instance = uid("instance")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = JPEGBaseline8Bit

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL", "0001"]
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = uid("series")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = identity.study_date
    ds.AcquisitionDateTime = identity.study_date + identity.study_time
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = identity.study_time
    ds.AccessionNumber = identity.accession
    ds.Modality = "US"
    ds.Manufacturer = "ultrassl"
    ds.ManufacturerModelName = "fetal sweep simulator"
    ds.InstitutionName = identity.institution
    ds.ReferringPhysicianName = identity.referring_physician
    ds.OperatorsName = identity.operator
    ds.StudyDescription = "Obstetric ultrasound (simulated)"
    ds.SeriesDescription = series_description
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.birth_date
    ds.PatientSex = "F"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = int(uid_seed[-1]) + 1 if uid_seed else 1
    ds.BurnedInAnnotation = "YES"

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = n_frames
    ds.FrameIncrementPointer = _FRAME_TIME_TAG
    ds.FrameTime = f"{1000.0 / fps:.4f}"
    ds.CineRate = int(round(fps))
    ds.RecommendedDisplayFrameRate = int(round(fps))
    ds.LossyImageCompression = "01"
    raw = n_frames * rows * cols
    ds.LossyImageCompressionRatio = f"{raw / max(1, sum(len(f) for f in fragments)):.2f}"
    ds.LossyImageCompressionMethod = "ISO_10918_1"

    item = Dataset()
    x0, y0, x1, y1 = region.bounds
    item.RegionSpatialFormat = 1  # 2D tissue image
    item.RegionDataType = 1  # tissue
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = int(x0), int(y0)
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = int(x1), int(y1)
    item.ReferencePixelX0, item.ReferencePixelY0 = int(region.reference_pixel[0]), int(region.reference_pixel[1])
    item.ReferencePixelPhysicalValueX = 0.0
    item.ReferencePixelPhysicalValueY = 0.0
    item.PhysicalUnitsXDirection = 3  # cm
    item.PhysicalUnitsYDirection = 3
    item.PhysicalDeltaX = float(region.spacing_cm[0])
    item.PhysicalDeltaY = float(region.spacing_cm[1])
    ds.SequenceOfUltrasoundRegions = Sequence([item])

    ds.PixelData = encapsulate(fragments, has_bot=True)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def write_mp4(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    audio_sample_rate: int = 16000,
    crf: int = 18,
    tags: dict[str, str] | None = None,
) -> Path:
    """Write frames as H.264 (libx264, yuv420p) in an mp4, with an optional AAC mono track.

    Args:
        path: output file (``.mp4``).
        frames: uint8 (T, H, W) grey or (T, H, W, 3) RGB; H and W must be even (yuv420p).
        fps: constant frame rate.
        audio: float32 (samples,) in [-1, 1], or ``None`` for no audio track.
        audio_sample_rate: samples per second of ``audio``.
        crf: x264 constant rate factor (lower = better quality).
        tags: container metadata to write (e.g. ``{"comment": ...}``); nothing else is written.
    """
    import av

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"{path}: yuv420p needs even frame sizes, got {h}x{w}")
    rate = _rate(fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    # bitexact: no library version strings in the file
    with av.open(str(path), mode="w", options={"fflags": "+bitexact"}) as container:
        container.metadata.update(tags or {})
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height = w, h
        video.pix_fmt = "yuv420p"
        video.codec_context.gop_size = 16
        # reproducible output: with macroblock-tree rate control this x264 build encodes the
        # same frames differently from run to run (measured); one thread, no mbtree is stable
        video.codec_context.thread_count = 1
        video.options = {"crf": str(crf), "preset": "veryfast", "x264-params": "mbtree=0"}
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("aac", rate=audio_sample_rate)
            audio_stream.layout = "mono"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio_stream is not None:
            samples = np.asarray(audio, dtype=np.float32).reshape(-1)
            chunk = 1024
            for start in range(0, samples.size, chunk):
                aframe = av.AudioFrame.from_ndarray(samples[None, start : start + chunk], format="flt",
                                                    layout="mono")
                aframe.sample_rate = audio_sample_rate
                aframe.pts = start
                aframe.time_base = Fraction(1, audio_sample_rate)
                for packet in audio_stream.encode(aframe):
                    container.mux(packet)
            for packet in audio_stream.encode(None):
                container.mux(packet)
    return path


def fake_date(rng: np.random.Generator) -> str:
    """A plausible exam date, YYYYMMDD."""
    day = _dt.date(2023, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 730)))
    return day.strftime("%Y%m%d")
