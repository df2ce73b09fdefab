"""Parameters of the audio-visual transformer's three transformers under each sharing scheme.

At one width and depth: ``none`` (a layer per depth in each transformer), ``layer`` (one layer
reused across depth, ALBERT-style) and ``full`` (one layer reused, every weight factorised as
U R normalise(V x) with U shared by the visual, audio and multimodal transformers). Prints the
counts and the reduction of each against ``none``: for the CPU config's size and for the
paper's (width 768, 12 layers, 12 heads, rank 128, 10 segments).

Usage::

    python benchmarks/av_parameters.py [--width 64 --depth 2 --heads 4 --rank 16 --segments 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ultrassl.models.av_transformer import transformer_parameters  # noqa: E402


def report(width: int, depth: int, heads: int, rank: int, segments: int) -> list[str]:
    counts = transformer_parameters(width, depth, heads, rank, segments)
    lines = [f"width {width}, depth {depth}, heads {heads}, rank {rank}, {segments} segments:"]
    for sharing, count in counts.items():
        reduction = 1 - count / counts["none"]
        lines.append(f"  {sharing:<6} {count:>12,d} parameters  ({reduction:6.1%} fewer than no sharing)")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--segments", type=int, default=4)
    args = parser.parse_args(argv)
    print("\n".join(report(args.width, args.depth, args.heads, args.rank, args.segments)))
    print("\n".join(report(768, 12, 12, 128, 10)))


if __name__ == "__main__":
    main()
