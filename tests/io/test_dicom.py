"""DICOM reader: real files from pydicom's wheel and pydicom-data, and broken files built here.

References are pydicom's own decode (``pixel_array`` on the whole dataset, which converts YBR
to RGB), brought to uint8 by the reader's documented rules written out again here.

Tolerances (max and mean absolute difference in uint8 levels):

* lossless data, palettes, native RGB, JPEG 2000 (same decoder as the reference): exact;
* native YBR_FULL / YBR_FULL_422: 1 level (OpenCV's fixed-point YCbCr transform vs pydicom's
  float one);
* JPEG baseline: 6 levels max, 0.25 mean (the reader decodes with Pillow/libjpeg-turbo, the
  reference with pylibjpeg/libjpeg: different IDCT and chroma upsampling);
* VOI windows: 1 level (rounding at the window's float boundaries).
"""

from __future__ import annotations

import io
import json
import struct
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames, parse_basic_offsets, parse_fragments
from pydicom.filewriter import write_file_meta_info
from pydicom.pixels import apply_color_lut, pixel_array
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    MPEG4HP41,
    RLELossless,
    generate_uid,
)

from ultrassl.errors import (
    ClipReadError,
    CorruptFileError,
    EmptyClipError,
    UnsupportedFormatError,
)
from ultrassl.io import probe_clip, read_clip
from ultrassl.io import dicom as dicom_module
from ultrassl.io.dicom import DicomReader

# SC_rgb_jpeg.dcm is written in implicit VR under an explicit transfer syntax; pydicom says so.
pytestmark = pytest.mark.filterwarnings("ignore:Expected explicit VR:UserWarning")

EXACT = (0, 0.0)
YBR_NATIVE = (1, 0.05)
JPEG_BASELINE = (6, 0.25)

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
SECRETS = ("Secret^Person", "ID-4711-SECRET", "Hidden General Hospital", "20240102")


