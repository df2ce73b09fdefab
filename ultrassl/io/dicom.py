"""DICOM clips: single- and multi-frame images, ultrasound cine loops first, decoded with pydicom.

Any transfer syntax that pydicom and its installed plugins decode is read: native little and
big endian, deflated, RLE, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000 and HTJ2K.
Only the frames asked for are decoded: native frames are read from their own byte range and
each encapsulated frame decodes alone.

Frames come out as uint8 ``(T, H, W, C)``. How stored values become uint8:

* RGB, YBR_FULL, YBR_FULL_422, YBR_RCT, YBR_ICT: RGB, C = 3. YBR_FULL(_422) goes through the
  full-range YCbCr transform of PS3.3 C.7.6.3.1.2 (OpenCV, within 1 level of pydicom's own
  conversion); the JPEG 2000 decoder undoes YBR_RCT/YBR_ICT itself.
* PALETTE COLOR: RGB through the palette (:func:`pydicom.pixels.apply_color_lut`), C = 3;
  8-bit palette entries as they are, 16-bit entries keep their high byte (``entry >> 8``).
* MONOCHROME1/2: C = 1; MONOCHROME1 is inverted (``255 - v``) so that a higher value is
  brighter in every clip.
* More than 8 bits stored, grayscale, with a VOI window or VOI LUT in the header: the modality
  LUT (rescale) then the first VOI transform of the header, mapped linearly from the VOI's
  output range to [0, 255].
* Otherwise (colour or grayscale): the fixed range of Bits Stored, ``[0, 2**b - 1]`` (shifted
  by ``2**(b-1)`` for signed data), mapped linearly to [0, 255]; 8-bit data is unchanged.

Every rule is fixed by the header, never by the pixel values, so a frame decodes to the same
uint8 values whichever other frames are read with it.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from struct import unpack
from typing import Any, BinaryIO

import cv2
import numpy as np
import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import get_frame, parse_basic_offsets, parse_fragments
from pydicom.multival import MultiValue
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi_lut,
    as_pixel_options,
    convert_color_space,
    get_decoder,
)
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
)

from ultrassl.errors import (
    ClipReadError,
    CorruptFileError,
    EmptyClipError,
    UnsupportedFormatError,
)
from ultrassl.io.base import ClipReader, default_timestamps
from ultrassl.io.limits import get_decode_limits
from ultrassl.io.types import Clip, ClipInfo

#: offset and value of the DICOM file magic ("DICM" after the 128-byte preamble)
_MAGIC_OFFSET = 128
_MAGIC = b"DICM"

_PIXEL_DATA = 0x7FE00010
_FLOAT_PIXEL_DATA = (0x7FE00008, 0x7FE00009)
_UNDEFINED_LENGTH = 0xFFFFFFFF
#: VRs a Pixel Data element can have under explicit VR encoding
_PIXEL_VRS = {b"OB", b"OW", b"UN", b"OF", b"OD", b"OL", b"OV"}

_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
#: Physical Units X/Y Direction code for centimetres (PS3.3 C.8.5.5.1.15)
_UNITS_CM = 3
#: Region Spatial Format code for a 2D (tissue or colour flow) region
_REGION_2D = 1

#: Palette Color Lookup Table Descriptors (0028,1101-1104), Data (0028,1201-1204) and
#: Segmented Data (0028,1221-1224)
_PALETTE_DATA_TAGS = (0x00281201, 0x00281202, 0x00281203, 0x00281204)
_PALETTE_TAGS = (
    (0x00281101, 0x00281102, 0x00281103, 0x00281104)
    + _PALETTE_DATA_TAGS
    + (0x00281221, 0x00281222, 0x00281223, 0x00281224)
)

#: header elements copied into ClipInfo.metadata: facts about the image, never about a person
_SAFE_ELEMENTS = (
    "Modality",
    "SOPClassUID",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PlanarConfiguration",
    "NumberOfFrames",
    "Manufacturer",
    "BurnedInAnnotation",
    "LossyImageCompression",
)
_REGION_FIELDS = (
    "RegionSpatialFormat",
    "RegionDataType",
    "RegionLocationMinX0",
    "RegionLocationMinY0",
    "RegionLocationMaxX1",
    "RegionLocationMaxY1",
    "PhysicalUnitsXDirection",
    "PhysicalUnitsYDirection",
    "PhysicalDeltaX",
    "PhysicalDeltaY",
)


@dataclass(frozen=True)
class _PixelData:
    """Where the Pixel Data element's value lies in the file."""

    offset: int  # file offset of the value's first byte
    length: int | None  # bytes; None when undefined (encapsulated)
    vr: str | None  # from explicit VR encoding, None for implicit


