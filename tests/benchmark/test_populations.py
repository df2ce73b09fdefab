"""Across simulated populations: each population's difference as its report gives it, the
verdict counts, and an interval over the populations, pooled only within one profile's settings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ultrassl.benchmark.populations import PopulationError, read_populations, summarize
from ultrassl.cli import main as ultrassl_main


def _interval(mean: float, half: float | None, n: int = 5) -> dict:
    low, high = (None, None) if half is None else (mean - half, mean + half)
    return {"mean": mean, "low": low, "high": high, "n": n}


def _difference(mean: float, half: float, higher_is_better: bool = True) -> dict:
    entry = _interval(mean, half)
    excludes = entry["low"] > 0 or entry["high"] < 0
    verdict = "within noise"
    if excludes:
        verdict = "better" if (mean > 0) == higher_is_better else "worse"
    return {**entry, "excludes_zero": excludes, "verdict": verdict, "per_seed": {}}


def write_population(folder: Path, sim_seed: int, f1_gain: float, f1_half: float, kld_gain: float = -0.01,
                     profile: str = "quick", max_steps: int = 300, ceiling: float = 0.6, label_draws: int = 3) -> Path:
    """A finished report of one population: plane macro-F1 at 20 % and saliency KLD at 20 %."""
    folder.mkdir(parents=True)
    plane_row = {"protocol": "linear", "fraction": 0.2, "metric": "macro_f1", "higher_is_better": True, "draws": 3,
                 "arms": {"order_geometry": _interval(0.15 + f1_gain, 0.02), "random_init": _interval(0.15, 0.02),
                          "supervised": _interval(ceiling, 0.03)},
                 "differences": {"order_geometry": _difference(f1_gain, f1_half)}}
    saliency_row = {"protocol": "finetune", "fraction": 0.2, "metric": "kld", "higher_is_better": False, "draws": 1,
                    "arms": {"order_geometry": _interval(1.0 + kld_gain, 0.05), "random_init": _interval(1.0, 0.05)},
                    "differences": {"order_geometry": _difference(kld_gain, 0.005, higher_is_better=False)}}
    plane_settings = {"max_steps": max_steps, "label_draws": label_draws}
    results = {
        "profile": {"name": profile, "settings": {"name": profile, "seeds": [0, 1, 2, 3, 4],
                                                  "tasks": {"plane_detection": plane_settings}}},
        "sim_seed": sim_seed, "seeds": [0, 1, 2, 3, 4], "confidence": 0.95,
        "machine": {"cpu": "Test CPU", "cores": 2},
        "tasks": {"plane_detection": {"rows": [plane_row]}, "saliency": {"rows": [saliency_row]}},
    }
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def _comparison(summary: dict, metric: str) -> dict:
    return next(c for c in summary["comparisons"] if c["metric"] == metric)


def test_each_population_keeps_its_own_difference_and_the_populations_get_one_interval(tmp_path):
    folders = [write_population(tmp_path / f"s{seed}", seed, gain, half)
               for seed, gain, half in ((7, 0.02, 0.005), (8, 0.03, 0.04), (9, 0.04, 0.01))]
    summary = summarize(read_populations(folders))
    f1 = _comparison(summary, "macro_f1")
    assert f1["populations"]["8"]["mean"] == pytest.approx(0.03)
    assert f1["populations"]["8"]["low"] == pytest.approx(-0.01)
    quick = f1["across"]["quick"]
    # the known case: 0.02, 0.03, 0.04 -> mean 0.03, sd 0.01, t(0.975, 2) = 4.303: [0.0052, 0.0548]
    half = 4.302652729911275 * 0.01 / math.sqrt(3)
    assert quick["n"] == 3 and quick["mean"] == pytest.approx(0.03)
    assert quick["low"] == pytest.approx(0.03 - half) and quick["high"] == pytest.approx(0.03 + half)
    assert quick["counts"] == {"better": 2, "within noise": 1, "worse": 0}
    assert quick["verdict"] == "better"
    ceiling = next(a for a in summary["arms"] if a["arm"] == "supervised")
    assert ceiling["across"]["quick"]["mean"] == pytest.approx(0.6)
    assert [p["seeds_finished"] for p in summary["populations"]] == [5, 5, 5]


def test_a_lower_is_better_metric_counts_a_drop_as_the_gain(tmp_path):
    folders = [write_population(tmp_path / f"s{seed}", seed, 0.02, 0.01, kld_gain=kld)
               for seed, kld in ((1, -0.02), (2, -0.03), (3, -0.025))]
    kld = _comparison(summarize(read_populations(folders)), "kld")
    assert kld["across"]["quick"]["verdict"] == "better" and kld["across"]["quick"]["mean"] < 0
    assert kld["across"]["quick"]["counts"]["better"] == 3


def test_populations_pool_only_with_those_run_under_the_same_settings(tmp_path):
    folders = [write_population(tmp_path / "a", 1, 0.02, 0.01),
               write_population(tmp_path / "b", 2, 0.04, 0.01),
               write_population(tmp_path / "c", 3, -0.05, 0.01, profile="demo", max_steps=150, ceiling=0.2),
               write_population(tmp_path / "d", 4, 0.03, 0.01, max_steps=999),   # quick, edited
               write_population(tmp_path / "e", 5, 0.03, 0.01, label_draws=9)]   # quick, measured more closely
    summary = summarize(read_populations(folders), metrics=["macro_f1"])
    assert summary["groups"] == ["quick", "demo", "quick (settings 2)"]
    f1 = _comparison(summary, "macro_f1")
    assert f1["across"]["quick"]["n"] == 3 and f1["across"]["quick"]["mean"] == pytest.approx(0.03)
    assert f1["across"]["demo"]["n"] == 1 and f1["across"]["demo"]["low"] is None
    ceilings = next(a for a in summary["arms"] if a["arm"] == "supervised")["across"]
    assert ceilings["quick"]["mean"] == pytest.approx(0.6) and ceilings["demo"]["mean"] == pytest.approx(0.2)
    assert {c["metric"] for c in summary["comparisons"]} == {"macro_f1"}


def test_a_population_counts_once_and_a_folder_without_a_report_is_named(tmp_path):
    first = write_population(tmp_path / "a", 5, 0.02, 0.01)
    again = write_population(tmp_path / "b", 5, 0.03, 0.01, profile="demo")
    with pytest.raises(PopulationError, match=r"both hold simulator seed 5"):
        read_populations([first, again])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PopulationError, match=f"{empty}: no benchmark report"):
        read_populations([first, empty])
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text(json.dumps({"tasks": {}, "sim_seed": 1}))   # not a benchmark's
    with pytest.raises(PopulationError, match=f"{other}: no benchmark report"):
        read_populations([other])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text('{"tasks": {')
    with pytest.raises(PopulationError, match="results.json: cannot be read"):
        read_populations([broken])


def test_the_command_prints_the_tables_and_writes_them(tmp_path, capsys):
    folders = [str(write_population(tmp_path / f"s{seed}", seed, 0.02 + seed / 1000, 0.01)) for seed in (11, 12, 13)]
    out = tmp_path / "populations.md"
    assert ultrassl_main(["benchmark", "populations", *folders, "--metrics", "macro_f1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| linear | 20% | macro_f1 | order_geometry |" in printed and "3 / 0 / 0" in printed
    assert "seed 11" in printed and "seed 13" in printed
    assert out.read_text().startswith("# Across simulated populations")
    stored = json.loads(out.with_suffix(".json").read_text())
    assert [p["sim_seed"] for p in stored["populations"]] == [11, 12, 13]
    assert ultrassl_main(["benchmark", "populations", str(tmp_path / "missing")]) == 2
    assert "no benchmark report" in capsys.readouterr().err
    assert ultrassl_main(["benchmark", "populations", *folders, "--metrics", "top1"]) == 2
    assert "no comparison with random init" in capsys.readouterr().err
