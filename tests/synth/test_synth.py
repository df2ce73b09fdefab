"""The embedded data generators: determinism, real files, labels, gaze, geometry, motion pairs."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from ultrassl.synth import (
    BACKGROUND,
    MOTION_CLASSES,
    MOTION_PAIRS,
    PLANE_CLASSES,
    plan_fetal_sweeps,
    synthesize_fetal_sweeps,
    synthesize_motion,
)
from ultrassl.synth.bmode import ProbeGeometry

SWEEPS, FRAMES, SIZE, FPS = 4, 24, (128, 160), 25.0


def decode(path: Path) -> np.ndarray:
    """All frames of a sweep file as uint8 (T, H, W) grey, through pydicom or PyAV."""
    if path.suffix == ".dcm":
        import pydicom

        return pydicom.dcmread(path).pixel_array
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])


def sector_and_text(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image sector (the largest region that changes over the clip, as a filled convex hull)
    and burned-in text (bright pixels that do not change), bool (H, W) each."""
    frames = frames.astype(np.int16)
    spread = frames.max(axis=0) - frames.min(axis=0)
    text = (frames.min(axis=0) > 120) & (spread < 40)
    _, labels, stats, _ = cv2.connectedComponentsWithStats((spread > 20).astype(np.uint8))
    largest = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    hull = np.zeros(largest.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.argwhere(largest)[:, ::-1].astype(np.int32)), 1)
    return hull.astype(bool), text