@dataclass
class _Header:
    """Everything before the pixel data, plus the facts derived from it."""

    ds: Dataset  # every element before the pixel data
    transfer_syntax: UID
    n_frames: int
    pixel_data: _PixelData | None  # None for deflated files (decoded from ``full``)
    full: Dataset | None = None  # the whole file, only for deflated transfer syntaxes


class DicomReader(ClipReader):
    """Reads DICOM files (suffix ``.dcm``/``.dicom``, or none) into uint8 RGB/grayscale clips.

    ``probe`` reads the header only and checks that the pixel data holds every frame the
    header announces (byte count for native data, fragment count for encapsulated data), so
    truncated files fail at indexing time, not during training. ``read`` decodes only the
    distinct requested frames, once each. See the module docstring for the uint8 rules.

    ``ClipInfo`` fields: ``fps`` from Frame Time (0018,1063), else Frame Time Vector
    (0018,1065), else Cine Rate (0018,0040), else Recommended Display Frame Rate (0008,2144);
    ``spacing_mm`` (row, column) from the largest 2D ultrasound region in centimetres, else
    Pixel Spacing, else Imager Pixel Spacing. ``metadata`` holds only non-identifying facts:
    the keys of ``_SAFE_ELEMENTS``, ``TransferSyntaxUID``, ``us_regions`` (a list of dicts of
    region bounds in pixels, units codes and physical deltas) and ``us_region_index`` (the
    region that gave the spacing, or ``None``).

    Timestamps: cumulative Frame Time Vector when the file has one, else index / fps.
    """

    name = "dicom"
    suffixes = (".dcm", ".dicom")

    def can_read(self, path: Path) -> bool:
        path = Path(path)
        if path.is_dir():
            return False
        if path.suffix.lower() in self.suffixes:
            return True
        # Clinical exports often have no suffix (IM000001, hashed names): look for the magic.
        try:
            with open(path, "rb") as f:
                f.seek(_MAGIC_OFFSET)
                return f.read(len(_MAGIC)) == _MAGIC
        except OSError:
            return False

    def probe(self, path: Path) -> ClipInfo:
        path = Path(path)
        with open(path, "rb") as f:
            # Large private blobs before the pixel data need not be read for a probe.
            header = _read_header(f, path, defer_size="64 KB")
        ds = header.ds
        fps, _ = _frame_timing(ds, header.n_frames)
        spacing, region_index = _spacing_mm(ds)
        return ClipInfo(
            path=str(path),
            format=self.name,
            n_frames=header.n_frames,
            height=int(ds.Rows),
            width=int(ds.Columns),
            channels=_channels(ds),
            fps=fps,
            spacing_mm=spacing,
            has_audio=False,
            metadata=_metadata(ds, header.transfer_syntax, region_index),
        )

    def read(
        self,
        path: Path,
        frame_indices: np.ndarray,
        info: ClipInfo,
        with_audio: bool = False,
    ) -> Clip:
        path = Path(path)
        indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        distinct = np.unique(indices)  # sorted: file order, each frame decoded once
        with open(path, "rb") as f:
            header = _read_header(f, path, defer_size=None)
            _check_codestream_sizes(f, header, distinct.tolist(), path)
            try:
                to_uint8 = _FrameConverter(header)
                decoded = [
                    to_uint8(arr, props)
                    for arr, props in _decode_frames(f, header, distinct.tolist())
                ]
            except ClipReadError as exc:
                if exc.path is None:
                    raise type(exc)(exc.cause, str(path)) from exc
                raise
            except Exception as exc:  # noqa: BLE001 - name the transfer syntax with the cause
                raise CorruptFileError(
                    f"cannot decode the '{header.transfer_syntax.name}' pixel data "
                    f"({_short(exc, 600)})",
                    str(path),
                ) from exc
        if len(decoded) != distinct.size:
            raise CorruptFileError(
                f"decoded {len(decoded)} of the {distinct.size} frames asked for", str(path)
            )
        frames = np.stack(decoded)
        if not np.array_equal(distinct, indices):
            frames = frames[np.searchsorted(distinct, indices)]
        _, times = _frame_timing(header.ds, header.n_frames)
        timestamps = times[indices] if times is not None else default_timestamps(indices, info.fps)
        return Clip(frames=frames, frame_indices=indices, timestamps_s=timestamps, info=info)


