"""2D+t images read with SimpleITK: MetaImage (.mha/.mhd), NIfTI (.nii/.nii.gz), NRRD (.nrrd/.nhdr).

Layout: a 3D image (x, y, t) is a sequence of T frames of H = y rows and W = x columns; a 2D
image is one frame; a 4D image (x, y, 1, t) is read as (x, y, t). Pixels are scalar
(grayscale, C = 1) or vectors of 3 or 4 components (RGB; alpha is dropped, C = 3).

Frame rate (the third spacing of a 3D image carries no unit, so it is never taken as the
time step): an explicit header key ``FrameRate``, ``fps``, ``frame_rate`` or
``FramesPerSecond`` (any case; MetaImage and NRRD keep such keys), else for a 4D NIfTI the
time step ``pixdim[4]`` in the unit of ``xyzt_units``; otherwise ``None``.

Intensities become uint8 by one rule per file, fixed at probe time and recorded in
``metadata["intensity_rule"]`` and ``metadata["intensity_window"]`` (lo, hi), which maps
lo -> 0 and hi -> 255 linearly, rounding and clipping:

- ``"as_is"``: uint8 data is returned unchanged;
- ``"declared_range"``: a NIfTI file declaring ``cal_min < cal_max`` is windowed to it;
- ``"type_range"``: other integer data is scaled from its type's full range (uint16:
  0..65535, int16: -32768..32767), the same for every file of that type;
- ``"image_range"``: floating-point data is scaled from the minimum and maximum over the
  whole image, computed at probe time (which therefore reads float files whole).
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from ultrassl.errors import ClipReadError, CorruptFileError, UnsupportedFormatError
from ultrassl.io.base import ClipReader, default_timestamps
from ultrassl.io.limits import get_decode_limits
from ultrassl.io.native import captured_native_stderr, native_note
from ultrassl.io.types import Clip, ClipInfo

_SUFFIXES = (".nii.gz", ".mha", ".mhd", ".nii", ".nrrd", ".nhdr")
_FPS_KEYS = ("framerate", "fps", "frame_rate", "framespersecond")
#: NIfTI xyzt_units time codes (bits 3-5) -> seconds per unit
_NIFTI_TIME_UNITS = {8: 1.0, 16: 1e-3, 24: 1e-6}
#: in files that stream, wanted frames further apart than this are read by separate requests
_STREAM_GAP = 16


class ItkReader(ClipReader):
    """Reads 2D+t sequences and single 2D images through SimpleITK's ImageFileReader.

    Frames are uint8 (T, H, W, C); ``spacing_mm`` is (row, column) = (spacing[1], spacing[0])
    in millimetres (ITK's unit). Only the frames from the first to the last wanted one are
    read from files that stream (uncompressed MetaImage); ITK reads other files whole, NIfTI
    always (ITK's NIfTI reader corrupts memory when asked for part of a vector image).
    """

    name = "itk"
    suffixes = _SUFFIXES

    def can_read(self, path: Path) -> bool:
        lower = Path(path).name.lower()
        return Path(path).is_file() and lower.endswith(_SUFFIXES)

    def probe(self, path: Path) -> ClipInfo:
        return _quietly(self._probe, path)

    def read(
        self, path: Path, frame_indices: np.ndarray, info: ClipInfo, with_audio: bool = False
    ) -> Clip:
        """Frames at ``frame_indices`` as uint8 (T, H, W, C), intensities mapped by the file's rule."""
        return _quietly(self._read, path, frame_indices, info, with_audio)

    def _probe(self, path: Path) -> ClipInfo:
        """Header facts (ReadImageInformation); float images are also read whole for their range.

        ``metadata`` holds ``file_format`` (metaimage, nifti or nrrd), ``pixel_type``, ``components``,
        ``dimension``, ``size`` (ITK order x, y[, t]), ``spacing`` (ITK order), ``time_step``
        (third spacing, unit unknown), ``intensity_rule``, ``intensity_window`` and
        ``fps_source``. Free-text header fields (descriptions, notes) are left out.
        """
        import SimpleITK as sitk

        path = Path(path)
        _check_metaimage_data(path)
        reader = _image_reader(path)
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            raise CorruptFileError(f"unreadable image header: {_itk_cause(exc, path)}", str(path)) from exc
        keys = {key.lower(): key for key in reader.GetMetaDataKeys()}
        _check_nifti_data(path, reader, keys)
        size = tuple(int(s) for s in reader.GetSize())
        dimension = len(size)
        if dimension == 2:
            width, height, n_frames = size[0], size[1], 1
        elif dimension == 3:
            width, height, n_frames = size
        elif dimension == 4 and size[2] == 1:
            width, height, n_frames = size[0], size[1], size[3]
        else:
            raise UnsupportedFormatError(
                f"a {dimension}D image of size {size}; expected 2D, 2D+t (x, y, t) or (x, y, 1, t)", str(path)
            )
        components = int(reader.GetNumberOfComponents())
        if components not in (1, 3, 4):
            raise UnsupportedFormatError(f"{components} components per pixel; expected 1, 3 or 4", str(path))
        get_decode_limits().check_frame(height, width, path, "the declared frame size")
        spacing = tuple(float(s) for s in reader.GetSpacing())
        fps, fps_source = _frame_rate(reader, keys, dimension)
        pixel_id = reader.GetPixelID()
        rule, window = _intensity_rule(reader, keys, pixel_id, path)
        metadata = {
            "file_format": _file_format(path),
            "pixel_type": sitk.GetPixelIDValueAsString(pixel_id),
            "components": components,
            "dimension": dimension,
            "size": size,
            "spacing": spacing,
            "time_step": spacing[-1] if dimension > 2 else None,
            "intensity_rule": rule,
            "intensity_window": window,
            "fps_source": fps_source,
        }
        return ClipInfo(
            path=str(path),
            format=self.name,
            n_frames=int(n_frames),
            height=int(height),
            width=int(width),
            channels=1 if components == 1 else 3,
            fps=fps,
            spacing_mm=(spacing[1], spacing[0]),
            has_audio=False,
            metadata=metadata,
        )

    def _read(
        self, path: Path, frame_indices: np.ndarray, info: ClipInfo, with_audio: bool = False
    ) -> Clip:
        path = Path(path)
        indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        metadata = info.metadata
        if "intensity_rule" not in metadata or "dimension" not in metadata:
            metadata = self.probe(path).metadata  # info came without the probe's metadata
        reader = _image_reader(path)
        try:
            reader.ReadImageInformation()
            streams = bool(reader.CanStreamRead())
        except RuntimeError as exc:
            raise CorruptFileError(f"unreadable image header: {_itk_cause(exc, path)}", str(path)) from exc
        wanted = np.unique(indices)
        dimension = metadata["dimension"]
        if _file_format(path) == "nifti":
            # ITK's NIfTI reader corrupts memory (double free) when asked for a region of a
            # vector image (SimpleITK 2.5.7 / ITK 5.4): NIfTI files are always read whole.
            groups, dimension = [wanted], -dimension
        elif streams:
            groups = np.split(wanted, np.flatnonzero(np.diff(wanted) > _STREAM_GAP) + 1)
        else:
            groups = [wanted]  # each request would decompress the whole file: make one
        frames = np.empty((indices.size, info.height, info.width, info.channels), dtype=np.uint8)
        for group in groups:
            first, last = int(group[0]), int(group[-1])
            span = _read_span(reader, dimension, first, last - first + 1, path)
            span = _to_uint8(_frames_last_axis(span, metadata["dimension"]), metadata)
            if span.shape[1:] != frames.shape[1:] or span.shape[0] != last - first + 1:
                raise CorruptFileError(
                    f"frames {first}..{last} decode to shape {span.shape[1:]}, the header says "
                    f"{frames.shape[1:]}",
                    str(path),
                )
            for index in group:
                frames[indices == index] = span[int(index) - first]
        return Clip(
            frames=frames,
            frame_indices=indices,
            timestamps_s=default_timestamps(indices, info.fps),
            info=info,
        )


def _quietly(call, path: Path, *args):
    """``call(path, *args)`` with ITK's C++ messages kept off the terminal; a typed error gets
    them appended to its cause (they often say more than the exception: "NDims required")."""
    with captured_native_stderr() as said:
        try:
            return call(path, *args)
        except ClipReadError as exc:
            error = exc
    raise type(error)(error.cause + native_note(said, "ITK"), error.path) from error


def _image_reader(path: Path):
    """An ImageFileReader with its ImageIO named from the suffix: ITK matches suffixes case-sensitively."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO({"metaimage": "MetaImageIO", "nifti": "NiftiImageIO", "nrrd": "NrrdImageIO"}[_file_format(path)])
    return reader


def _file_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".mha", ".mhd")):
        return "metaimage"
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    return "nrrd"


def _itk_cause(exc: Exception, path: Path) -> str:
    """The useful part of an ITK exception (its text also holds source lines and addresses)."""
    text = str(exc)
    if "Unable to determine ImageIO reader" in text:
        return "no ITK reader recognises the file (damaged header or not an image)"
    if "File cannot be read" in text:
        return "the pixel data cannot be read (truncated or damaged)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = lines[-1] if lines else type(exc).__name__
    for line in lines:
        if "ERROR:" in line:
            cause = line.split("ERROR:", 1)[1].strip()
            cause = re.sub(r"^\w+\(0x[0-9a-f]+\):\s*", "", cause)
    if len(lines) > 1 and lines[-1] != cause:
        cause = f"{cause} {lines[-1]}"
    return cause.replace(str(path), "the file")


def _check_metaimage_data(path: Path) -> None:
    """A MetaImage header whose raw data file is missing or short is caught here, before reading.

    Written by hand: ITK reports this only when the pixels are read, and SimpleITK exposes no
    header field such as ElementDataFile. Compressed and multi-file data are left to ITK.
    """
    name = path.name.lower()
    if not (name.endswith(".mhd") or name.endswith(".mha")):
        return
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536)
    except OSError:
        return
    fields: dict[str, str] = {}
    header_end = None
    position = 0
    while header_end is None:
        line_end = head.find(b"\n", position)
        if line_end < 0:
            return  # not a MetaImage header we understand: ITK will say more
        key, sep, value = head[position:line_end].decode("utf-8", "replace").partition("=")
        position = line_end + 1
        if sep:
            fields[key.strip().lower()] = value.strip()
            if key.strip().lower() == "elementdatafile":
                header_end = position  # LOCAL data starts after this line
    data_file = fields.get("elementdatafile")
    if data_file is None or fields.get("compresseddata", "false").lower() == "true":
        return
    try:
        dims = [int(v) for v in fields["dimsize"].split()]
        channels = int(fields.get("elementnumberofchannels", "1"))
    except (KeyError, ValueError):
        return
    item = {"MET_UCHAR": 1, "MET_CHAR": 1, "MET_USHORT": 2, "MET_SHORT": 2, "MET_UINT": 4, "MET_INT": 4,
            "MET_FLOAT": 4, "MET_DOUBLE": 8, "MET_ULONG": 8, "MET_LONG": 8, "MET_ULONG_LONG": 8,
            "MET_LONG_LONG": 8}.get(fields.get("elementtype", ""))
    if item is None:
        return
    needed = int(np.prod(dims)) * channels * item
    if data_file.upper() == "LOCAL":
        available = path.stat().st_size - (header_end or 0)
        where = "the file"
    elif data_file.upper().startswith("LIST") or "%" in data_file or " " in data_file:
        return
    else:
        data_path = path.parent / data_file
        if not data_path.is_file():
            raise CorruptFileError(f"the header names the data file {data_file!r}, which does not exist", str(path))
        available = data_path.stat().st_size
        where = repr(data_file)
    if available < needed:
        raise CorruptFileError(
            f"truncated pixel data: {where} holds {available} bytes, the header needs {needed}", str(path)
        )


def _check_nifti_data(path: Path, reader, keys: dict[str, str]) -> None:
    """A NIfTI file whose pixel data is short or whose gzip stream is damaged is caught here.

    Needed because ITK's NIfTI reader returns such files without an error, their missing
    pixels filled with garbage. A .nii.gz is decompressed once (no copy kept) to check it.
    """
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        return
    try:
        n_dims = int(reader.GetMetaData(keys["dim[0]"]))
        dims = [int(reader.GetMetaData(keys[f"dim[{i}]"])) for i in range(1, n_dims + 1)]
        bits = int(reader.GetMetaData(keys["bitpix"]))
        offset = int(float(reader.GetMetaData(keys["vox_offset"])))
    except (KeyError, ValueError):
        return
    needed = offset + int(np.prod(dims)) * bits // 8
    if name.endswith(".nii"):
        available = path.stat().st_size
    else:
        available = 0
        try:
            with gzip.open(path, "rb") as stream:
                while chunk := stream.read(1 << 22):
                    available += len(chunk)
        except (EOFError, OSError, zlib.error) as exc:
            raise CorruptFileError(f"damaged gzip stream: {exc}", str(path)) from exc
    if available < needed:
        raise CorruptFileError(
            f"truncated pixel data: {available} bytes, the header needs {needed}", str(path)
        )


def _frame_rate(reader, keys: dict[str, str], dimension: int) -> tuple[float | None, str | None]:
    for key in _FPS_KEYS:
        if key in keys:
            try:
                value = float(reader.GetMetaData(keys[key]).strip())
            except ValueError:
                continue
            if value > 0 and np.isfinite(value):
                return value, keys[key]
    if dimension == 4 and "pixdim[4]" in keys and "xyzt_units" in keys:
        try:
            step = float(reader.GetMetaData(keys["pixdim[4]"]))
            unit = _NIFTI_TIME_UNITS.get(int(reader.GetMetaData(keys["xyzt_units"])) & 0x38)
        except ValueError:
            return None, None
        if unit and step > 0:
            return 1.0 / (step * unit), "pixdim[4]"
    return None, None


def _intensity_rule(reader, keys: dict[str, str], pixel_id: int, path: Path) -> tuple[str, tuple[float, float] | None]:
    import SimpleITK as sitk

    component_ids = {
        sitk.sitkUInt8: np.uint8, sitk.sitkVectorUInt8: np.uint8,
        sitk.sitkInt8: np.int8, sitk.sitkVectorInt8: np.int8,
        sitk.sitkUInt16: np.uint16, sitk.sitkVectorUInt16: np.uint16,
        sitk.sitkInt16: np.int16, sitk.sitkVectorInt16: np.int16,
        sitk.sitkUInt32: np.uint32, sitk.sitkVectorUInt32: np.uint32,
        sitk.sitkInt32: np.int32, sitk.sitkVectorInt32: np.int32,
        sitk.sitkUInt64: np.uint64, sitk.sitkVectorUInt64: np.uint64,
        sitk.sitkInt64: np.int64, sitk.sitkVectorInt64: np.int64,
        sitk.sitkFloat32: np.float32, sitk.sitkVectorFloat32: np.float32,
        sitk.sitkFloat64: np.float64, sitk.sitkVectorFloat64: np.float64,
    }
    dtype = component_ids.get(pixel_id)
    if dtype is None:
        raise UnsupportedFormatError(f"pixel type {sitk.GetPixelIDValueAsString(pixel_id)}", str(path))
    if dtype is np.uint8:
        return "as_is", None
    if "cal_min" in keys and "cal_max" in keys:
        try:
            lo, hi = float(reader.GetMetaData(keys["cal_min"])), float(reader.GetMetaData(keys["cal_max"]))
        except ValueError:
            lo = hi = 0.0
        if hi > lo:
            return "declared_range", (lo, hi)
    if np.issubdtype(dtype, np.integer):
        limits = np.iinfo(dtype)
        return "type_range", (float(limits.min), float(limits.max))
    # A float image without a declared range is read whole for its range: that read is
    # bounded like any other, by what the header declares (x, y, frames, components, bytes).
    size = [int(n) for n in reader.GetSize()]
    get_decode_limits().check_read(
        int(np.prod(size[2:], dtype=np.int64)) if len(size) > 2 else 1, size[1], size[0],
        int(reader.GetNumberOfComponents()) * np.dtype(dtype).itemsize, path,
    )
    try:
        image = _image_reader(path).Execute()
    except RuntimeError as exc:
        raise CorruptFileError(f"unreadable pixel data: {_itk_cause(exc, path)}", str(path)) from exc
    values = sitk.GetArrayViewFromImage(image)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "image_range", (0.0, 1.0)
    return "image_range", (float(finite.min()), float(finite.max()))


def _read_span(reader, dimension: int, first: int, count: int, path: Path) -> np.ndarray:
    """Frames ``first .. first + count - 1`` as an array in ITK's numpy order (t, [1,] y, x[, c]).

    A negative ``dimension`` reads the whole image (every frame), whatever ``first`` and ``count``.
    """
    import SimpleITK as sitk

    size = list(reader.GetSize())
    if dimension < 0:
        try:
            array = sitk.GetArrayFromImage(reader.Execute())
        except RuntimeError as exc:
            raise CorruptFileError(f"cannot read the image: {_itk_cause(exc, path)}", str(path)) from exc
        return array if -dimension == 2 else array[first : first + count]
    if dimension == 3:
        reader.SetExtractIndex([0, 0, first])
        reader.SetExtractSize([size[0], size[1], count])
    elif dimension == 4:
        reader.SetExtractIndex([0, 0, 0, first])
        reader.SetExtractSize([size[0], size[1], 1, count])
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise CorruptFileError(
            f"cannot read frames {first}..{first + count - 1}: {_itk_cause(exc, path)}", str(path)
        ) from exc
    return sitk.GetArrayFromImage(image)


def _frames_last_axis(array: np.ndarray, dimension: int) -> np.ndarray:
    """(T, H, W, C) from ITK's numpy order, dropping an alpha component."""
    spatial = {2: 2, 3: 3, 4: 4}[dimension]
    if array.ndim == spatial:  # scalar pixels
        array = array[..., None]
    if dimension == 2:
        array = array[None]
    elif dimension == 4:
        array = array[:, 0]
    return array[..., :3]


def _to_uint8(array: np.ndarray, metadata: dict) -> np.ndarray:
    """Apply the file's intensity rule (see the module docstring)."""
    if metadata["intensity_rule"] == "as_is":
        return np.ascontiguousarray(array, dtype=np.uint8)
    lo, hi = metadata["intensity_window"]
    scaled = (np.nan_to_num(array.astype(np.float64), nan=lo) - lo) * (255.0 / max(hi - lo, 1e-12))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
