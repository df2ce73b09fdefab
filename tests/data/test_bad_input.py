"""Broken files reach the loader as typed errors naming the file, fast, with or without workers.

Each kind of broken file is built at test time, listed in a manifest row made by hand (as if the
file broke after indexing: the row gives the facts of the good file), and read through
``ManifestDataset`` and a ``DataLoader``. The loader runs in a thread with a deadline, so a hang
fails the test instead of stalling the suite. The indexer must refuse every broken file too.
"""

from __future__ import annotations

import threading
import time
import traceback

import pandas as pd
import pytest
from torch.utils.data import DataLoader

from ultrassl.data.indexing import index_folder
from tests.data.clip_files import BROKEN_FILES, dicom_truncated_jpeg_fragment, write_video
from ultrassl.data.datasets import ManifestDataset
from ultrassl.errors import (
    ClipReadError,
    CorruptFileError,
    EmptyClipError,
    FileAccessError,
    FrameCountMismatchError,
    UnsupportedFormatError,
)
from ultrassl.transforms.io import LoadClipd
from ultrassl.transforms.temporal import SampleFramesd, UniformClipSampler

#: seconds a loader may take to report a broken file (worker start-up included)
DEADLINE_S = 20.0

EXPECTED = {
    "dicom_truncated_pixel_data": CorruptFileError,
    "dicom_missing_pixel_data": EmptyClipError,
    "dicom_frames_beyond_data": CorruptFileError,
    "dicom_garbage_after_preamble": CorruptFileError,
    "dicom_broken_jpeg_fragment": CorruptFileError,
    "dicom_unsupported_transfer_syntax": UnsupportedFormatError,
    "mp4_truncated": CorruptFileError,
    "mp4_truncated_index_first": CorruptFileError,
    "mp4_garbage": CorruptFileError,
    "mp4_zero_bytes": CorruptFileError,
    "mp4_audio_only": EmptyClipError,
    "avi_truncated": CorruptFileError,
    "mha_truncated": CorruptFileError,
    "mha_header_too_large": CorruptFileError,
    "nii_gz_corrupt": CorruptFileError,
    "manifest_frame_count_mismatch": FrameCountMismatchError,
    "missing_file": FileAccessError,
}
#: cases whose file is fine or absent: the manifest row is what is wrong
NOT_IN_FOLDER = {"manifest_frame_count_mismatch", "missing_file"}


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """The folder of broken files and a hand-made manifest row for each case."""
    root = tmp_path_factory.mktemp("broken")
    rows = {}
    for name, (filename, build) in BROKEN_FILES.items():
        path = root / filename
        rows[name] = {"path": str(path), **build(path)}
    elsewhere = tmp_path_factory.mktemp("fine")
    facts = write_video(elsewhere / "fine.mp4", n_frames=12)
    rows["manifest_frame_count_mismatch"] = {"path": str(elsewhere / "fine.mp4"), **facts, "n_frames": 20}
    rows["missing_file"] = {"path": str(elsewhere / "gone.mp4"), **facts}
    assert set(rows) == set(EXPECTED)
    return root, rows


def first_error(dataset, num_workers: int) -> tuple[BaseException | None, float]:
    """The exception raised by the first batch of ``dataset``, and the seconds it took."""
    loader = DataLoader(dataset, batch_size=1, num_workers=num_workers, timeout=DEADLINE_S if num_workers else 0)
    outcome: dict = {}

    def run():
        try:
            next(iter(loader))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            # The traceback's frames hold the loader's iterator; clearing them shuts its
            # workers down now rather than whenever the exception is collected.
            traceback.clear_frames(exc.__traceback__)
            outcome["error"] = exc

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), f"the loader did not answer within {DEADLINE_S} s"
    return outcome.get("error"), time.monotonic() - start


@pytest.mark.parametrize("num_workers, cache_info", [(0, True), (0, False), (2, True)])
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_loader_raises_the_typed_error_naming_the_file(broken, case, num_workers, cache_info):
    _, rows = broken
    row = rows[case]
    # Read every frame the manifest promises, so that damage anywhere in the file is met.
    chain = [SampleFramesd(UniformClipSampler(num_frames=row["n_frames"], random=False)), LoadClipd()]
    dataset = ManifestDataset(pd.DataFrame([row]), transform=chain, cache_info=cache_info)
    error, seconds = first_error(dataset, num_workers)
    assert error is not None, f"{case}: the broken file was read without an error"
    assert type(error) is EXPECTED[case], f"{case}: {type(error).__name__}: {error}"
    assert isinstance(error, ClipReadError)
    assert row["path"] in str(error)
    assert seconds < DEADLINE_S


@pytest.fixture(scope="module")
def indexed(broken):
    root, _ = broken
    return index_folder(root, progress=False)


@pytest.mark.parametrize("case", sorted(set(EXPECTED) - NOT_IN_FOLDER))
def test_indexer_refuses_each_broken_file(broken, indexed, case):
    _, rows = broken
    row = indexed[indexed["path"] == rows[case]["path"]]
    assert len(row) == 1, f"{case}: not indexed"
    assert row["status"].iloc[0] == "refused"
    assert row["error"].iloc[0].startswith(EXPECTED[case].__name__ + ": "), row["error"].iloc[0]


def test_index_run_covers_every_broken_file(broken, indexed):
    root, _ = broken
    assert len(indexed) == len(BROKEN_FILES)
    assert (indexed["status"] == "refused").all()


def test_a_truncated_jpeg_frame_is_not_decoded_silently(tmp_path):
    path = tmp_path / "truncated_jpeg.dcm"
    row = {"path": str(path), **dicom_truncated_jpeg_fragment(path)}
    chain = [SampleFramesd(UniformClipSampler(num_frames=row["n_frames"], random=False)), LoadClipd()]
    error, _ = first_error(ManifestDataset(pd.DataFrame([row]), transform=chain), num_workers=0)
    assert type(error) is CorruptFileError, f"{type(error).__name__}: {error}"