# --------------------------------------------------------------------------- header


def _read_header(f: BinaryIO, path: Path, defer_size: str | None) -> _Header:
    """Parse everything before the pixel data and check the pixel data holds every frame."""
    try:
        ds = pydicom.dcmread(f, stop_before_pixels=True, force=True, defer_size=defer_size)
    except Exception as exc:  # noqa: BLE001 - any parse failure means a damaged file
        raise CorruptFileError(f"not a readable DICOM file ({_short(exc)})", str(path)) from exc
    ts = _transfer_syntax(ds, path)
    if ts == DeflatedExplicitVRLittleEndian:
        # The dataset is zlib-compressed: offsets in the file mean nothing, read it whole.
        full = pydicom.dcmread(path, force=True)
        if "PixelData" not in full:
            raise _no_pixel_data(ds, path)
        pixel_data = None
    else:
        full = None
        pixel_data = _locate_pixel_data(f, ds, ts, path)
    _require_decoder(ts, path)
    for keyword in ("Rows", "Columns"):
        if int(ds.get(keyword) or 0) <= 0:
            raise CorruptFileError(f"missing or zero {keyword} (0028,*)", str(path))
    n_frames = _number_of_frames(ds, path)

    if pixel_data is None:
        _check_native_length(ds, n_frames, len(full.PixelData), path)
    elif ts.is_encapsulated:
        file_size = os.fstat(f.fileno()).st_size
        _check_encapsulated(f, ds, ts, n_frames, pixel_data, file_size, path)
    else:
        if pixel_data.length is None:
            raise CorruptFileError(
                f"Pixel Data has an undefined length (encapsulated), but the transfer syntax "
                f"'{ts.name}' is native: the transfer syntax is probably wrong",
                str(path),
            )
        file_size = os.fstat(f.fileno()).st_size
        available = min(pixel_data.length, file_size - pixel_data.offset)
        _check_native_length(ds, n_frames, available, path)
    return _Header(ds, ts, n_frames, pixel_data, full)


def _transfer_syntax(ds, path: Path):
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid:
        uid = UID(str(uid).strip("\x00 "))
        if not uid.is_transfer_syntax:
            raise UnsupportedFormatError(
                f"unknown transfer syntax {uid}: no pixel data decoder for it", str(path)
            )
        return uid
    # No file meta (raw dataset): pydicom guessed the encoding while parsing.
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _require_decoder(ts, path: Path) -> None:
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise UnsupportedFormatError(
            f"transfer syntax '{ts.name}' ({ts}) cannot be decoded: pydicom has no decoder for it",
            str(path),
        ) from None
    if not decoder.is_available:
        raise UnsupportedFormatError(
            f"transfer syntax '{ts.name}' ({ts}) cannot be decoded: no decoding plugin is "
            f"installed ({'; '.join(decoder.missing_dependencies)})",
            str(path),
        )


