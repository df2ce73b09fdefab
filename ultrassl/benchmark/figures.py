"""The benchmark's figures (matplotlib, drawn off-screen):

* ``<task>_<protocol>_bars.png``: per metric, one bar per arm at each label fraction, the
  whisker its 95 % interval over the seeds;
* ``<task>_<protocol>_fractions.png`` (protocols run at two fractions or more): per metric,
  the label fraction against the mean of each arm, the band its interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from ultrassl.benchmark.pools import fraction_text  # noqa: E402
from ultrassl.benchmark.report import arm_title  # noqa: E402


def _grid(n: int) -> tuple[int, int]:
    columns = min(n, 4)
    return math.ceil(n / columns), columns


def _value(entry: Mapping[str, Any] | None) -> tuple[float, float, float]:
    """``(mean, below, above)`` of a summary for bars and bands (NaN when missing)."""
    if entry is None or entry.get("mean") is None:
        return math.nan, 0.0, 0.0
    mean = entry["mean"]
    if entry.get("low") is None:
        return mean, 0.0, 0.0
    return mean, mean - entry["low"], entry["high"] - mean


def draw_figures(results: Mapping[str, Any], folder: Path, baseline_names: Mapping[str, str | None]) -> list[Path]:
    """Every figure of the results into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for task, entry in results["tasks"].items():
        for protocol in dict.fromkeys(r["protocol"] for r in entry["rows"]):
            rows = [r for r in entry["rows"] if r["protocol"] == protocol]
            arms = [a for a in entry["arms"] if any(a in r["arms"] for r in rows)]
            metrics = list(dict.fromkeys(r["metric"] for r in rows))
            fractions = sorted({r["fraction"] for r in rows})
            titles = {a: arm_title(a, baseline_names.get(task)) for a in arms}
            written.append(_bars(task, protocol, rows, arms, metrics, fractions, titles,
                                 folder / f"{task}_{protocol}_bars.png"))
            if len(fractions) >= 2:
                written.append(_fraction_lines(task, protocol, rows, arms, metrics, fractions, titles,
                                               folder / f"{task}_{protocol}_fractions.png"))
    return written


def _bars(task, protocol, rows, arms, metrics, fractions, titles, path: Path) -> Path:
    n_rows, n_columns = _grid(len(metrics))
    figure, axes = plt.subplots(n_rows, n_columns, figsize=(4.2 * n_columns, 3.2 * n_rows), squeeze=False)
    width = 0.8 / max(len(arms), 1)
    for index, metric in enumerate(metrics):
        ax = axes[index // n_columns][index % n_columns]
        for a, arm in enumerate(arms):
            values = [_value(next((r["arms"].get(arm) for r in rows if r["metric"] == metric and r["fraction"] == f),
                                  None)) for f in fractions]
            x = [i + (a - (len(arms) - 1) / 2) * width for i in range(len(fractions))]
            ax.bar(x, [v[0] for v in values], width, yerr=[[v[1] for v in values], [v[2] for v in values]],
                   capsize=3, label=titles[arm], color=f"C{a}")
        higher = next(r["higher_is_better"] for r in rows if r["metric"] == metric)
        ax.set_title(metric + ("" if higher else " (lower is better)"), fontsize=10)
        ax.set_xticks(range(len(fractions)), [fraction_text(f) for f in fractions])
        ax.set_xlabel("labelled subjects")
    for index in range(len(metrics), n_rows * n_columns):
        axes[index // n_columns][index % n_columns].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(arms), 6), fontsize=8)
    figure.suptitle(f"{task}, {protocol}: mean over seeds, 95% interval", fontsize=11)
    figure.tight_layout(rect=(0, 0.08, 1, 0.95))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _fraction_lines(task, protocol, rows, arms, metrics, fractions, titles, path: Path) -> Path:
    n_rows, n_columns = _grid(len(metrics))
    figure, axes = plt.subplots(n_rows, n_columns, figsize=(4.2 * n_columns, 3.2 * n_rows), squeeze=False)
    x = [100 * f for f in fractions]
    for index, metric in enumerate(metrics):
        ax = axes[index // n_columns][index % n_columns]
        for a, arm in enumerate(arms):
            values = [_value(next((r["arms"].get(arm) for r in rows if r["metric"] == metric and r["fraction"] == f),
                                  None)) for f in fractions]
            means = [v[0] for v in values]
            ax.plot(x, means, marker="o", label=titles[arm], color=f"C{a}")
            ax.fill_between(x, [m - v[1] for m, v in zip(means, values)], [m + v[2] for m, v in zip(means, values)],
                            color=f"C{a}", alpha=0.2, linewidth=0)
        higher = next(r["higher_is_better"] for r in rows if r["metric"] == metric)
        ax.set_title(metric + ("" if higher else " (lower is better)"), fontsize=10)
        ax.set_xscale("log")
        ax.set_xticks(x, [fraction_text(f) for f in fractions])
        ax.minorticks_off()
        ax.set_xlabel("labelled subjects")
    for index in range(len(metrics), n_rows * n_columns):
        axes[index // n_columns][index % n_columns].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(arms), 6), fontsize=8)
    figure.suptitle(f"{task}, {protocol}: label fraction against each metric (bands: 95% interval)", fontsize=11)
    figure.tight_layout(rect=(0, 0.08, 1, 0.95))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
