"""Small good and deliberately broken clip files for the data-layer tests, built at test time.

Each good builder returns the facts a manifest would record for the file, so that a test can
build a manifest row by hand and then break the file underneath it.
"""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import numpy as np

from tests.media import truncate_file, write_audio_only, write_test_video

#: Ultrasound Multi-frame Image Storage
US_MULTIFRAME_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.3.1"


def ramp_frames(n_frames: int = 10, height: int = 32, width: int = 48) -> np.ndarray:
    """uint8 (T, H, W): frame t is a horizontal ramp plus 10 * t, so frames differ."""
    ramp = np.linspace(0, 150, width, dtype=np.float64)[None, None, :]
    t = np.arange(n_frames, dtype=np.float64)[:, None, None] * 10
    return np.broadcast_to(ramp + t, (n_frames, height, width)).astype(np.uint8)


def facts(fmt: str, n_frames: int, height: int, width: int, channels: int, fps: float | None = None) -> dict:
    """The manifest fields of a file (status ok), as its index would record them."""
    return {
        "format": fmt,
        "n_frames": n_frames,
        "fps": np.nan if fps is None else float(fps),
        "height": height,
        "width": width,
        "channels": channels,
        "spacing_row_mm": np.nan,
        "spacing_col_mm": np.nan,
        "has_audio": False,
        "status": "ok",
        "error": "",
    }


# -- good files ------------------------------------------------------------------------------


def _dicom_dataset(frames: np.ndarray, declared_frames: int | None = None):
    """An uncompressed 8-bit grayscale ultrasound multi-frame dataset (no patient data)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    n, h, w = frames.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = US_MULTIFRAME_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = h, w
    ds.NumberOfFrames = declared_frames if declared_frames is not None else n
    ds.FrameTime = 40.0  # ms: 25 fps
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    return ds


def write_dicom(path: Path, n_frames: int = 10, height: int = 32, width: int = 48) -> dict:
    """A valid uncompressed multi-frame DICOM cine; returns its manifest facts."""
    _dicom_dataset(ramp_frames(n_frames, height, width)).save_as(path, enforce_file_format=True)
    return facts("dicom", n_frames, height, width, 1, fps=25.0)


def write_video(path: Path, n_frames: int = 12, **options) -> dict:
    """A valid small video (PyAV; H.264 in .mp4, MPEG-4 part 2 in .avi); returns its facts."""
    if Path(path).suffix.lower() == ".avi":
        options.setdefault("codec", "mpeg4")
    frames = write_test_video(path, n_frames=n_frames, size=(32, 64), fps=25, gop=4, **options)
    return facts("video", n_frames, frames.shape[1], frames.shape[2], 3, fps=25.0)


def write_itk(path: Path, n_frames: int = 8, height: int = 24, width: int = 32, noise: bool = False) -> dict:
    """A valid 3D image (frames along the third axis) in any SimpleITK format; returns its facts.

    ``noise`` fills it with random values (which do not compress), instead of ramps.
    """
    import SimpleITK as sitk

    frames = ramp_frames(n_frames, height, width)
    if noise:
        frames = np.random.default_rng(4).integers(0, 256, frames.shape, dtype=np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(frames), str(path))
    return facts("itk", n_frames, height, width, 1)


def write_frame_folder(folder: Path, n_frames: int = 6, height: int = 24, width: int = 32) -> dict:
    """A folder of PNG frames written with OpenCV; returns its facts."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(ramp_frames(n_frames, height, width)):
        assert cv2.imwrite(str(folder / f"frame_{t:04d}.png"), frame)
    return facts("frames", n_frames, height, width, 1)


# -- broken files ----------------------------------------------------------------------------


def dicom_truncated_pixel_data(path: Path) -> dict:
    """A DICOM file cut inside its pixel data (the last bytes of the file are gone)."""
    good = path.with_name("good_" + path.name)
    info = write_dicom(good)
    truncate_file(good, path, 0.6)
    good.unlink()
    return info


def dicom_missing_pixel_data(path: Path) -> dict:
    """An image DICOM without a Pixel Data element."""
    ds = _dicom_dataset(ramp_frames(10, 32, 48))
    del ds.PixelData
    ds.save_as(path, enforce_file_format=True)
    return facts("dicom", 10, 32, 48, 1, fps=25.0)


def dicom_frames_beyond_data(path: Path) -> dict:
    """NumberOfFrames says 20 but Pixel Data holds 10 frames."""
    _dicom_dataset(ramp_frames(10, 32, 48), declared_frames=20).save_as(path, enforce_file_format=True)
    return facts("dicom", 20, 32, 48, 1, fps=25.0)