def _number_of_frames(ds, path: Path) -> int:
    raw = ds.get("NumberOfFrames")
    if raw is None or str(raw).strip() == "":
        return 1
    try:
        n = int(str(raw).strip())
    except ValueError:
        raise CorruptFileError(f"NumberOfFrames {str(raw)[:16]!r} is not an integer", str(path))
    if n == 0:
        raise EmptyClipError("NumberOfFrames is 0: the file holds no frames", str(path))
    if n < 0:
        raise CorruptFileError(f"NumberOfFrames is negative ({n})", str(path))
    return n


def _no_pixel_data(ds, path: Path) -> ClipReadError:
    """The error for a file without Pixel Data: a non-image object, or not DICOM at all."""
    if "SOPClassUID" in ds or "Modality" in ds:
        kind = str(ds.get("Modality") or "") or "non-image"
        return EmptyClipError(f"no Pixel Data element: the file holds no image ({kind})", str(path))
    return CorruptFileError(
        "no DICOM image found: neither Pixel Data nor an SOP Class UID could be parsed "
        "(damaged file, or not DICOM)",
        str(path),
    )


def _locate_pixel_data(f: BinaryIO, ds, ts, path: Path) -> _PixelData:
    """The Pixel Data element's position; ``f`` stands where ``dcmread`` stopped.

    Parsed by hand because pydicom's file-based decoding assumes the VR encoding of the
    transfer syntax, while some writers put implicit VR under an explicit syntax (which
    ``dcmread`` itself tolerates).
    """
    start = f.tell()
    head = f.read(12)
    if len(head) < 8:
        raise _no_pixel_data(ds, path)
    endian = "<" if ts.is_little_endian else ">"
    group, element = unpack(f"{endian}HH", head[:4])
    tag = group << 16 | element
    if tag in _FLOAT_PIXEL_DATA:
        raise UnsupportedFormatError(
            "float pixel data (7FE0,0008/0009) is not supported, only integer Pixel Data",
            str(path),
        )
    if tag != _PIXEL_DATA:
        raise _no_pixel_data(ds, path)
    if head[4:6] in _PIXEL_VRS and len(head) == 12:
        length = unpack(f"{endian}L", head[8:12])[0]
        vr, offset = head[4:6].decode(), start + 12
    else:
        length = unpack(f"{endian}L", head[4:8])[0]
        vr, offset = None, start + 8
    return _PixelData(offset, None if length == _UNDEFINED_LENGTH else length, vr)


def _check_native_length(ds, n_frames: int, available: int, path: Path) -> None:

    image = Dataset()  # only what the length depends on, so that ``ds`` stays untouched
    for keyword in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "PhotometricInterpretation"):
        if keyword in ds:
            setattr(image, keyword, ds[keyword].value)
    image.NumberOfFrames = n_frames
    try:
        expected = int(get_expected_length(image, unit="bytes"))
    except Exception as exc:  # noqa: BLE001 - missing or malformed group 0028 elements
        raise CorruptFileError(f"incomplete image pixel description ({_short(exc)})", str(path))
    if available < expected:
        whole = available * n_frames // expected
        raise CorruptFileError(
            f"truncated pixel data: {available} of {expected} bytes, {whole} of {n_frames} "
            "whole frames",
            str(path),
        )


