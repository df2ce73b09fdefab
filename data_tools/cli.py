"""``ultrassl data ...``: index (and fully verify) folders into manifests, verify a manifest's
clips again, split them by patient, de-identify DICOM exports, pack clips into streaming
shards, convert clips to mp4 or MHA, and generate the simulated data sets.

The ``ultrassl`` command finds :func:`main` through the ``ultrassl.commands`` entry point
declared in ``pyproject.toml``; this package imports ``ultrassl``, never the reverse.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from ultrassl.errors import UltrasslError


class UsageError(Exception):
    """Bad command-line arguments."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block: see main()
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _add_index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=1, help="processes reading files in parallel (default 1)")
    parser.add_argument(
        "--verify", choices=("none", "sample", "full"), default="sample",
        help="how much of each clip to decode: 'sample' (default) its first, middle and last frames, which "
             "catches truncated files; 'full' every frame, which also finds damage in the middle of a loop "
             "(as slow as reading the archive once); 'none' headers only",
    )
    parser.add_argument("--no-validate", dest="verify", action="store_const", const="none",
                        help="the same as --verify none")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    parser.add_argument(
        "--max-frame-pixels", type=int, metavar="N",
        help="refuse files whose frames declare more than N pixels, before decoding "
             "(default 16777216, i.e. 4096 x 4096; also ULTRASSL_MAX_FRAME_PIXELS)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ultrassl data", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    index = commands.add_parser(
        "index",
        help="index a folder of clips into a manifest CSV",
        description=(
            "Walk ROOT, read every clip's header, decode a few frames of each, and write a manifest "
            "(one row per clip, status ok or refused) plus '<manifest stem>.refused.csv' beside it."
        ),
    )
    index.add_argument("root", type=Path, metavar="ROOT", help="folder to index")
    index.add_argument("-o", "--output", type=Path, required=True, help="manifest CSV to write")
    index.add_argument(
        "--annotations", type=Path,
        help="CSV with a 'path' column (relative to ROOT) and columns to merge (label, split, subject, ...)",
    )
    index.add_argument(
        "--layout", choices=("ucf101", "hmdb51"),
        help="take labels and splits from the official split files in --split-dir (labels 0-based)",
    )
    index.add_argument("--split-dir", type=Path, help="folder of the official split files (with --layout)")
    index.add_argument("--fold", type=int, default=1, choices=(1, 2, 3), help="official split fold (default 1)")
    _add_index_arguments(index)

    split = commands.add_parser(
        "split",
        help="assign train/val/test by patient or study (never one in two splits), into the manifest",
        description=(
            "Write a split column into MANIFEST: whole groups (the --by column: patient or study) go to train, "
            "val or test, stratified by label where the manifest has labels, reproducibly by --seed. Refused "
            "rows get no split."
        ),
    )
    split.add_argument("manifest", type=Path, metavar="MANIFEST", help="manifest CSV to split")
    split.add_argument("--by", default="subject", help="column naming each clip's patient or study (default subject)")
    split.add_argument("--fractions", type=float, nargs=3, default=(0.7, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"),
                       help="shares of the groups (default 0.7 0.15 0.15)")
    split.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    split.add_argument("--stratify", default="label", help="label column to stratify by; 'none' to not (default label)")
    split.add_argument("--column", default="split", help="column to write (default split)")
    split.add_argument("-o", "--output", type=Path, help="write here instead of replacing MANIFEST")
    split.add_argument("--overwrite", action="store_true", help="replace a split column that already has values")

    deid = commands.add_parser(
        "deid",
        help="de-identify DICOM files: header (PS3.15 Basic Profile, keyed) and burned-in pixels",
        description=(
            "Write a de-identified copy of every DICOM file under IN into OUT/<patient>/<study>/<instance>.dcm: "
            "the PS3.15 Basic Application Level Confidentiality Profile with the Retain Longitudinal Temporal "
            "Information with Modified Dates option (dicognito, keyed: the same key gives the same pseudonyms, "
            "UIDs and date shifts in every run), private tags removed, pixels outside the ultrasound regions (or "
            "the detected sector) zeroed. Files that cannot be cleaned go to the quarantine folder with their "
            "reason. A rerun resumes. Exits 1 when a file was quarantined."
        ),
    )
    deid.add_argument("source", type=Path, metavar="IN", help="a DICOM file or a folder of them")
    deid.add_argument("out", type=Path, metavar="OUT", help="output folder")
    deid.add_argument("--key-file", type=Path,
                      help="file holding the secret key (else the ULTRASSL_DEID_KEY environment variable)")
    deid.add_argument("--quarantine", type=Path, help="folder for files that cannot be cleaned (default OUT_quarantine)")
    deid.add_argument("--map", type=Path, dest="map_file",
                      help="write the original -> pseudonym patient IDs here (never written otherwise)")
    deid.add_argument("--quiet", action="store_true", help="no progress bar")

    convert = commands.add_parser(
        "convert",
        help="convert clips (DICOM cine, MHA/NIfTI, video, frame folders) to mp4 or MHA",
        description=(
            "Write IN (a clip, or every clip under a folder, keeping its layout) into OUT as mp4 or MHA, keeping "
            "the frame rate and the pixel spacing and nothing of the source header. Outside the scan sector is "
            "blanked unless --keep-outside-sector. Exits 1 when a clip could not be converted."
        ),
    )
    convert.add_argument("source", type=Path, metavar="IN", help="a clip or a folder of clips")
    convert.add_argument("out", type=Path, metavar="OUT", help="output folder")
    convert.add_argument("--to", required=True, choices=("mp4", "mha"))
    convert.add_argument("--keep-outside-sector", action="store_true",
                         help="keep the pixels outside the scan sector (where scanners burn in patient details)")
    convert.add_argument("--quiet", action="store_true", help="no progress bar")

    verify = commands.add_parser(
        "verify",
        help="decode a manifest's ok clips again (every frame by default); damaged ones become refused rows",
        description=(
            "Read every ok clip of MANIFEST (any format, packed clips included: their checksums too) and mark "
            "the ones that fail refused, with the reason, in MANIFEST (or --output). Use it after copying an "
            "archive or a pack. Exits 1 when a clip was refused."
        ),
    )
    verify.add_argument("manifest", type=Path, metavar="MANIFEST", help="manifest CSV to check")
    verify.add_argument("--level", choices=("sample", "full"), default="full",
                        help="'full' (default) decodes every frame; 'sample' the first, middle and last")
    verify.add_argument("-o", "--output", type=Path, help="write here instead of updating MANIFEST")
    verify.add_argument("--quiet", action="store_true", help="no progress bar")

    pack = commands.add_parser(
        "pack",
        help="decode a manifest's clips once into WebDataset tar shards, with a manifest of the packed clips",
        description=(
            "Decode every ok clip of MANIFEST once and write its frames, timing, spacing, audio and annotations "
            "into tar shards under OUT/shards (WebDataset's layout), then OUT/manifest.csv naming the packed "
            "clips: train with it in place of MANIFEST. --part i/N packs one of N slices (one task of a job "
            "array); the last part to finish writes OUT/manifest.csv. Rerunning skips finished parts."
        ),
    )
    pack.add_argument("manifest", type=Path, metavar="MANIFEST", help="manifest CSV of the clips to pack")
    pack.add_argument("out", type=Path, metavar="OUT", help="pack folder")
    pack.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                      help="resize frames to this size (default: keep each clip's size, which gives the same "
                           "training batches as the source files)")
    pack.add_argument("--part", default="0/1", metavar="i/N", help="pack the i-th (0-based) of N slices (default 0/1)")
    pack.add_argument("--shard-mb", type=float, default=1024.0, help="start a new shard past this many MB (default 1024)")
    pack.add_argument("--quiet", action="store_true", help="no progress bar")

    synth = commands.add_parser(
        "synth",
        help="generate a simulated data set and index it into OUT/manifest.csv",
        description=(
            "fetal-sweep: simulated fetal-ultrasound sweeps with plane labels and gaze fixations; "
            "motion: small natural-video-like action clips in the UCF101 layout with split files."
        ),
    )
    synth.add_argument("out", type=Path, metavar="OUT", help="output folder")
    synth.add_argument("--kind", required=True, choices=("fetal-sweep", "motion"))
    synth.add_argument("--n", type=int, help="sweeps (fetal-sweep) or clips per class (motion)")
    synth.add_argument("--frames", type=int, help="frames per clip")
    synth.add_argument("--seed", type=int, help="random seed")
    _add_index_arguments(synth)
    return parser


def _index(args, root: Path, manifest_path: Path, annotations=None, match: str = "path") -> int:
    from ultrassl.data.indexing import index_folder, summary, write_index

    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.max_frame_pixels is not None:
        if args.max_frame_pixels < 1:
            raise UsageError(f"--max-frame-pixels must be >= 1, got {args.max_frame_pixels}")
        # through the environment, so that the indexing worker processes apply it too
        os.environ["ULTRASSL_MAX_FRAME_PIXELS"] = str(args.max_frame_pixels)
    manifest = index_folder(
        root, annotations=annotations, match=match, workers=args.workers,
        validate=args.verify, progress=not args.quiet,
    )
    manifest_path, refused = write_index(manifest, manifest_path)
    if not args.quiet:
        print(summary(manifest))
        print(f"manifest: {manifest_path}")
        print(f"refused:  {refused}")
    return 0


def _run_index(args) -> int:
    from ultrassl.data.splits import hmdb51_annotations, ucf101_annotations

    if not args.root.exists():
        raise UsageError(f"ROOT {str(args.root)!r} does not exist")
    if args.layout is not None:
        if args.annotations is not None:
            raise UsageError("give either --annotations or --layout, not both")
        if args.split_dir is None:
            raise UsageError(f"--layout {args.layout} needs --split-dir")
        parse = ucf101_annotations if args.layout == "ucf101" else hmdb51_annotations
        return _index(args, args.root, args.output, parse(args.split_dir, args.fold), match="stem")
    if args.split_dir is not None:
        raise UsageError("--split-dir is only used with --layout")
    return _index(args, args.root, args.output, args.annotations)


def _run_split(args) -> int:
    from ultrassl.data.manifest import read_manifest, write_manifest
    from ultrassl.data.patient_split import split_by_group

    table = read_manifest(args.manifest, status=None)
    if args.column in table.columns and (table[args.column].astype(str).str.strip() != "").any() and not args.overwrite:
        raise UsageError(f"{args.manifest} already has values in {args.column!r}; --overwrite replaces them")
    ok = table["status"] == "ok"
    assigned, report = split_by_group(table[ok], args.by, args.fractions, args.seed,
                                      None if args.stratify == "none" else args.stratify, str(args.manifest))
    table[args.column] = ""
    table.loc[ok, args.column] = assigned
    out = write_manifest(table, args.output or args.manifest)
    print(f"split by {args.by!r} (seed {args.seed}" + (f", stratified by {args.stratify!r}" if report.labels else "")
          + "):")
    for line in report.lines():
        print("  " + line)
    print(f"manifest: {out}")
    return 0


def _run_deid(args) -> int:
    from tqdm import tqdm

    from data_tools.deid import deidentify
    from ultrassl.data.indexing import find_clips
    from ultrassl.io import get_reader

    if not args.source.exists():
        raise UsageError(f"IN {str(args.source)!r} does not exist")
    key = args.key_file.read_text().strip() if args.key_file else os.environ.get("ULTRASSL_DEID_KEY", "")
    if not key:
        raise UsageError("give the secret key with --key-file FILE or ULTRASSL_DEID_KEY (not on the command line, "
                         "where shell history keeps it)")
    candidates = find_clips(args.source)[0]
    sources = []
    for path in candidates:
        try:
            if get_reader(path).name == "dicom":
                sources.append(path)
        except UltrasslError:
            continue
    with tqdm(total=len(sources), unit="file", disable=args.quiet, leave=False) as bar:
        results = deidentify(sources, args.out, key, args.quarantine, args.map_file,
                             progress=lambda done: bar.update(done - bar.n))
    quarantined = [r for r in results if r.quarantined]
    written = sum(1 for r in results if r.output and not r.skipped)
    skipped = sum(1 for r in results if r.skipped)
    print(f"de-identified {written} files into {args.out}" + (f" ({skipped} already there)" if skipped else ""))
    if quarantined:
        print(f"quarantined {len(quarantined)} files that cannot be cleaned safely: see "
              f"{Path(quarantined[0].quarantined).parent / 'reasons.csv'}")
    return 1 if quarantined else 0


@contextlib.contextmanager
def _clip_progress(quiet: bool):
    """A progress bar of clips and the ``progress(done, total)`` callback that moves it."""
    from tqdm import tqdm

    with tqdm(total=None, unit="clip", disable=quiet, leave=False) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield progress


def _run_convert(args) -> int:

    from data_tools.convert import convert_folder

    if not args.source.exists():
        raise UsageError(f"IN {str(args.source)!r} does not exist")
    with _clip_progress(args.quiet) as progress:
        results = convert_folder(args.source, args.out, args.to, args.keep_outside_sector, progress)
    failed = [r for r in results if r.output is None]
    print(f"converted {len(results) - len(failed)} of {len(results)} clips to {args.to} in {args.out}")
    for result in failed:
        print(f"  not converted: {result.source}: {result.error}")
    return 1 if failed else 0


def _run_verify(args) -> int:
    from tqdm import tqdm

    from ultrassl.data.indexing import index_file
    from ultrassl.data.manifest import read_manifest, write_manifest

    table = read_manifest(args.manifest, status=None)
    ok = table.index[table["status"] == "ok"]
    refused = []
    for position in tqdm(ok, unit="clip", disable=args.quiet, leave=False):
        path = table.at[position, "path"]
        checked = index_file(path, args.level)
        error = checked["error"]
        if checked["status"] == "ok" and int(checked["n_frames"]) != int(table.at[position, "n_frames"]):
            error = (f"FrameCountMismatchError: the manifest says {int(table.at[position, 'n_frames'])} frames, "
                     f"the file holds {int(checked['n_frames'])}")
        if error:
            table.at[position, "status"], table.at[position, "error"] = "refused", error
            refused.append((path, error))
    out = write_manifest(table, args.output or args.manifest)
    print(f"verified {len(ok)} clips ({args.level}): {len(ok) - len(refused)} ok, {len(refused)} refused; "
          f"manifest: {out}")
    for path, error in refused:
        print(f"  refused: {path}: {error}")
    return 1 if refused else 0


def _run_pack(args) -> int:

    from data_tools.pack import parse_part, pack_part

    part = parse_part(args.part)
    if args.size is not None and min(args.size) < 1:
        raise UsageError(f"--size needs positive HEIGHT WIDTH, got {args.size}")
    if args.shard_mb <= 0:
        raise UsageError(f"--shard-mb must be positive, got {args.shard_mb}")
    with _clip_progress(args.quiet) as progress:
        result = pack_part(args.manifest, args.out, size=None if args.size is None else tuple(args.size),
                           part=part, shard_bytes=int(args.shard_mb * 2**20), progress=progress)
    where = f"part {part[0]}/{part[1]}"
    if result.skipped:
        print(f"{where} was packed before; nothing to do")
    else:
        print(f"{where}: packed {result.packed} clips into {len(result.shards)} shards under {args.out / 'shards'}"
              + (f"; {result.refused} clips could not be read (refused rows, see the manifest's error column)"
                 if result.refused else ""))
    if result.manifest is not None:
        print(f"manifest: {result.manifest}")
    else:
        print("the manifest is written when every part is packed")
    return 1 if result.refused else 0


def _run_synth(args) -> int:
    import ultrassl.synth as synth

    from ultrassl.data.splits import ucf101_annotations

    options = {"n_frames": args.frames, "seed": args.seed}
    out = args.out
    if args.kind == "fetal-sweep":
        options["n_sweeps"] = args.n
        synth.synthesize_fetal_sweeps(out, **{k: v for k, v in options.items() if v is not None})
        return _index(args, out, out / "manifest.csv", out / "annotations.csv")
    options["n_per_class"] = args.n
    synth.synthesize_motion(out, **{k: v for k, v in options.items() if v is not None})
    return _index(args, out, out / "manifest.csv", ucf101_annotations(out / "splits", 1), match="stem")


def main(argv: list[str] | None = None) -> int:
    """Run ``ultrassl data`` with ``argv`` (without the leading ``data``); returns the exit code.

    Bad input (a missing folder, a malformed manifest or split file, bad arguments) prints one
    line ``error: <message>`` on stderr and returns 2.
    """
    try:
        args = build_parser().parse_args(argv)
        if args.command == "index":
            return _run_index(args)
        if args.command == "split":
            return _run_split(args)
        if args.command == "convert":
            return _run_convert(args)
        if args.command == "deid":
            return _run_deid(args)
        if args.command == "pack":
            return _run_pack(args)
        if args.command == "verify":
            return _run_verify(args)
        return _run_synth(args)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (UsageError, UltrasslError, OSError, ValueError) as exc:
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