def decode_rgb(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def decode_audio(path: Path) -> tuple[np.ndarray, int, str]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
        return samples, stream.rate, stream.codec_context.name


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("sweeps")
    table = synthesize_fetal_sweeps(out, n_sweeps=SWEEPS, n_frames=FRAMES, size=SIZE, fps=FPS, seed=0, workers=1)
    return out, table


@pytest.fixture(scope="module")
def motion(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("motion")
    table = synthesize_motion(out, n_per_class=2, n_frames=16, size=(48, 48), seed=0, clips_per_group=1)
    return out, table


# ------------------------------------------------------------------------------------------ sweeps


def test_same_seed_gives_same_pixels_labels_and_gaze(sweeps, tmp_path):
    out, table = sweeps
    # a second run, in two processes this time: the output must not depend on it
    again = synthesize_fetal_sweeps(tmp_path, n_sweeps=SWEEPS, n_frames=FRAMES, size=SIZE, fps=FPS, seed=0,
                                    workers=2)
    pd.testing.assert_frame_equal(table, again)
    for row in table.itertuples():
        np.testing.assert_array_equal(decode(out / row.path), decode(tmp_path / row.path))
        for column in ("frame_labels", "fixations"):
            pd.testing.assert_frame_equal(pd.read_csv(out / getattr(row, column)),
                                          pd.read_csv(tmp_path / getattr(row, column)))


def test_another_seed_gives_other_sweeps(sweeps, tmp_path):
    out, table = sweeps
    other = synthesize_fetal_sweeps(tmp_path, n_sweeps=2, n_frames=FRAMES, size=SIZE, fps=FPS, seed=1, workers=1)
    for row in other.itertuples():
        a, b = decode(out / row.path), decode(tmp_path / row.path)
        assert a.shape == b.shape
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 5
    labels_0 = [pd.read_csv(out / p).plane.tolist() for p in table.frame_labels[:2]]
    labels_1 = [pd.read_csv(tmp_path / p).plane.tolist() for p in other.frame_labels]
    assert labels_0 != labels_1


def test_files_alternate_formats_and_read_back(sweeps):
    import av

    out, table = sweeps
    assert [Path(p).suffix for p in table.path] == [".dcm", ".mp4", ".dcm", ".mp4"]
    for row in table.itertuples():
        frames = decode(out / row.path)
        assert frames.shape == (FRAMES, *SIZE) and frames.dtype == np.uint8
        if row.path.endswith(".mp4"):
            with av.open(str(out / row.path)) as container:
                stream = container.streams.video[0]
                assert stream.codec_context.name == "h264"
                assert stream.codec_context.pix_fmt == "yuv420p"
                assert float(stream.average_rate) == pytest.approx(FPS)
            rgb = decode_rgb(out / row.path).astype(int)
            # grey content: the three channels agree up to chroma rounding
            assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() < 2


def test_project_reader_reads_the_sweeps_and_motion_clips(sweeps, motion):
    from ultrassl.io import read_clip

    out, table = sweeps
    for row in table.itertuples():
        clip = read_clip(out / row.path, expected_n_frames=FRAMES)
        assert clip.frames.shape[:3] == (FRAMES, *SIZE) and clip.fps == pytest.approx(FPS)
        grey = clip.frames.astype(int).mean(axis=-1)
        assert np.abs(grey - decode(out / row.path)).max() <= 2
        if row.path.endswith(".dcm"):
            import pydicom

            delta_cm = pydicom.dcmread(out / row.path, stop_before_pixels=True).SequenceOfUltrasoundRegions[0]
            assert clip.spacing_mm == pytest.approx((10 * delta_cm.PhysicalDeltaY, 10 * delta_cm.PhysicalDeltaX))
    out, table = motion
    clip = read_clip(out / table.path[0], with_audio=True)
    assert clip.frames.shape == (16, 48, 48, 3) and clip.audio is not None and clip.audio_sample_rate == 16000
    assert np.sqrt(np.mean(clip.audio**2)) > 0.05


def test_dicom_header_is_a_calibrated_ultrasound_cine(sweeps):
    import pydicom
    from pydicom.uid import JPEGBaseline8Bit, UltrasoundMultiFrameImageStorage

    out, table = sweeps
    ds = pydicom.dcmread(out / table.path[0])
    assert ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert ds.SOPClassUID == UltrasoundMultiFrameImageStorage == ds.file_meta.MediaStorageSOPClassUID
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.Modality == "US" and ds.PhotometricInterpretation == "MONOCHROME2"
    assert (ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation) == (1, 8, 8, 0)
    assert int(ds.NumberOfFrames) == FRAMES and (ds.Rows, ds.Columns) == SIZE
    assert float(ds.FrameTime) == pytest.approx(1000 / FPS) and int(ds.CineRate) == FPS
    assert ds.LossyImageCompression == "01" and ds.BurnedInAnnotation == "YES"
    assert str(ds.PatientName) == "SYNTH^PHANTOM" and ds.PatientID == "SYNTH0001" and ds.StudyDate

    (region,) = ds.SequenceOfUltrasoundRegions
    assert region.RegionSpatialFormat == 1
    assert region.PhysicalUnitsXDirection == 3 and region.PhysicalUnitsYDirection == 3  # cm
    assert region.PhysicalDeltaX == pytest.approx(region.PhysicalDeltaY)
    # the calibration matches the simulated probe: 8-12 cm deep fan, 4 cm probe radius
    rows = region.RegionLocationMaxY1 - region.RegionLocationMinY0 + 1
    depth_cm = rows * region.PhysicalDeltaY - 4.0 * (1 - np.cos(np.deg2rad(35)))
    assert 5.5 < depth_cm < 12.5
    sector, _ = sector_and_text(ds.pixel_array)
    ys, xs = np.nonzero(sector)
    assert region.RegionLocationMinX0 - 1 <= xs.min() and xs.max() <= region.RegionLocationMaxX1 + 1
    assert region.RegionLocationMinY0 - 1 <= ys.min() and ys.max() <= region.RegionLocationMaxY1 + 1


def test_sector_is_a_fan_and_burned_in_text_lies_outside(sweeps):
    out, table = sweeps
    frames = decode(out / table.path[0])
    hull, text = sector_and_text(frames)
    assert text.sum() > 100, "burned-in text is missing"
    assert not (text & hull).any(), "burned-in text overlaps the sector"

    # fan: the sector widens linearly with depth along two edges at +-35 degrees
    rows = np.nonzero(hull.any(axis=1))[0]
    top, bottom = rows.min(), rows.max()
    band = np.arange(top + 3, top + int(0.6 * (bottom - top)))
    left = np.array([np.nonzero(hull[r])[0].min() for r in band])
    right = np.array([np.nonzero(hull[r])[0].max() for r in band])
    slope_left, slope_right = np.polyfit(band, left, 1)[0], np.polyfit(band, right, 1)[0]
    opening = np.degrees(np.arctan(-slope_left) + np.arctan(slope_right))
    assert opening == pytest.approx(70, abs=6)
    assert np.abs((left + right) / 2 - (SIZE[1] - 1) / 2).max() < 3  # symmetric about the centre
    assert (right - left)[-1] > 2 * (right - left)[0]
    # black outside the sector (apart from the text)
    near_text = cv2.dilate(text.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    outside = ~cv2.dilate(hull.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~near_text
    assert np.percentile(frames[:, outside], 99) <= 30


def test_every_plane_appears_in_the_default_set_and_each_sweep_mixes_planes():
    plans = plan_fetal_sweeps(seed=0)  # the default set: 24 sweeps x 64 frames, labels only
    seen = {label for plan in plans for label in plan.labels}
    assert seen == set(PLANE_CLASSES)
    for plan in plans:
        labels = set(plan.labels)
        assert BACKGROUND in labels and len(labels) >= 2, plan.index


def test_a_frame_counts_as_a_plane_only_within_its_tolerance_and_background_lies_on_both_sides():
    from ultrassl.synth.fetal_sweep import plane_offsets

    plans = plan_fetal_sweeps(seed=0)
    offsets = np.concatenate([plane_offsets(plan) for plan in plans])
    labels = np.array([label for plan in plans for label in plan.labels])
    assert offsets.shape == labels.shape
    assert (offsets[labels != BACKGROUND] <= 1.0).all()
    background = offsets[labels == BACKGROUND]
    # Background right next to a plane (what detectors confuse), and far from every plane
    assert ((background > 1.0) & (background <= 2.0)).any() and (background > 3.0).any()


def test_plane_labels_follow_the_anatomy(sweeps):
    out, table = sweeps
    assert (out / "planes.txt").read_text().split("\n")[:-1] == list(PLANE_CLASSES)
    assert PLANE_CLASSES[0] == BACKGROUND and len(PLANE_CLASSES) == 14
    for row in table.itertuples():
        labels = pd.read_csv(out / row.frame_labels)
        assert labels.frame.tolist() == list(range(FRAMES))
        assert set(labels.plane) <= set(PLANE_CLASSES)
        assert BACKGROUND in set(labels.plane) and len(set(labels.plane)) >= 2
    # sweep 0 runs from the head to the legs: planes come in cranio-caudal order
    planes = pd.read_csv(out / table.frame_labels[0]).plane.tolist()
    order = [planes.index(p) for p in ("Brain (Tv.)", "4CH", "Abdominal", "Femur") if p in planes]
    assert len(order) >= 3 and order == sorted(order)
    # sweep 2 goes across the face in sagittal planes
    assert set(pd.read_csv(out / table.frame_labels[2]).plane) <= {BACKGROUND, "Profile", "Spine (sag.)"}


def test_fixations_lie_in_the_sector(sweeps):
    out, table = sweeps
    plans = plan_fetal_sweeps(SWEEPS, FRAMES, SIZE, seed=0)
    for row, plan in zip(table.itertuples(), plans):
        fan = plan.geometry.fan_mask()
        fixations = pd.read_csv(out / row.fixations)
        assert list(fixations.columns) == ["frame", "x", "y"]
        assert fixations.frame.between(0, FRAMES - 1).all()
        per_frame = fixations.groupby("frame").size()
        assert per_frame.max() <= 3 and len(per_frame) >= FRAMES // 2
        inside = fan[np.rint(fixations.y).astype(int), np.rint(fixations.x).astype(int)]
        assert inside.all()
        # gaze rests on anatomy, which is brighter than the fluid around the fetus
        frames = decode(out / row.path)
        grey = frames[fixations.frame, np.rint(fixations.y).astype(int), np.rint(fixations.x).astype(int)]
        assert np.median(grey) > np.median(frames[:, fan]) + 10


def test_annotations_hold_out_whole_subjects(sweeps, tmp_path):
    out, table = sweeps
    on_disk = pd.read_csv(out / "annotations.csv")
    assert list(on_disk.columns) == ["path", "subject", "split", "frame_labels", "fixations"]
    pd.testing.assert_frame_equal(on_disk, table)
    for row in table.itertuples():
        assert (out / row.path).is_file() and (out / row.frame_labels).is_file() and (out / row.fixations).is_file()
        assert Path(row.frame_labels).name == Path(row.path).stem + ".planes.csv"
    assert table.groupby("subject").split.nunique().eq(1).all()
    assert set(table.split) == {"train", "val"}
    big = plan_fetal_sweeps(seed=0)
    assert len({p.subject.index for p in big}) == 8  # 24 sweeps, 3 per subject


def test_geometry_maps_beam_samples_into_the_fan():
    geometry = ProbeGeometry.fit(SIZE, depth_cm=9.0)
    lateral, depth = geometry.probe_plane_coordinates()
    x, y = geometry.to_pixels(lateral, depth)
    fan = geometry.fan_mask()
    assert fan[np.clip(np.rint(y), 0, SIZE[0] - 1).astype(int), np.clip(np.rint(x), 0, SIZE[1] - 1).astype(int)].mean() > 0.97
    x0, y0, x1, y1 = geometry.region_bounds()
    assert (y1 - y0 + 1) * geometry.spacing_cm == pytest.approx(9.0 + 4.0 * (1 - np.cos(np.deg2rad(35))), abs=0.25)


# ------------------------------------------------------------------------------------------ motion


def test_motion_split_files_follow_ucf101(motion):
    out, table = motion
    class_ind = [line.split(" ") for line in (out / "splits/classInd.txt").read_text().splitlines()]
    assert [int(i) for i, _ in class_ind] == list(range(1, len(MOTION_CLASSES) + 1))
    index = {name: int(i) for i, name in class_ind}
    assert list(index) == list(MOTION_CLASSES)
    pattern = re.compile(r"^(\w+)/v_(\w+)_g(\d\d)_c(\d\d)\.mp4$")
    train_groups, test_groups = set(), set()
    for line in (out / "splits/trainlist01.txt").read_text().splitlines():
        path, label = line.split(" ")
        m = pattern.match(path)
        assert m and m.group(1) == m.group(2) and index[m.group(1)] == int(label)
        assert (out / "videos" / path).is_file()
        train_groups.add((m.group(1), m.group(3)))
    for line in (out / "splits/testlist01.txt").read_text().splitlines():
        m = pattern.match(line)
        assert m and " " not in line and (out / "videos" / line).is_file()
        test_groups.add((m.group(1), m.group(3)))
    assert train_groups and test_groups and not train_groups & test_groups
    assert len(table) == 2 * len(MOTION_CLASSES)
    assert (table.label.map(lambda i: MOTION_CLASSES[i]) == table.class_name).all()


def _object_track(frames: np.ndarray) -> np.ndarray:
    """Centroid x, y and area of what differs from the (median) background, per frame."""
    frames = frames.astype(np.float32)
    moving = np.abs(frames - np.median(frames, axis=0)).sum(axis=-1) > 60
    track = []
    for mask in moving:
        ys, xs = np.nonzero(mask)
        track.append((xs.mean(), ys.mean(), mask.sum()) if len(xs) else (np.nan, np.nan, 0))
    return np.array(track)


def _trend(values: np.ndarray) -> float:
    ok = np.isfinite(values)
    return float(np.polyfit(np.nonzero(ok)[0], values[ok], 1)[0])


def _rotation(frames: np.ndarray) -> float:
    """Mean angular velocity sign of the object (> 0 clockwise on screen), from optical flow."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    track = _object_track(frames)
    curl = []
    for t in range(len(grey) - 1):
        flow = cv2.calcOpticalFlowFarneback(grey[t], grey[t + 1], None, 0.5, 2, 9, 3, 5, 1.1, 0)
        ys, xs = np.mgrid[0 : flow.shape[0], 0 : flow.shape[1]]
        rx, ry = xs - track[t, 0], ys - track[t, 1]
        near = rx**2 + ry**2 < (0.6 * np.sqrt(max(track[t, 2], 1) / np.pi)) ** 2
        curl.append((rx * flow[..., 1] - ry * flow[..., 0])[near].mean())
    return float(np.mean(curl))


def test_motion_pairs_are_time_reversals(motion):
    out, table = motion
    measure = {
        ("Expanding", "Contracting"): lambda f: _trend(_object_track(f)[:, 2]),
        ("MoveLeft", "MoveRight"): lambda f: -_trend(_object_track(f)[:, 0]),
        ("MoveUp", "MoveDown"): lambda f: -_trend(_object_track(f)[:, 1]),
        ("RotateClockwise", "RotateAnticlockwise"): _rotation,
    }
    assert set(measure) == set(MOTION_PAIRS)
    for (forward, backward), fn in measure.items():
        for path in table.path[table.class_name == forward]:
            frames = decode_rgb(out / path)
            assert fn(frames) > 0, path
            assert fn(frames[::-1]) < 0, path  # played backwards it moves like the other class
        for path in table.path[table.class_name == backward]:
            frames = decode_rgb(out / path)
            assert fn(frames) < 0 and fn(frames[::-1]) > 0, path


def _pitch(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def test_motion_clips_carry_aligned_audio(motion):
    out, table = motion
    for row in table.itertuples():
        samples, rate, codec = decode_audio(out / row.path)
        assert codec == "aac" and rate == 16000
        assert len(samples) >= 0.9 * 16 / 25 * rate
        assert np.sqrt(np.mean(samples**2)) > 0.05
        if row.class_name in ("Expanding", "Contracting"):
            quarter = len(samples) // 4
            rise = _pitch(samples[-quarter:], rate) - _pitch(samples[:quarter], rate)
            assert rise > 0 if row.class_name == "Expanding" else rise < 0, row.path


def test_motion_is_deterministic(motion, tmp_path):
    out, table = motion
    again = synthesize_motion(tmp_path, n_per_class=2, n_frames=16, size=(48, 48), seed=0, clips_per_group=1)
    pd.testing.assert_frame_equal(table, again)
    for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
        assert (out / "splits" / name).read_text() == (tmp_path / "splits" / name).read_text()
    for path in table.path[::5]:
        np.testing.assert_array_equal(decode_rgb(out / path), decode_rgb(tmp_path / path))
        np.testing.assert_array_equal(decode_audio(out / path)[0], decode_audio(tmp_path / path)[0])
    synthesize_motion(tmp_path / "other", n_per_class=1, n_frames=16, size=(48, 48), seed=1)
    first = table.path[0]
    assert np.abs(decode_rgb(out / first).astype(int) - decode_rgb(tmp_path / "other" / first).astype(int)).mean() > 5