def _check_encapsulated(f, ds, ts, n_frames: int, pixel_data: _PixelData, file_size, path):

    if pixel_data.length is not None:
        raise CorruptFileError(
            f"Pixel Data has a defined length (native), but the transfer syntax '{ts.name}' is "
            "encapsulated: the transfer syntax is probably wrong",
            str(path),
        )
    f.seek(pixel_data.offset)
    try:
        basic_offsets = parse_basic_offsets(f)
        n_fragments, fragment_offsets = parse_fragments(f)
    except Exception as exc:  # noqa: BLE001 - malformed item structure
        raise CorruptFileError(f"malformed encapsulated pixel data ({_short(exc)})", str(path))
    if n_fragments == 0:
        raise EmptyClipError("the encapsulated pixel data holds no fragments", str(path))
    # parse_fragments stops quietly at the end of the file: check the last item fits in it.
    f.seek(fragment_offsets[-1] + 4)
    last_length = unpack("<L", f.read(4))[0]
    end = fragment_offsets[-1] + 8 + last_length
    if end > file_size:
        raise CorruptFileError(
            f"truncated pixel data: fragment {n_fragments} of the encapsulated pixel data ends "
            f"{end - file_size} bytes past the end of the file",
            str(path),
        )
    if "ExtendedOffsetTable" in ds:
        held = f"its extended offset table lists {len(ds.ExtendedOffsetTable) // 8} frames"
        n_held = len(ds.ExtendedOffsetTable) // 8
    elif basic_offsets:
        held = f"its basic offset table lists {len(basic_offsets)} frames"
        n_held = len(basic_offsets)
    else:  # every frame needs at least one fragment
        held = f"it holds {n_fragments} fragments"
        n_held = n_fragments
    if n_held < n_frames:
        raise CorruptFileError(
            f"truncated pixel data: {held}, fewer than the {n_frames} frames of NumberOfFrames",
            str(path),
        )


# --------------------------------------------------------------------------- facts


def _channels(ds) -> int:
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric == "PALETTE COLOR" or int(ds.get("SamplesPerPixel") or 1) == 3:
        return 3
    return 1