def data_file(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not installed (pydicom / pydicom-data)"
    return Path(path)


def reference(name: str, indices) -> tuple[Dataset, np.ndarray]:
    """pydicom's default decode of the frames at ``indices``: (dataset, (T, H, W[, C]))."""
    ds = pydicom.dcmread(data_file(name))
    return ds, np.stack([pixel_array(ds, index=int(i)) for i in indices])


def bits_stored_uint8(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """The fixed Bits Stored mapping: [0, 2**b - 1] (shifted for signed data) onto [0, 255]."""
    bits = int(ds.BitsStored)
    low = -(2.0 ** (bits - 1)) if int(ds.PixelRepresentation) else 0.0
    return np.clip(np.rint((values.astype(np.float64) - low) * 255 / (2.0**bits - 1)), 0, 255)


def expected_uint8(kind: str, ds: Dataset, ref: np.ndarray) -> np.ndarray:
    if kind == "palette":
        rgb = apply_color_lut(ref, ds)
        if int(ds.RedPaletteColorLookupTableDescriptor[2]) == 16:
            rgb = rgb >> 8
        return rgb.astype(np.uint8)
    if kind == "bits":
        ref = bits_stored_uint8(ref, ds).astype(np.uint8)
    return ref if ref.ndim == 4 else ref[..., None]


def assert_close(actual: np.ndarray, expected: np.ndarray, tolerance) -> None:
    assert actual.shape == expected.shape
    diff = np.abs(actual.astype(np.int64) - expected.astype(np.int64))
    max_diff, mean_diff = tolerance
    assert diff.max() <= max_diff, f"max difference {diff.max()} > {max_diff}"
    assert diff.mean() <= mean_diff, f"mean difference {diff.mean():.4f} > {mean_diff}"


# (file, frames, (H, W, C), reference kind, tolerance); comments name what each one covers
MATRIX = [
    # ultrasound
    ("color3d_jpeg_baseline.dcm", 120, (480, 640, 3), "rgb", JPEG_BASELINE),  # JPEG YBR_422 cine
    ("examples_ybr_color.dcm", 30, (240, 320, 3), "rgb", JPEG_BASELINE),  # JPEG YBR_422 cine
    ("US1_UNCR.dcm", 1, (480, 640, 3), "rgb", EXACT),  # native LE RGB (colour Doppler)
    ("US1_J2KR.dcm", 1, (480, 640, 3), "rgb", EXACT),  # JPEG 2000 lossless, YBR_RCT
    ("US1_J2KI.dcm", 1, (480, 640, 3), "rgb", EXACT),  # JPEG 2000 lossy, YBR_ICT
    ("ExplVR_BigEnd.dcm", 1, (60, 80, 3), "rgb", EXACT),  # big endian RGB, planar 1
    ("color-pl.dcm", 1, (120, 256, 3), "rgb", EXACT),  # RGB planar configuration 1
    ("OBXXXX1A_2frame.dcm", 2, (600, 800, 3), "palette", EXACT),  # Philips OB palette
    ("OBXXXX1A_rle_2frame.dcm", 2, (600, 800, 3), "palette", EXACT),  # RLE palette
    ("examples_palette.dcm", 1, (350, 800, 3), "palette", EXACT),
    ("gdcm-US-ALOKA-16.dcm", 1, (480, 640, 3), "palette", EXACT),  # 16-bit segmented palette
    ("JPGLosslessP14SV1_1s_1f_8b.dcm", 1, (768, 1024, 1), "mono", EXACT),  # JPEG lossless
    # colour coding and codecs on small non-ultrasound images
    ("SC_ybr_full_uncompressed.dcm", 1, (100, 100, 3), "rgb", YBR_NATIVE),
    ("SC_ybr_full_422_uncompressed.dcm", 1, (100, 100, 3), "rgb", YBR_NATIVE),
    ("SC_rgb_dcmtk_+eb+cy+n1.dcm", 1, (100, 100, 3), "rgb", JPEG_BASELINE),  # JPEG YBR_FULL
    ("SC_rgb_dcmtk_+eb+cy+s2.dcm", 1, (100, 100, 3), "rgb", JPEG_BASELINE),  # JPEG YBR_422
    ("SC_rgb_jpeg.dcm", 1, (256, 256, 3), "rgb", JPEG_BASELINE),  # implicit VR under explicit TS
    ("SC_rgb_rle_2frame.dcm", 2, (100, 100, 3), "rgb", EXACT),  # RLE RGB
    ("SC_rgb_16bit_2frame.dcm", 2, (100, 100, 3), "bits", EXACT),  # 16-bit RGB
    ("emri_small.dcm", 10, (64, 64, 1), "bits", EXACT),  # native 12 of 16 bits
    ("emri_small_big_endian.dcm", 10, (64, 64, 1), "bits", EXACT),
    ("emri_small_RLE.dcm", 10, (64, 64, 1), "bits", EXACT),
    ("emri_small_jpeg_2k_lossless.dcm", 10, (64, 64, 1), "bits", EXACT),
    ("emri_small_jpeg_ls_lossless.dcm", 10, (64, 64, 1), "bits", EXACT),  # JPEG-LS
    ("JPEG-LL.dcm", 1, (1024, 256, 1), "bits", EXACT),  # JPEG lossless, signed 16-bit
    ("JPGExtended.dcm", 1, (1024, 256, 1), "bits", EXACT),  # JPEG extended 12-bit
    ("image_dfl.dcm", 1, (512, 512, 1), "mono", EXACT),  # deflated explicit VR
]


@pytest.mark.parametrize(
    "name, n_frames, shape, kind, tolerance", MATRIX, ids=[row[0] for row in MATRIX]
)
def test_frames_match_pydicom(name, n_frames, shape, kind, tolerance):
    path = data_file(name)
    info = probe_clip(path)
    assert info.format == "dicom"
    assert info.n_frames == n_frames
    assert (info.height, info.width, info.channels) == shape
    indices = np.unique([0, n_frames // 2, n_frames - 1])
    clip = read_clip(path, indices, info=info)
    assert clip.frames.dtype == np.uint8
    assert clip.frames.shape == (len(indices), *shape)
    np.testing.assert_array_equal(clip.frame_indices, indices)
    ds, ref = reference(name, indices)
    assert_close(clip.frames, expected_uint8(kind, ds, ref), tolerance)


@pytest.mark.parametrize("name", ["color3d_jpeg_baseline.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm"])
def test_ybr_comes_out_as_rgb(name):
    """Grey stays grey and coloured pixels keep their dominant channel (not YCbCr, not BGR)."""
    clip = read_clip(data_file(name), [0])
    out = clip.frames[0].astype(np.int64)
    _, ref = reference(name, [0])
    ref = ref[0].astype(np.int64)
    grey = (ref[..., 0] == ref[..., 1]) & (ref[..., 1] == ref[..., 2]) & (ref[..., 0] > 30)
    assert grey.sum() > 1000
    spread = out[grey].max(axis=-1) - out[grey].min(axis=-1)
    assert spread.max() <= 3
    assert abs(np.mean(out[grey][:, 1] - out[grey][:, [0, 2]].mean(axis=-1))) < 0.5  # not green
    for dominant, other in ((0, 2), (2, 0)):
        coloured = ref[..., dominant] - ref[..., other] > 60
        if coloured.any():
            assert np.all(out[coloured][:, dominant] > out[coloured][:, other])


def test_big_endian_palette_matches_little_endian():
    """Same Philips image in both byte orders (pydicom 3.0's apply_color_lut swaps these)."""
    little = read_clip(data_file("OBXXXX1A_2frame.dcm"))
    big = read_clip(data_file("OBXXXX1A_expb_2frame.dcm"))
    np.testing.assert_array_equal(big.frames, little.frames)
    assert little.frames.std() > 10
    aloka_big = read_clip(data_file("gdcm-US-ALOKA-16_big.dcm"))
    np.testing.assert_array_equal(aloka_big.frames, read_clip(data_file("gdcm-US-ALOKA-16.dcm")).frames)


def test_same_image_in_every_transfer_syntax_decodes_the_same():
    frames = [read_clip(data_file(n)).frames for n in ("US1_UNCR.dcm", "US1_J2KR.dcm")]
    np.testing.assert_array_equal(frames[0], frames[1])
    emri = [
        read_clip(data_file(n)).frames
        for n in ("emri_small.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_ls_lossless.dcm")
    ]
    for other in emri[1:]:
        np.testing.assert_array_equal(other, emri[0])


def test_window_of_16_bit_grayscale():
    """MR_small: Window 600/1600 (LINEAR, PS3.3 C.11.2.1.2), no rescale."""
    ds, ref = reference("MR_small.dcm", [0])
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    fraction = np.clip((ref[0] - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
    clip = read_clip(data_file("MR_small.dcm"))
    assert_close(clip.frames[0, ..., 0], np.rint(fraction * 255), (1, 0.01))
    assert clip.spacing_mm == pytest.approx((0.3125, 0.3125))


def test_monochrome1_window_with_rescale_is_inverted():
    """CR '6154': MONOCHROME1, Rescale 0.684/200, Window 1600/2800, Imager Pixel Spacing."""
    ds, ref = reference("6154", [0])
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    values = ref[0] * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    fraction = np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
    clip = read_clip(data_file("6154"))
    assert clip.info.channels == 1
    assert_close(clip.frames[0, ..., 0], 255 - np.rint(fraction * 255), (1, 0.01))
    assert clip.spacing_mm == pytest.approx((0.1, 0.1))


def test_ultrasound_fps_spacing_and_safe_metadata():
    info = probe_clip(data_file("color3d_jpeg_baseline.dcm"))
    assert info.fps == pytest.approx(1000 / 33.333)
    assert info.spacing_mm == pytest.approx((0.5104970559477806, 0.5104970559477806))
    meta = info.metadata
    assert meta["Modality"] == "US"
    assert meta["TransferSyntaxUID"] == JPEGBaseline8Bit
    assert meta["PhotometricInterpretation"] == "YBR_FULL_422"
    assert meta["NumberOfFrames"] == 120
    assert meta["us_region_index"] == 0
    assert meta["us_regions"][0]["RegionLocationMaxX1"] == 595
    json.dumps(meta)  # plain values only

    obstetric = probe_clip(data_file("OBXXXX1A.dcm"))
    assert obstetric.fps is None
    # Region 0 is the 2D image in cm; region 1 is a spectral strip in other units.
    assert obstetric.spacing_mm == pytest.approx((0.2622878766196998, 0.2622878766196998))
    assert [r["RegionSpatialFormat"] for r in obstetric.metadata["us_regions"]] == [1, 4]
    # Two 2D regions of equal size: the first wins.
    assert probe_clip(data_file("gdcm-US-ALOKA-16.dcm")).metadata["us_region_index"] == 0
    assert probe_clip(data_file("US1_UNCR.dcm")).spacing_mm is None


IDENTIFYING = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "OtherPatientIDs",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "OperatorsName",
    "PerformingPhysicianName",
    "StationName",
    "AccessionNumber",
    "StudyID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "DeviceSerialNumber",
)
ALLOWED_KEYS = set(dicom_module._SAFE_ELEMENTS) | {
    "TransferSyntaxUID",
    "us_regions",
    "us_region_index",
}


def _flat_strings(value) -> list[str]:
    """Every text value in ``value`` (numbers are bit depths and region bounds, not people)."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in _flat_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _flat_strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("name", sorted({row[0] for row in MATRIX} | {"6154", "OBXXXX1A.dcm"}))
def test_metadata_holds_no_identifying_values(name):
    ds = pydicom.dcmread(data_file(name), stop_before_pixels=True)
    secrets = {str(ds[k].value).strip() for k in IDENTIFYING if k in ds} - {""}
    assert secrets  # every file names someone or something
    meta = probe_clip(data_file(name)).metadata
    assert set(meta) <= ALLOWED_KEYS
    texts = _flat_strings(meta)
    dumped = json.dumps(meta)
    for secret in secrets:
        assert secret not in texts
        assert not any(len(secret) >= 4 and secret in text for text in texts)
        if len(secret) >= 5:
            assert secret not in dumped


def test_selected_frames_in_order_with_repeats_each_decoded_once(monkeypatch):
    calls = []
    convert = dicom_module._FrameConverter.__call__

    def counting(self, arr, props):
        calls.append(arr.shape)
        return convert(self, arr, props)

    monkeypatch.setattr(dicom_module._FrameConverter, "__call__", counting)
    path = data_file("examples_ybr_color.dcm")
    clip = read_clip(path, [5, 2, 5])
    assert len(calls) == 2  # frames 2 and 5, once each, and nothing else
    np.testing.assert_array_equal(clip.frame_indices, [5, 2, 5])
    np.testing.assert_allclose(clip.timestamps_s, np.array([5, 2, 5]) / clip.fps)
    _, ref = reference("examples_ybr_color.dcm", [5, 2, 5])
    assert_close(clip.frames, ref, JPEG_BASELINE)
    np.testing.assert_array_equal(clip.frames[0], clip.frames[2])
    assert np.abs(clip.frames[0].astype(int) - clip.frames[1]).mean() > 0.5  # different frames


def test_file_missing_its_sequence_delimiter_still_reads():
    short = read_clip(data_file("emri_small_jpeg_2k_lossless_too_short.dcm"))
    intact = read_clip(data_file("emri_small_jpeg_2k_lossless.dcm"))
    np.testing.assert_array_equal(short.frames, intact.frames)


def test_file_without_file_meta_reads():
    """OT-PAL-8-face.dcm has neither preamble nor file meta (implicit VR little endian)."""
    clip = read_clip(data_file("OT-PAL-8-face.dcm"))
    ds = pydicom.dcmread(data_file("OT-PAL-8-face.dcm"), force=True)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    expected = expected_uint8("palette", ds, ds.pixel_array[None])
    np.testing.assert_array_equal(clip.frames, expected)


# --------------------------------------------------------------------------- synthetic files


def synthetic_cine(
    path: Path,
    n_frames: int = 6,
    *,
    photometric: str = "MONOCHROME2",
    transfer_syntax=ExplicitVRLittleEndian,
    basic_offsets: bool = True,
    **elements,
) -> np.ndarray:
    """Write a small US cine whose frame i is a ramp plus 30 * i; return its frames (T, H, W).

    ``basic_offsets=False`` leaves the basic offset table of RLE data empty.
    """
    ramp = np.add.outer(np.arange(16), np.arange(24)).astype(np.uint8)
    frames = np.stack([ramp + 30 * i for i in range(n_frames)]).astype(np.uint8)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = US_MULTIFRAME
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "US"
    ds.PatientName, ds.PatientID, ds.InstitutionName, ds.StudyDate = SECRETS
    ds.set_pixel_data(frames if n_frames > 1 else frames[0], photometric, 8)
    if transfer_syntax == RLELossless:
        ds.compress(RLELossless)
        if not basic_offsets:
            encoded = list(generate_frames(ds.PixelData, number_of_frames=n_frames))
            ds.PixelData = encapsulate(encoded, has_bot=False)
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return frames


def with_transfer_syntax(path: Path, uid: str) -> None:
    """Relabel a file's transfer syntax in place, leaving the dataset bytes as they are."""
    raw = path.read_bytes()
    meta_length = struct.unpack("<L", raw[140:144])[0]  # (0002,0000) after preamble and magic
    body = raw[144 + meta_length :]
    meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
    meta.TransferSyntaxUID = uid
    buffer = io.BytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    path.write_bytes(buffer.getvalue() + body)


def fragment_offsets(path: Path) -> list[int]:
    """File offsets of the encapsulated fragments' item tags."""
    with open(path, "rb") as f:
        pydicom.dcmread(f, stop_before_pixels=True)
        f.seek(12, 1)  # Pixel Data tag, VR, reserved bytes and undefined length
        parse_basic_offsets(f)
        return parse_fragments(f)[1]


def assert_refused(path: Path, error: type[ClipReadError], *words: str) -> str:
    """Both probe_clip and read_clip raise ``error`` fast, naming the file and ``words``."""
    message = ""
    for call in (probe_clip, read_clip):
        start = time.perf_counter()
        with pytest.raises(error) as caught:
            call(path)
        assert time.perf_counter() - start < 5
        message = str(caught.value)
        assert str(path) in message
        for word in words:
            assert word in message
        for secret in SECRETS:
            assert secret not in message
    return message


def test_synthetic_native_and_rle_cines_read_exactly(tmp_path):
    for transfer_syntax, basic_offsets in (
        (ExplicitVRLittleEndian, True),
        (RLELossless, True),
        (RLELossless, False),
    ):
        path = tmp_path / f"cine_{transfer_syntax.name[:3]}_{basic_offsets}.dcm"
        frames = synthetic_cine(
            path, transfer_syntax=transfer_syntax, basic_offsets=basic_offsets, FrameTime=40
        )
        info = probe_clip(path)
        assert (info.n_frames, info.height, info.width, info.channels) == (6, 16, 24, 1)
        assert info.fps == pytest.approx(25.0)
        clip = read_clip(path, [5, 2, 5, 0])
        np.testing.assert_array_equal(clip.frames[..., 0], frames[[5, 2, 5, 0]])
        np.testing.assert_allclose(clip.timestamps_s, [0.2, 0.08, 0.2, 0.0])
        for secret in SECRETS:
            assert secret not in json.dumps(info.metadata)


class _CountingFile(io.FileIO):
    """A raw file that counts the bytes read from it."""

    total = 0

    def readinto(self, buffer):
        n = super().readinto(buffer)
        _CountingFile.total += n or 0
        return n

    def read(self, size=-1):
        data = super().read(size)
        _CountingFile.total += len(data)
        return data

    def readall(self):
        data = super().readall()
        _CountingFile.total += len(data)
        return data


def test_native_frames_are_read_alone(tmp_path, monkeypatch):
    """A few frames of a native cine cost about their own bytes, not the whole file."""
    path = tmp_path / "long_native.dcm"
    rgb = np.random.default_rng(1).integers(0, 256, (40, 96, 128, 3), dtype=np.uint8)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = US_MULTIFRAME, generate_uid(), "US"
    ds.set_pixel_data(rgb, "RGB", 8)
    ds.save_as(path, enforce_file_format=True)
    info = probe_clip(path)
    frame_bytes = rgb[0].nbytes
    monkeypatch.setattr(
        dicom_module, "open", lambda p, mode="rb": io.BufferedReader(_CountingFile(p)), raising=False
    )
    _CountingFile.total = 0
    clip = read_clip(path, [31, 7], info=info)
    np.testing.assert_array_equal(clip.frames, rgb[[31, 7]])
    assert _CountingFile.total < 4 * frame_bytes < path.stat().st_size / 10


def test_single_frame_is_a_clip_of_one(tmp_path):
    path = tmp_path / "still.dcm"
    frames = synthetic_cine(path, n_frames=1)
    info = probe_clip(path)
    assert info.n_frames == 1 and info.fps is None
    clip = read_clip(path)
    assert clip.frames.shape == (1, 16, 24, 1)
    np.testing.assert_array_equal(clip.frames[0, ..., 0], frames[0])
    assert np.isnan(clip.timestamps_s).all()


def test_monochrome1_8_bit_is_inverted(tmp_path):
    path = tmp_path / "mono1.dcm"
    frames = synthetic_cine(path, photometric="MONOCHROME1")
    np.testing.assert_array_equal(read_clip(path, [3]).frames[0, ..., 0], 255 - frames[3])


def test_8_bit_palette(tmp_path):
    path = tmp_path / "palette8.dcm"
    frames = synthetic_cine(path, n_frames=2, photometric="PALETTE COLOR")
    entries = np.arange(256)
    tables = {"Red": entries, "Green": 255 - entries, "Blue": (entries * 7) % 256}
    ds = pydicom.dcmread(path)
    for colour, table in tables.items():  # one 8-bit entry per 16-bit word
        ds[f"{colour}PaletteColorLookupTableDescriptor"] = DataElement(
            f"{colour}PaletteColorLookupTableDescriptor", "US", [256, 0, 8]
        )
        ds[f"{colour}PaletteColorLookupTableData"] = DataElement(
            f"{colour}PaletteColorLookupTableData", "OW", table.astype("<u2").tobytes()
        )
    ds.save_as(path, enforce_file_format=True)
    clip = read_clip(path, [1])
    assert clip.info.channels == 3
    expected = np.stack([tables[c][frames[1]] for c in ("Red", "Green", "Blue")], axis=-1)
    np.testing.assert_array_equal(clip.frames[0], expected)


def test_frame_timing_sources(tmp_path):
    path = tmp_path / "vector.dcm"
    synthetic_cine(path, FrameTimeVector=[0, 20, 20, 40, 20, 20])  # ms increments
    clip = read_clip(path, [3, 0, 5])
    np.testing.assert_allclose(clip.timestamps_s, [0.08, 0.0, 0.12])
    assert clip.fps == pytest.approx(1000 / 24)
    for keyword, value, fps in (
        ("FrameTime", 33.3, 1000 / 33.3),
        ("CineRate", 15, 15.0),
        ("RecommendedDisplayFrameRate", 12, 12.0),
    ):
        path = tmp_path / f"{keyword}.dcm"
        synthetic_cine(path, **{keyword: value})
        info = probe_clip(path)
        assert info.fps == pytest.approx(fps)
        np.testing.assert_allclose(read_clip(path, [4]).timestamps_s, [4 / fps])
    path = tmp_path / "untimed.dcm"
    synthetic_cine(path)
    assert probe_clip(path).fps is None
    assert np.isnan(read_clip(path, [1]).timestamps_s).all()


def _region(fmt, x0, y0, x1, y1, dx, dy, units=3) -> Dataset:
    region = Dataset()
    region.RegionSpatialFormat = fmt
    region.RegionDataType = 1
    region.RegionLocationMinX0, region.RegionLocationMinY0 = x0, y0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = x1, y1
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = units
    region.PhysicalDeltaX, region.PhysicalDeltaY = dx, dy
    return region


def test_spacing_from_the_largest_2d_region_in_cm(tmp_path):
    path = tmp_path / "regions.dcm"
    regions = [
        _region(1, 0, 0, 9, 9, 0.01, 0.02),  # small 2D region
        _region(3, 0, 0, 23, 15, 0.5, 0.5),  # larger spectral region
        _region(1, 0, 0, 23, 11, 0.03, 0.04),  # largest 2D region
        _region(1, 0, 0, 23, 15, 0.7, 0.7, units=4),  # not in cm (seconds)
    ]
    synthetic_cine(path, SequenceOfUltrasoundRegions=regions, PixelSpacing=[9, 9])
    info = probe_clip(path)
    assert info.spacing_mm == pytest.approx((0.4, 0.3))  # (row, column) = (dY, dX) * 10
    assert info.metadata["us_region_index"] == 2
    assert len(info.metadata["us_regions"]) == 4

    path = tmp_path / "pixel_spacing.dcm"
    synthetic_cine(path, SequenceOfUltrasoundRegions=regions[3:], PixelSpacing=[0.5, 0.25])
    assert probe_clip(path).spacing_mm == pytest.approx((0.5, 0.25))


def test_can_read_by_suffix_or_magic_never_a_folder(tmp_path):
    reader = DicomReader()
    source = tmp_path / "cine.dcm"
    frames = synthetic_cine(source)
    bare = tmp_path / "IM000001"
    bare.write_bytes(source.read_bytes())
    assert reader.can_read(bare)
    np.testing.assert_array_equal(read_clip(bare, [2]).frames[0, ..., 0], frames[2])
    upper = tmp_path / "CINE.DCM"
    upper.write_bytes(b"not dicom")
    assert reader.can_read(upper)
    text = tmp_path / "notes"
    text.write_bytes(b"x" * 200)
    assert not reader.can_read(text)
    folder = tmp_path / "series.dcm"
    folder.mkdir()
    assert not reader.can_read(folder)


def test_identifying_values_reach_no_warning_or_log(tmp_path, recwarn, caplog):
    """pydicom warns with the value of an invalid UID when it converts the element: the reader
    must never convert identifying elements."""
    path = tmp_path / "invalid_values.dcm"
    synthetic_cine(path)
    ds = pydicom.dcmread(path)
    with pytest.warns(UserWarning):
        ds["StudyInstanceUID"] = DataElement("StudyInstanceUID", "UI", "1.2.Secret^Person")
    ds.save_as(path, enforce_file_format=True)
    recwarn.clear()
    caplog.clear()
    with caplog.at_level("DEBUG"):
        info = probe_clip(path)
        read_clip(path, [0, 5], info=info)
    said = " ".join(str(w.message) for w in recwarn) + caplog.text + json.dumps(info.metadata)
    assert "Secret" not in said


# --------------------------------------------------------------------------- broken files


def test_truncated_native_pixel_data(tmp_path):
    path = tmp_path / "truncated.dcm"
    synthetic_cine(path)
    path.write_bytes(path.read_bytes()[:-500])  # a frame is 384 bytes
    assert_refused(path, CorruptFileError, "truncated pixel data", "4 of 6")


def test_truncated_real_file():
    assert_refused(data_file("MR_truncated.dcm"), CorruptFileError, "truncated pixel data")


def test_number_of_frames_beyond_the_data(tmp_path):
    native = tmp_path / "native.dcm"
    synthetic_cine(native, NumberOfFrames=9)
    assert_refused(native, CorruptFileError, "truncated pixel data", "6 of 9")
    rle = tmp_path / "rle.dcm"
    synthetic_cine(rle, transfer_syntax=RLELossless, NumberOfFrames=9)
    assert_refused(rle, CorruptFileError, "basic offset table lists 6 frames", "the 9 frames")
    rle = tmp_path / "rle_no_offsets.dcm"
    synthetic_cine(rle, transfer_syntax=RLELossless, basic_offsets=False, NumberOfFrames=9)
    assert_refused(rle, CorruptFileError, "holds 6 fragments", "the 9 frames")


def test_truncated_encapsulated_pixel_data(tmp_path):
    path = tmp_path / "rle_cut.dcm"
    synthetic_cine(path, transfer_syntax=RLELossless)
    last = fragment_offsets(path)[-1]
    path.write_bytes(path.read_bytes()[: last + 20])
    assert_refused(path, CorruptFileError, "truncated pixel data", "fragment 6")


def test_missing_pixel_data(tmp_path):
    path = tmp_path / "no_pixels.dcm"
    synthetic_cine(path)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path, enforce_file_format=True)
    assert_refused(path, EmptyClipError, "no Pixel Data")


def test_zero_frames(tmp_path):
    path = tmp_path / "zero.dcm"
    synthetic_cine(path, NumberOfFrames=0)
    assert_refused(path, EmptyClipError, "NumberOfFrames is 0")


def test_garbage_after_the_preamble(tmp_path):
    path = tmp_path / "garbage.dcm"
    noise = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    path.write_bytes(b"\0" * 128 + b"DICM" + noise)
    assert_refused(path, CorruptFileError)


def test_wrong_transfer_syntax(tmp_path):
    native_as_jpeg = tmp_path / "native_as_jpeg.dcm"
    synthetic_cine(native_as_jpeg)
    with_transfer_syntax(native_as_jpeg, JPEGBaseline8Bit)
    assert_refused(native_as_jpeg, CorruptFileError, "JPEG Baseline", "probably wrong")
    rle_as_native = tmp_path / "rle_as_native.dcm"
    synthetic_cine(rle_as_native, transfer_syntax=RLELossless)
    with_transfer_syntax(rle_as_native, ExplicitVRLittleEndian)
    assert_refused(rle_as_native, CorruptFileError, "Explicit VR Little Endian", "probably wrong")


def test_transfer_syntaxes_without_decoder_are_unsupported(tmp_path):
    unknown = tmp_path / "private_syntax.dcm"
    synthetic_cine(unknown)
    with_transfer_syntax(unknown, "1.2.3.4.5")
    assert_refused(unknown, UnsupportedFormatError, "1.2.3.4.5")
    video = tmp_path / "h264.dcm"
    synthetic_cine(video, transfer_syntax=RLELossless)  # encapsulated, as MPEG-4 would be
    with_transfer_syntax(video, MPEG4HP41)
    assert_refused(video, UnsupportedFormatError, "MPEG-4 AVC/H.264", MPEG4HP41)


@pytest.mark.parametrize(
    "name, syntax",
    [
        ("JPEG-lossy.dcm", "JPEG Extended"),  # 12-bit JPEG that libjpeg refuses, as pydicom does
        ("JPEG2000-embedded-sequence-delimiter.dcm", "JPEG 2000"),
    ],
)
def test_real_files_pydicom_cannot_decode(name, syntax):
    path = data_file(name)
    with pytest.raises(Exception):
        pydicom.dcmread(path).pixel_array  # noqa: B018 - pydicom fails on these too
    probe_clip(path)  # the header and fragment table are fine
    with pytest.raises(CorruptFileError) as caught:
        read_clip(path, [0])
    message = str(caught.value)
    assert str(path) in message and syntax in message and "cannot decode" in message


def test_only_requested_encapsulated_frames_are_decoded(tmp_path):
    """Damage frame 4's fragment: frames 0 and 3 still read, frame 4 fails with its cause."""
    path = tmp_path / "rle_damaged.dcm"
    frames = synthetic_cine(path, transfer_syntax=RLELossless)
    raw = bytearray(path.read_bytes())
    header = fragment_offsets(path)[4] + 8  # the 64-byte RLE header: segment count, offsets
    raw[header : header + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    clip = read_clip(path, [3, 0])
    np.testing.assert_array_equal(clip.frames[..., 0], frames[[3, 0]])
    with pytest.raises(CorruptFileError, match="RLE Lossless"):
        read_clip(path, [4])
