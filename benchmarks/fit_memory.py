"""Peak memory of a pretraining run whose manifest lists damaged and hostile files as ok.

Generates the embedded fetal sweeps (the demo's size), then writes two manifests: the clean
one, and the same plus training rows, all marked ``ok``, that cannot or must not be read: a
JPEG DICOM with broken frames, a truncated mp4, a DICOM too short for the pipeline, a
decompression bomb (a few kB of JPEG frames declaring 12000 x 12000 pixels each), a DICOM
whose header says 128 x 160 while its codestreams decode to 12000 x 12000, a FIFO and a link
to ``/dev/zero``. It runs the same short ``ultrassl fit`` on both, each in its own process
(2 DataLoader workers, as the shipped config), samples the proportional set size (PSS: shared
pages split between the processes that share them, so forked workers are not counted twice)
of the whole process tree every 0.1 s, and prints both peaks, their ratio, the floor of an
interpreter that only imports torch, Lightning and ultrassl, and the files the run listed as
replaced. Linux only (it reads ``/proc``)::

    python benchmarks/fit_memory.py                 # about 3 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from tests.data.clip_files import (  # noqa: E402
    dicom_broken_jpeg_fragment,
    dicom_jpeg_frames,
    mp4_truncated,
    write_dicom,
)
from ultrassl.data.indexing import index_folder  # noqa: E402
from ultrassl.data.manifest import write_manifest  # noqa: E402
from ultrassl.synth import synthesize_fetal_sweeps  # noqa: E402


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _pss_kib(pid: int) -> int:
    """PSS of one process in KiB (RSS where smaps_rollup is unavailable), 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        key = "Pss:"
    except OSError:
        try:
            text, key = Path(f"/proc/{pid}/status").read_text(), "VmRSS:"
        except OSError:
            return 0
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def tree_pss_kib(pid: int) -> int:
    """PSS of ``pid`` and all its descendants, KiB."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += _pss_kib(current)
        stack += _children(current)
    return total


def peak_memory(command: list[str], cwd: Path, log: Path) -> tuple[float, float, int]:
    """Run ``command``; returns (peak tree PSS in MiB, seconds, exit status)."""
    peak = 0
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
        done = threading.Event()

        def sample():
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_pss_kib(process.pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        done.set()
        sampler.join()
    return peak / 1024, time.perf_counter() - started, code


def damaged_rows(folder: Path) -> list[dict]:
    """Training rows, status ok, of files that cannot or must not be read."""
    folder.mkdir(parents=True, exist_ok=True)
    made = [
        ("broken_jpeg.dcm", lambda p: dicom_broken_jpeg_fragment(p, n_frames=24)),
        ("truncated.mp4", mp4_truncated),
        ("three_frames.dcm", lambda p: write_dicom(p, n_frames=3)),
        ("bomb.dcm", lambda p: dicom_jpeg_frames(p, (12000, 12000), n_frames=8)),
        ("understated_header.dcm", lambda p: dicom_jpeg_frames(p, (12000, 12000), header_size=(128, 160), n_frames=8)),
    ]
    rows = []
    for name, make in made:
        path = folder / name
        rows.append({**make(path), "path": str(path)})
    fifo, zero = folder / "fifo.dcm", folder / "zero.dcm"
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    for path in (fifo, zero):
        rows.append({**rows[2], "path": str(path), "n_frames": 64})
    return [{**row, "split": "train", "subject": f"DAMAGED_{i}"} for i, row in enumerate(rows)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of each fit (validation every 2)")
    args = parser.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="fit_memory_"))
    data = root / "fetal_sweeps"
    print(f"data and runs in {root}", flush=True)
    synthesize_fetal_sweeps(data)  # the demo's sweeps: 24 of 64 frames, 128 x 160
    clean = write_manifest(index_folder(data, annotations=data / "annotations.csv", progress=False),
                           data / "manifest.csv")
    table = pd.read_csv(clean, dtype=str, keep_default_na=False)
    for column in ("path", "frame_labels", "fixations"):
        table[column] = [str((data / p).resolve()) if p else p for p in table[column]]
    bad = pd.DataFrame(damaged_rows(root / "damaged")).astype(str)
    damaged = root / "damaged_manifest.csv"
    pd.concat([table, bad], ignore_index=True).to_csv(damaged, index=False)

    floor_mib, _, _ = peak_memory([sys.executable, "-c", "import torch, lightning, ultrassl.engine.cli"], root,
                                  root / "floor.log")
    results = {}
    for name, manifest in (("clean", clean), ("damaged", damaged)):
        run = root / f"run_{name}"
        command = [sys.executable, "-m", "ultrassl.cli", "fit", "-c", str(REPO / "configs/pretrain/order_geometry.yaml"),
                   f"--data.init_args.manifest={manifest}", f"--trainer.default_root_dir={run}",
                   f"--trainer.max_epochs={args.epochs}", "--trainer.enable_progress_bar=false",
                   "--data.init_args.bad_clips={max_bad_clips: 1000}"]
        results[name] = peak_memory(command, root, root / f"{name}.log")
        if results[name][2] != 0:
            sys.exit(f"the {name} fit failed: see {root / f'{name}.log'}")
    listed = next((root / "run_damaged").rglob("bad_clips.csv"))
    with open(listed, newline="") as handle:
        records = list(csv.DictReader(handle))
    skipped = sorted({Path(r["path"]).name for r in records})
    expected = sorted(Path(p).name for p in bad["path"])

    print(f"\nfit of configs/pretrain/order_geometry.yaml, {args.epochs} epochs, 2 DataLoader workers, "
          f"peak PSS of the process tree:")
    print(f"  {'manifest':<34} {'peak MiB':>9} {'seconds':>8}")
    print(f"  {'interpreter floor (imports only)':<34} {floor_mib:>9.0f}")
    for name, (mib, seconds, _) in results.items():
        print(f"  {name:<34} {mib:>9.0f} {seconds:>8.0f}")
    print(f"  damaged / clean peak: {results['damaged'][0] / results['clean'][0]:.2f}; "
          f"under 1 GiB: {results['damaged'][0] < 1024}")
    print(f"  replaced reads: {len(records)}; files listed: {', '.join(skipped)}")
    print(f"  exactly the damaged and hostile files: {skipped == expected}")


if __name__ == "__main__":
    main()