def _positive(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _frame_timing(ds, n_frames: int) -> tuple[float | None, np.ndarray | None]:
    """(fps, per-frame timestamps in seconds or None when only a constant rate is known)."""
    times = None
    vector = ds.get("FrameTimeVector")
    if vector is not None and n_frames > 1:
        try:
            increments_ms = np.asarray([float(v) for v in vector], dtype=np.float64)
        except (TypeError, ValueError):
            increments_ms = np.empty(0)
        # Valid only with one entry per frame; the first entry is the start (0 ms).
        if increments_ms.size == n_frames and np.all(np.isfinite(increments_ms)):
            if np.all(increments_ms[1:] >= 0) and increments_ms[1:].sum() > 0:
                times = np.cumsum(increments_ms) / 1000.0
                times -= times[0]
    frame_time_ms = _positive(ds.get("FrameTime"))
    if frame_time_ms:
        return 1000.0 / frame_time_ms, times
    if times is not None:
        return (n_frames - 1) / times[-1], times
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = _positive(ds.get(keyword))
        if rate:
            return rate, None
    return None, None


def _regions(ds) -> list[dict[str, int | float | None]]:
    regions = []
    for item in ds.get("SequenceOfUltrasoundRegions") or []:
        region: dict[str, int | float | None] = {}
        for keyword in _REGION_FIELDS:
            cast = float if keyword.startswith("PhysicalDelta") else int
            try:
                region[keyword] = cast(item.get(keyword))
            except (TypeError, ValueError):  # absent or malformed: the region stays usable
                region[keyword] = None
        regions.append(region)
    return regions


def _spacing_mm(ds) -> tuple[tuple[float, float] | None, int | None]:
    """((row, column) pixel size in mm or None, index of the ultrasound region used)."""
    best, best_key = None, None
    for index, region in enumerate(_regions(ds)):
        dx = abs(region["PhysicalDeltaX"] or 0.0)
        dy = abs(region["PhysicalDeltaY"] or 0.0)
        if not (
            region["PhysicalUnitsXDirection"] == _UNITS_CM
            and region["PhysicalUnitsYDirection"] == _UNITS_CM
            and dx > 0
            and dy > 0
        ):
            continue
        bounds = [region[k] or 0 for k in _REGION_FIELDS[2:6]]
        area = max(0, bounds[2] - bounds[0] + 1) * max(0, bounds[3] - bounds[1] + 1)
        # 2D regions first, then the largest; the first such region wins ties.
        key = (region["RegionSpatialFormat"] == _REGION_2D, area)
        if best_key is None or key > best_key:
            best, best_key = (index, (dy * 10.0, dx * 10.0)), key
    if best is not None:
        return best[1], best[0]
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            row, col = (_positive(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row and col:
            return (row, col), None
    return None, None


def _header_value(value):
    """A header value as plain str/int/float (or a list of them), e.g. for JSON manifests."""
    if isinstance(value, (list, tuple, MultiValue)):
        return [_header_value(v) for v in value]
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (float, Decimal)):
        return float(value)
    return str(value)


def _metadata(ds, ts, region_index: int | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"TransferSyntaxUID": str(ts)}
    for keyword in _SAFE_ELEMENTS:
        value = ds.get(keyword)
        if value is not None and str(value) != "":
            meta[keyword] = _header_value(value)
    meta["us_regions"] = _regions(ds)
    meta["us_region_index"] = region_index
    return meta


def _short(exc: BaseException, limit: int = 200) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- pixels


def _codestream_size(frame: bytes, ts: UID) -> tuple[int, int] | None:
    """(rows, columns) that a compressed frame's own codestream header declares, parsed without
    decoding or allocating the frame (the SOF or SIZ marker only); None for codecs whose
    decoders take the size from the DICOM header (RLE), or a header they cannot parse (the
    decoder then reports the damage)."""
    try:
        if ts in JPEGTransferSyntaxes or ts in JPEGLSTransferSyntaxes:
            # pydicom's marker parser reads the SOF segment and nothing else; libjpeg's
            # get_parameters allocates the whole frame (about 400 MB for 12000 x 12000)
            from pydicom.pixels.utils import _get_jpg_parameters

            parameters = _get_jpg_parameters(frame)
            return (int(parameters["height"]), int(parameters["width"])) if parameters else None
        if ts in JPEG2000TransferSyntaxes:
            from openjpeg import get_parameters  # reads the SIZ marker only

            parameters = get_parameters(frame)
            return int(parameters["rows"]), int(parameters["columns"])
        return None
    except Exception:  # noqa: BLE001 - an unparsable header is the decoder's to report
        return None


def _check_codestream_sizes(f: BinaryIO, header: _Header, indices: list[int], path: Path) -> None:
    """Refuse, before decoding, compressed frames whose codestream declares more pixels than
    the decode limit or another size than Rows x Columns.

    The codec decodes to the size in the frame's own header, not the DICOM header's: a small
    file whose JPEG frames each claim 12000 x 12000 pixels would otherwise allocate gigabytes
    before any check on the result could run.
    """
    ts = header.transfer_syntax
    if header.pixel_data is None or not ts.is_encapsulated:
        return
    limits = get_decode_limits()
    rows, columns = int(header.ds.Rows), int(header.ds.Columns)
    extended = None
    if "ExtendedOffsetTable" in header.ds and "ExtendedOffsetTableLengths" in header.ds:
        extended = (header.ds.ExtendedOffsetTable, header.ds.ExtendedOffsetTableLengths)
    for index in indices:
        f.seek(header.pixel_data.offset)
        try:
            frame = get_frame(f, index, extended_offsets=extended, number_of_frames=header.n_frames)
        except Exception:  # noqa: BLE001 - item structure damage is reported by the decoder
            return
        declared = _codestream_size(frame, ts)
        if declared is None:
            continue
        limits.check_frame(*declared, path, f"frame {index}'s compressed data declares a frame")
        if declared != (rows, columns):
            raise CorruptFileError(
                f"frame {index}'s compressed data declares {declared[0]} x {declared[1]} pixels, "
                f"the header {rows} x {columns}",
                str(path),
            )


def _decode_frames(
    f: BinaryIO, header: _Header, indices: list[int]
) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """(decoded frame, pixel properties) for each of ``indices`` (sorted, distinct)."""
    ts = header.transfer_syntax
    decoder = get_decoder(ts)
    plugin = ""
    if (
        ts in (JPEGBaseline8Bit, JPEGExtended12Bit)
        and int(header.ds.get("BitsAllocated") or 0) == 8
        and "pillow" in decoder.available_plugins
    ):
        # Pillow (libjpeg-turbo) decodes a 640x480 frame about 5x faster than pylibjpeg's
        # libjpeg; the two differ by a few levels at a few pixels (IDCT and upsampling).
        plugin = "pillow"

    def frames(decoding_plugin: str) -> list[tuple[np.ndarray, dict[str, Any]]]:
        if header.pixel_data is None:
            source, options = header.full, {}
        else:
            f.seek(header.pixel_data.offset)
            source = f
            options = as_pixel_options(
                header.ds,
                transfer_syntax_uid=ts,
                pixel_keyword="PixelData",
                number_of_frames=header.n_frames,
            )
            if header.pixel_data.vr:
                options["pixel_vr"] = header.pixel_data.vr
        # raw: YBR stays YBR; _FrameConverter converts it with OpenCV, ~2.5x faster.
        iterator = decoder.iter_array(
            source,
            indices=indices,
            validate=True,
            raw=True,
            decoding_plugin=decoding_plugin,
            **options,
        )
        return list(iterator)

    if plugin:
        try:
            return frames(plugin)
        except Exception as exc:  # noqa: BLE001 - fall back to pydicom's default plugin order
            # pylibjpeg's libjpeg decodes a truncated codestream without complaint into a
            # damaged frame; Pillow notices, so its verdict on truncation is final.
            if "truncated" in str(exc).lower():
                raise CorruptFileError(
                    f"the JPEG data of a frame is truncated ({_short(exc)})"
                ) from exc
    return frames("")


class _FrameConverter:
    """Turns decoded frames of one file into uint8 (H, W, C) by the rules of the module docstring."""

    def __init__(self, header: _Header):
        ds = header.ds
        self.ds = ds
        self.has_voi = _has_voi(ds) and _voi_is_usable(ds)
        self.palette = None
        if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "PALETTE COLOR":
            self.palette = _palette_dataset(ds, header.transfer_syntax)

    def __call__(self, arr: np.ndarray, props: dict[str, Any]) -> np.ndarray:
        ds = self.ds
        photometric = str(props.get("photometric_interpretation") or ds.PhotometricInterpretation)
        photometric = photometric.strip().upper()
        bits_stored = int(props.get("bits_stored") or ds.get("BitsStored") or 8 * arr.itemsize)
        signed = int(props.get("pixel_representation") or 0) == 1

        if photometric == "PALETTE COLOR" and self.palette is not None:
            rgb = apply_color_lut(arr, self.palette)[..., :3]  # drop alpha, if any
            if int(self.palette.RedPaletteColorLookupTableDescriptor[2]) == 8:
                return np.clip(rgb, 0, 255).astype(np.uint8)
            # 16-bit entries: keep the high byte (exact for the common v << 8 and v * 257).
            return (rgb.astype(np.uint16) >> 8).astype(np.uint8)

        if photometric in _MONOCHROME:
            if bits_stored > 8 and self.has_voi:
                out = _apply_voi_uint8(arr, ds)
            else:
                out = _scale_bits_stored(arr, bits_stored, signed)
            if photometric == "MONOCHROME1":
                out = 255 - out
            return out[..., None]

        if arr.ndim == 2:  # a colour photometric with one sample: treat as grayscale
            return _scale_bits_stored(arr, bits_stored, signed)[..., None]
        if photometric in ("YBR_FULL", "YBR_FULL_422"):  # sub-sampling is already undone
            arr = _ybr_full_to_rgb(arr)
        return _scale_bits_stored(arr, bits_stored, signed)


def _palette_dataset(ds, ts) -> Dataset:
    """The palette elements of ``ds``, with OW table words in this machine's byte order.

    pydicom 3.0's ``apply_color_lut`` reads non-segmented OW table data in the machine's
    byte order, which scrambles the colours of Explicit VR Big Endian files; swap them here.
    """
    palette = Dataset()
    palette.file_meta = FileMetaDataset()
    palette.file_meta.TransferSyntaxUID = ts
    swap = ts.is_little_endian != (sys.byteorder == "little")
    # Only the palette tags are touched: converting other elements (names, dates) could make
    # pydicom warn with their values.
    for tag in _PALETTE_TAGS:
        if tag not in ds:
            continue
        element = ds[tag]
        value = element.value
        if swap and element.VR == "OW" and tag in _PALETTE_DATA_TAGS:
            value = np.frombuffer(value, dtype=np.uint16).byteswap().tobytes()
        palette[tag] = DataElement(tag, element.VR, value)
    if "RedPaletteColorLookupTableDescriptor" not in palette:
        raise CorruptFileError("PALETTE COLOR image without a palette colour lookup table")
    return palette


def _ybr_full_to_rgb(arr: np.ndarray) -> np.ndarray:
    """Full-range YCbCr (PS3.3 C.7.6.3.1.2, the JPEG/JFIF transform) as RGB."""
    if arr.dtype != np.uint8:
        return convert_color_space(arr, "YBR_FULL", "RGB")
    y, cb, cr = cv2.split(np.ascontiguousarray(arr))
    return cv2.cvtColor(cv2.merge((y, cr, cb)), cv2.COLOR_YCrCb2RGB)


def _scale_bits_stored(arr: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Map the fixed range of ``bits_stored`` bits linearly onto [0, 255]."""
    if arr.dtype == np.uint8 and bits_stored == 8:
        return arr
    low = -(2.0 ** (bits_stored - 1)) if signed else 0.0
    scale = 255.0 / (2.0**bits_stored - 1)
    out = np.rint((arr.astype(np.float64) - low) * scale)
    return np.clip(out, 0, 255).astype(np.uint8)


def _has_voi(ds) -> bool:
    if ds.get("VOILUTSequence"):
        return True
    return "WindowCenter" in ds and "WindowWidth" in ds


def _voi_is_usable(ds) -> bool:
    """Whether the header's VOI transform works; a broken one (zero width, unknown function)
    falls back to the Bits Stored rule for the whole file rather than failing every read."""
    try:
        _apply_voi_uint8(np.zeros((1, 1), dtype=np.int32), ds)
    except Exception:  # noqa: BLE001 - any failure means the VOI cannot be applied
        return False
    return True


def _apply_voi_uint8(arr: np.ndarray, ds) -> np.ndarray:
    """Modality LUT then the header's first VOI transform, its output range mapped to [0, 255]."""

    values = apply_voi_lut(apply_modality_lut(arr, ds), ds, index=0, prefer_lut=True)
    low, high = _voi_output_range(ds)
    if high == low:
        raise CorruptFileError("the VOI transform has an empty output range")
    out = np.rint((np.asarray(values, dtype=np.float64) - low) * (255.0 / (high - low)))
    return np.clip(out, 0, 255).astype(np.uint8)


def _voi_output_range(ds) -> tuple[float, float]:
    """The output range of :func:`pydicom.pixels.apply_voi_lut` for ``ds``.

    A VOI LUT outputs ``[0, 2**bits - 1]`` (its descriptor's third value). A window outputs
    the range of the modality LUT's output (PS3.3 C.11.2.1.2): the modality LUT's bit depth,
    else the stored range passed through Rescale Slope/Intercept, as pydicom computes it.
    """
    if ds.get("VOILUTSequence"):
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, 2.0**bits - 1
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        low, high = 0.0, 2.0 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1
    elif int(ds.get("PixelRepresentation") or 0) == 0:
        low, high = 0.0, 2.0**bits - 1
    else:
        low, high = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        # Not sorted: a negative slope swaps the ends, and so does pydicom's window.
        low = low * float(slope) + float(intercept)
        high = high * float(slope) + float(intercept)
    return low, high