def dicom_garbage_after_preamble(path: Path) -> dict:
    """A 128-byte preamble and the DICM magic, then random bytes."""
    rng = np.random.default_rng(0)
    path.write_bytes(b"\0" * 128 + b"DICM" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return facts("dicom", 10, 32, 48, 1, fps=25.0)


def jpeg_fragments(frames: np.ndarray, quality: int = 90) -> list[bytes]:
    """Each grey frame ``(T, H, W)`` encoded as a JPEG-baseline codestream."""
    from PIL import Image

    fragments = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
        fragments.append(buffer.getvalue())
    return fragments


def save_jpeg_dicom(path: Path, frames: np.ndarray, fragments: list[bytes]) -> dict:
    """A JPEG-baseline multi-frame DICOM with the header of ``frames`` ``(T, H, W)`` and the
    given encapsulated ``fragments`` (one per frame, damaged or not); returns its facts."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    ds = _dicom_dataset(frames)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate(fragments)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    n_frames, height, width = frames.shape[:3]
    return facts("dicom", n_frames, height, width, 1, fps=25.0)


def dicom_broken_jpeg_fragment(path: Path, n_frames: int = 6) -> dict:
    """A JPEG-baseline encapsulated multi-frame DICOM whose every frame fragment is broken.

    Each fragment keeps the JPEG start-of-image marker, then random bytes: no decoder can find
    a frame header in it. Every frame is broken so that any sampled frame hits one.
    """
    rng = np.random.default_rng(1)
    fragments = [b"\xff\xd8" + rng.integers(0, 256, 600, dtype=np.uint8).tobytes() + b"\xff\xd9" for _ in range(n_frames)]
    return save_jpeg_dicom(path, ramp_frames(n_frames, 32, 48), fragments)


def dicom_truncated_jpeg_fragment(path: Path, n_frames: int = 6) -> dict:
    """A JPEG-baseline multi-frame DICOM of speckle-like frames whose frame 3 fragment is cut in half.

    The fragment keeps a valid JPEG header; its entropy-coded data and end marker are gone.
    """
    rng = np.random.default_rng(5)
    frames = (ramp_frames(n_frames, 32, 48).astype(np.int64) + rng.integers(0, 60, (n_frames, 32, 48))).clip(0, 255)
    frames = frames.astype(np.uint8)
    fragments = jpeg_fragments(frames)
    fragments[3] = fragments[3][: len(fragments[3]) // 2]
    return save_jpeg_dicom(path, frames, fragments)


def dicom_unsupported_transfer_syntax(path: Path, n_frames: int = 4) -> dict:
    """A multi-frame DICOM whose transfer syntax is MPEG-2 (no pixel decoder handles it)."""
    from pydicom.encaps import encapsulate

    ds = _dicom_dataset(ramp_frames(n_frames, 32, 48))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile / Main Level
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 400])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    return facts("dicom", n_frames, 32, 48, 1, fps=25.0)


def mp4_truncated(path: Path) -> dict:
    """An mp4 cut in half; its index (moov) was written last, so it is gone."""
    good = path.with_name("good_" + path.name)
    info = write_video(good, n_frames=24)
    truncate_file(good, path, 0.5)
    good.unlink()
    return info


def mp4_truncated_index_first(path: Path) -> dict:
    """An mp4 with its index first (faststart) cut in half: the header promises frames that are gone."""
    good = path.with_name("good_" + path.name)
    info = write_video(good, n_frames=24, container_options={"movflags": "faststart"})
    truncate_file(good, path, 0.5)
    good.unlink()
    return info


def mp4_garbage(path: Path) -> dict:
    """Random bytes named .mp4."""
    path.write_bytes(np.random.default_rng(2).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    return facts("video", 12, 32, 64, 3, fps=25.0)


def mp4_zero_bytes(path: Path) -> dict:
    """An empty file named .mp4."""
    path.write_bytes(b"")
    return facts("video", 12, 32, 64, 3, fps=25.0)


def mp4_audio_only(path: Path) -> dict:
    """An mp4 holding an audio track and no video stream."""
    write_audio_only(path, duration_s=0.5)
    return facts("video", 12, 32, 64, 3, fps=25.0)


def avi_truncated(path: Path) -> dict:
    """An AVI (MPEG-4 part 2) cut at 60 %: its frame index is gone, half its frames too."""
    good = path.with_name("good_" + path.name)
    info = write_video(good, n_frames=24)
    truncate_file(good, path, 0.6)
    good.unlink()
    return info


def mha_truncated(path: Path) -> dict:
    """A MetaImage (.mha) whose pixel data is cut short."""
    good = path.with_name("good_" + path.name)
    info = write_itk(good)
    truncate_file(good, path, 0.7)
    good.unlink()
    return info


def mha_header_too_large(path: Path) -> dict:
    """A MetaImage whose header claims 5 times the frames its data holds."""
    info = write_itk(path)
    data = path.read_bytes()
    header_end = data.index(b"ElementDataFile")
    header = data[:header_end].decode("latin-1")
    header, count = re.subn(r"DimSize = (\d+) (\d+) (\d+)", lambda m: f"DimSize = {m[1]} {m[2]} {int(m[3]) * 5}", header)
    assert count == 1, header
    path.write_bytes(header.encode("latin-1") + data[header_end:])
    return {**info, "n_frames": info["n_frames"] * 5}


def nii_gz_corrupt(path: Path) -> dict:
    """A .nii.gz whose gzip stream is damaged in its second half (the pixel data, after the header)."""
    info = write_itk(path, noise=True)
    raw = gzip.decompress(path.read_bytes())
    # Recompress without the default header time stamp, then overwrite bytes mid-stream.
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
        handle.write(raw)
    data = bytearray(buffer.getvalue())
    middle = len(data) * 2 // 3
    data[middle : middle + 64] = np.random.default_rng(3).integers(0, 256, 64, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return info


#: name -> (file name, builder) for every kind of broken file the readers must refuse
BROKEN_FILES = {
    "dicom_truncated_pixel_data": ("truncated.dcm", dicom_truncated_pixel_data),
    "dicom_missing_pixel_data": ("no_pixels.dcm", dicom_missing_pixel_data),
    "dicom_frames_beyond_data": ("frames_beyond_data.dcm", dicom_frames_beyond_data),
    "dicom_garbage_after_preamble": ("garbage.dcm", dicom_garbage_after_preamble),
    "dicom_broken_jpeg_fragment": ("broken_jpeg.dcm", dicom_broken_jpeg_fragment),
    "dicom_unsupported_transfer_syntax": ("mpeg2.dcm", dicom_unsupported_transfer_syntax),
    "mp4_truncated": ("truncated.mp4", mp4_truncated),
    "mp4_truncated_index_first": ("truncated_faststart.mp4", mp4_truncated_index_first),
    "mp4_garbage": ("garbage.mp4", mp4_garbage),
    "mp4_zero_bytes": ("empty.mp4", mp4_zero_bytes),
    "mp4_audio_only": ("audio_only.mp4", mp4_audio_only),
    "avi_truncated": ("truncated.avi", avi_truncated),
    "mha_truncated": ("truncated.mha", mha_truncated),
    "mha_header_too_large": ("too_large.mha", mha_header_too_large),
    "nii_gz_corrupt": ("corrupt.nii.gz", nii_gz_corrupt),
}


def index_file_or_crash(path: str, validate: bool = True) -> dict:
    """:func:`ultrassl.data.indexing.index_file`, except that a path containing "crash" kills the process,
    as a decoder's segmentation fault would."""
    import os

    from ultrassl.data.indexing import index_file

    if "crash" in os.path.basename(path):
        os._exit(11)
    return index_file(path, validate)


# -- files that declare more than they should --------------------------------------------------


def dicom_jpeg_frames(path: Path, frame_size: tuple[int, int], header_size: tuple[int, int] | None = None,
                      n_frames: int = 3) -> dict:
    """A JPEG-baseline multi-frame DICOM whose frames are flat grey ``frame_size`` images.

    Flat JPEG frames compress to almost nothing, so a large ``frame_size`` makes a
    decompression bomb: a small file whose frames decode to many megapixels each.
    ``header_size`` sets Rows x Columns of the DICOM header when it should differ from the
    frames' own size (a hostile header that understates what the codestreams decode to).
    """
    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    height, width = frame_size
    buffer = io.BytesIO()
    Image.new("L", (width, height), 90).save(buffer, format="JPEG", quality=50)
    rows, columns = header_size or frame_size
    ds = _dicom_dataset(np.zeros((n_frames, 2, 2), dtype=np.uint8))
    ds.Rows, ds.Columns = rows, columns
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([buffer.getvalue()] * n_frames)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    return facts("dicom", n_frames, rows, columns, 1, fps=25.0)


def mha_compressed_large(path: Path, height: int, width: int, n_frames: int = 2) -> dict:
    """A zlib-compressed MetaImage of flat frames: a few kB on disk, ``height x width`` per frame."""
    import SimpleITK as sitk

    image = sitk.Image([width, height, n_frames], sitk.sitkUInt8)
    sitk.WriteImage(image, str(path), True)
    return facts("itk", n_frames, height, width, 1)
