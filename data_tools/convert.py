"""``ultrassl data convert``: cine loops to mp4 or MHA, keeping frame rate and pixel spacing.

Any clip the readers open (DICOM cine, MHA/NIfTI, video, a folder of frames) is written as
H.264 mp4 (PyAV) or MHA (SimpleITK). What travels is the frames, the frame rate and the pixel
spacing, nothing of the source header: a DICOM's patient, dates and institution never reach
the output, and the output is named after the source file, not after anything inside it. In
an mp4 the spacing is the ``comment`` tag ``ultrassl spacing_mm=<row>,<col>`` (the video
reader reads it back); in an MHA it is the image spacing, and the frame rate the
``FrameRate`` header key (the ITK reader reads both).

Burned-in text is pixels: by default everything outside the scan sector is blanked
(:class:`~ultrassl.transforms.ultrasound.LoopSector`, as training masks it) so that no burned-in
name crosses into the output; ``keep_outside_sector`` keeps every pixel.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ultrassl.errors import ClipReadError
from ultrassl.io import probe_clip, read_clip

FORMATS = {"mp4": ".mp4", "mha": ".mha"}
#: frames read at once while converting
CHUNK_FRAMES = 64


@dataclass(frozen=True)
class Converted:
    """One conversion: the source, the output written (None when it failed) and the error."""

    source: str
    output: str | None
    error: str = ""


def convert_clip(source: str | os.PathLike, output: str | os.PathLike, to: str,
                 keep_outside_sector: bool = False) -> Path:
    """Write the clip ``source`` as ``to`` (``"mp4"`` or ``"mha"``) at ``output``; returns it.

    Raises:
        ClipReadError: (a subclass) the source cannot be read.
        ValueError: an unknown target format.
    """
    if to not in FORMATS:
        raise ValueError(f"convert to one of {sorted(FORMATS)}, got {to!r}")
    info = probe_clip(source)
    frames = np.concatenate([read_clip(source, list(range(start, min(start + CHUNK_FRAMES, info.n_frames))),
                                       info=info).frames
                             for start in range(0, info.n_frames, CHUNK_FRAMES)])
    if not keep_outside_sector:
        from ultrassl.transforms.ultrasound import LoopSector

        sector = LoopSector(16)(str(source), info)
        frames = np.where(sector[None, :, :, None], frames, 0).astype(np.uint8)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.partial{output.suffix}")
    try:
        if to == "mp4":
            _write_mp4(temporary, frames, info.fps, info.spacing_mm)
        else:
            _write_mha(temporary, frames, info.fps, info.spacing_mm)
        os.replace(temporary, output)  # a kill never leaves half an output under its name
    finally:
        temporary.unlink(missing_ok=True)
    return output


def _write_mp4(path: Path, frames: np.ndarray, fps: float | None, spacing: tuple[float, float] | None) -> None:
    from ultrassl.io.video import spacing_tag
    from ultrassl.synth.writers import write_mp4

    # H.264's 4:2:0 needs even sizes: pad one black row or column rather than drop image
    height, width = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)))
    if frames.shape[-1] == 1:
        frames = frames[..., 0]
    write_mp4(path, frames, fps or 25.0, tags={"comment": spacing_tag(spacing)} if spacing else None)


def _write_mha(path: Path, frames: np.ndarray, fps: float | None, spacing: tuple[float, float] | None) -> None:
    import SimpleITK as sitk

    colour = frames.shape[-1] == 3
    image = sitk.GetImageFromArray(frames if colour else frames[..., 0], isVector=colour)
    row, col = spacing or (1.0, 1.0)
    image.SetSpacing((float(col), float(row), 1.0))  # ITK order x, y, frame
    if fps:
        image.SetMetaData("FrameRate", f"{float(fps):.6g}")
    sitk.WriteImage(image, str(path), useCompression=True)


def convert_folder(root: str | os.PathLike, out: str | os.PathLike, to: str, keep_outside_sector: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> list[Converted]:
    """Convert every clip under ``root`` (the indexer's walk) into ``out``, keeping the folder
    layout (``a/b/loop.dcm`` -> ``out/a/b/loop.mp4``); a clip that fails is recorded, not fatal.
    Outputs already converted (newer than their source) are kept, so a killed run resumes."""
    from ultrassl.data.indexing import find_clips

    root, out = Path(root), Path(out)
    sources = find_clips(root)[0] if root.is_dir() else [str(root)]
    done: list[Converted] = []
    for count, source in enumerate(sources, start=1):
        relative = Path(source).relative_to(root) if root.is_dir() else Path(Path(source).name)
        name = relative.name[: -len(".nii.gz")] if relative.name.lower().endswith(".nii.gz") else relative.stem
        target = out / relative.parent / f"{name}{FORMATS[to]}"
        if target.is_file() and target.stat().st_mtime >= Path(source).stat().st_mtime:
            done.append(Converted(source, str(target)))
        else:
            try:
                done.append(Converted(source, str(convert_clip(source, target, to, keep_outside_sector))))
            except ClipReadError as exc:
                done.append(Converted(source, None, f"{type(exc).__name__}: {exc.cause}"))
        if progress is not None:
            progress(count, len(sources))
    return done
