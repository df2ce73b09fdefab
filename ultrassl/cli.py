"""The ``ultrassl`` command: ``ultrassl data ...`` (indexing, simulated data) and training commands."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ultrassl`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "data":
        from data_tools.cli import main as data_main

        return data_main(argv[1:])
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: ultrassl data {index,synth} ...\n\n  data   index folders into manifests, generate simulated data")
        return 0 if argv else 2
    print(
        f"error: unknown command {argv[0]!r}; available: 'ultrassl data ...'. "
        "Training commands come with the training engine.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
