"""``ultrassl app [FOLDER or MANIFEST]``: the inspection app, started safe by default.

Starts the Streamlit viewer (``apps/viewer.py`` of the source tree) with the server options a
page that shows patient data needs, whatever the user's Streamlit configuration says:

* bound to 127.0.0.1; another address only when the user types it (``--address``), and the
  command then prints what that exposes;
* XSRF protection and CORS checks on, usage statistics off, the development toolbar hidden;
* error details off in the page (``client.showErrorDetails = "none"``: exception types,
  messages and tracebacks go to the terminal only; the page shows its own one-line messages);
* an upload limit suited to cine loops (``--max-upload-mb``, 1024 by default);
* no file watching and no static file serving.

The viewer serves the data folder and the run folders given here and nothing else
(:mod:`apps.serving`); showing what lies outside the scan sector (burned-in patient text)
is ``--unmasked``, a choice made when the server starts, not a visitor's switch.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

#: the viewer page, in the source tree beside the package
VIEWER = Path(__file__).resolve().parents[1] / "apps" / "viewer.py"
LOCALHOST = "127.0.0.1"

#: Streamlit options set on every start (see the module docstring)
SAFE_OPTIONS = {
    "server.headless": "true",
    "server.enableXsrfProtection": "true",
    "server.enableCORS": "true",
    "server.fileWatcherType": "none",
    "server.runOnSave": "false",
    "server.enableStaticServing": "false",
    "browser.gatherUsageStats": "false",
    "client.showErrorDetails": "none",
    "client.toolbarMode": "viewer",
    "global.developmentMode": "false",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ultrassl app",
        description="Start the inspection app on this machine (http://127.0.0.1:PORT): browse the clips of a "
                    "folder or manifest, upload a loop, look at what trained models predict. Only the folders "
                    "given here are served.",
    )
    p.add_argument("target", nargs="?", type=Path, default=Path("."),
                   help="a data folder, or a manifest CSV (its folder is served); default: the current folder")
    p.add_argument("--runs", type=Path, action="append", default=[],
                   help="a folder of trained models (checkpoints are offered by task, objective and date); "
                        "repeatable; default: ./runs when it exists")
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    p.add_argument("--address", default=LOCALHOST,
                   help=f"address to listen on (default {LOCALHOST}, this machine only); another address serves "
                        "the network it belongs to, with no login: anyone who can reach the port sees the served "
                        "folders")
    p.add_argument("--unmasked", action="store_true",
                   help="let the page show what lies outside the scan sector, where scanners burn in patient "
                        "details (hidden otherwise, with no switch in the page)")
    p.add_argument("--max-upload-mb", type=int, default=1024, help="largest uploaded loop, MB (default 1024)")
    p.add_argument("--dry-run", action="store_true", help="print the Streamlit command instead of running it")
    return p


def command(args: argparse.Namespace) -> list[str]:
    """The ``python -m streamlit run ...`` command line for ``args``.

    Raises:
        ValueError: a folder or file given does not exist, or the viewer is not in this tree.
    """
    target = args.target.resolve()
    if not target.exists():
        raise ValueError(f"{args.target}: no such folder or manifest")
    data, manifest = (target.parent, target) if target.is_file() else (target, None)
    runs = list(args.runs) or ([Path("runs")] if Path("runs").is_dir() else [])
    for folder in runs:
        if not folder.is_dir():
            raise ValueError(f"--runs {folder}: no such folder")
    if not VIEWER.is_file():
        raise ValueError(f"the viewer page is not at {VIEWER}: run ultrassl app from a source checkout")
    if not 1 <= args.port <= 65535 or args.max_upload_mb < 1:
        raise ValueError("--port must be 1-65535 and --max-upload-mb at least 1")
    options = {**SAFE_OPTIONS, "server.address": args.address,
               "server.port": str(args.port), "server.maxUploadSize": str(args.max_upload_mb)}
    line = [sys.executable, "-m", "streamlit", "run", str(VIEWER), *(f"--{k}={v}" for k, v in options.items()),
            "--", "--data", str(data)]
    if manifest is not None:
        line += ["--manifest", str(manifest)]
    for folder in runs:
        line += ["--runs", str(folder.resolve())]
    if args.unmasked:
        line.append("--unmasked")
    return line


def is_loopback(address: str) -> bool:
    """Whether ``address`` is this machine only (127.0.0.0/8, ::1 or localhost)."""
    import ipaddress

    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def exposure(args: argparse.Namespace, line: Sequence[str]) -> str:
    """What the started server exposes, in words, for the terminal."""
    served = [line[i + 1] for i, word in enumerate(line) if word in ("--data", "--runs")]
    local = is_loopback(args.address)
    where = (f"http://{args.address}:{args.port} (this machine only)" if local else
             f"address {args.address}, port {args.port}: anyone who can reach it on the network can browse")
    lines = [f"serving on {where}", "  folders: " + ", ".join(served)]
    if not local:
        lines.append("  there is no login; clips, their frames and model outputs are visible to every visitor")
    lines.append("  outside the scan sector (burned-in patient text): "
                 + ("shown when a visitor turns masking off (--unmasked)" if args.unmasked else "always hidden"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        line = command(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(exposure(args, line), flush=True)
    if args.dry_run:
        print(" ".join(line))
        return 0
    os.execv(line[0], line)  # the server replaces this process: Ctrl-C stops it directly
    return 0  # not reached
