"""`make demo`'s program on a tiny profile: data, pretraining through the shipped config,
transfer beside random init over two seeds, the table with intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ultrassl.demo import DEMO_PROFILE, main

TINY = Path(__file__).parent / "benchmark" / "tiny_demo.yaml"


@pytest.mark.slow
def test_demo_runs_the_benchmark_and_prints_the_table_with_intervals(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--out", str(out), "--profile", str(TINY)]) == 0
    printed = capsys.readouterr().out
    assert "[1/3] simulating" in printed and "[3/3] results" in printed
    assert "| labels | metric | order_geometry | random init |" in printed
    assert "order_geometry − random init" in printed
    assert "held-out order accuracy" in printed and "against chance 1/12 = 0.083" in printed
    last = printed.strip().splitlines()[-1]
    assert last.startswith("checkpoint: ") and "logs: " in last
    checkpoint = torch.load(last.split()[1], weights_only=True, map_location="cpu")
    assert checkpoint["global_step"] == 2
    assert checkpoint["provenance"]["data"]["manifest"].endswith("pretrain.csv")
    results = json.loads((out / "results.json").read_text())
    assert set(results["tasks"]) == {"plane_detection", "saliency"} and results["seeds"] == [0, 1]
    macro_f1 = next(r for r in results["tasks"]["plane_detection"]["rows"] if r["metric"] == "macro_f1")
    assert macro_f1["arms"]["order_geometry"]["n"] == 2 and "order_geometry" in macro_f1["differences"]
    # a second run resumes: nothing is trained again
    assert main(["--out", str(out), "--profile", str(TINY)]) == 0
    assert "0 runs done" in capsys.readouterr().out


def test_the_demo_profile_compares_order_geometry_with_random_init_over_five_seeds():
    from ultrassl.benchmark.profile import PROFILE_DIR, load_profile

    profile = load_profile(DEMO_PROFILE)
    assert list(profile.objectives) == ["order_geometry"] and len(profile.seeds) == 5
    assert {"random_init", "supervised", "baseline"} <= set(profile.arms)
    plane = {p.name: p.fractions for p in profile.tasks["plane_detection"].protocols}
    assert 0.2 in plane["linear"] and profile.tasks["plane_detection"].label_draws == 3
    # saliency in the same setting: the same data, objective and recipe
    saliency = load_profile(PROFILE_DIR / "saliency.yaml")
    assert set(saliency.tasks) == {"saliency"} and saliency.domains == profile.domains
    assert saliency.objectives == profile.objectives and saliency.seeds == profile.seeds
    # every arm of the domain shares one backbone, and the random arm's fine-tunes learn BatchNorm
    assert profile.tasks["plane_detection"].overrides["model.init_args.freeze_encoder_norm"] is False
