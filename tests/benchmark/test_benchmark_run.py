"""The tiny profile end to end (a few subjects, two steps per run, two seeds, one objective,
random init, the ceiling and the baselines, all three tasks), then resuming it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from ultrassl.benchmark.cli import run_benchmark
from ultrassl.benchmark.profile import ProfileError, load_profile
from ultrassl.benchmark.report import BUDGET_KEYS
from ultrassl.benchmark.runner import RECORD, Runner
from ultrassl.benchmark.store import FolderMismatchError

TINY = Path(__file__).with_name("tiny.yaml")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark") / "tiny"
    lines: list[str] = []
    results = run_benchmark(TINY, out, sim_seed=0, log=lines.append)
    return out, results, lines


def test_writes_results_markdown_and_figures(finished):
    out, results, _ = finished
    stored = json.loads((out / "results.json").read_text())
    assert set(stored["tasks"]) == {"plane_detection", "saliency", "action_recognition"}
    assert stored["seeds"] == [0, 1] and stored["sim_seed"] == 0
    assert {"cpu", "cores", "torch", "platform"} <= set(stored["machine"])
    assert stored["wall_seconds"]["total"] > 0 and "arm" in stored["wall_seconds"]
    text = (out / "results.md").read_text()
    assert "order_geometry − random init" in text and "raw-pixel probe (no model)" in text
    assert "training gaze prior (no model)" in text and "Per-class F1" in text
    figures = {Path(f).name for f in stored["figures"]}
    assert {"plane_detection_linear_bars.png", "plane_detection_linear_fractions.png",
            "saliency_finetune_bars.png", "action_recognition_knn_bars.png"} <= figures
    assert all((out / f).stat().st_size > 1000 for f in stored["figures"])


def test_every_arm_has_every_seed_and_an_interval(finished):
    _, results, _ = finished
    plane = results["tasks"]["plane_detection"]
    rows = {(r["protocol"], r["fraction"], r["metric"]): r for r in plane["rows"]}
    row = rows[("linear", 0.5, "macro_f1")]
    assert set(row["arms"]) == {"order_geometry", "random_init", "supervised", "baseline"}
    for summary in row["arms"].values():
        assert set(summary["per_seed"]) == {"0", "1"} and summary["n"] == 2
        assert summary["low"] <= summary["mean"] <= summary["high"]
    difference = row["differences"]["order_geometry"]
    per_seed = [row["arms"]["order_geometry"]["per_seed"][s] - row["arms"]["random_init"]["per_seed"][s]
                for s in ("0", "1")]
    assert difference["mean"] == pytest.approx(sum(per_seed) / 2)
    saliency = {r["metric"] for r in results["tasks"]["saliency"]["rows"]}
    assert saliency == {"KLD", "CC", "NSS", "SIM", "AUC-Judd", "AUC-Borji", "sAUC"}
    action = {(r["protocol"], r["metric"]) for r in results["tasks"]["action_recognition"]["rows"]}
    assert ("linear", "accuracy") in action and ("knn", "recall@1") in action
    classes = plane["per_class"][0]["classes"]
    assert "Background" in classes and set(classes["Background"]["order_geometry"]["per_seed"]) == {"0", "1"}


def test_each_seed_averages_its_label_draws_below_100_percent(finished):
    out, results, _ = finished
    rows = {(r["protocol"], r["fraction"], r["metric"]): r for r in results["tasks"]["plane_detection"]["rows"]}
    half, full = rows[("linear", 0.5, "macro_f1")], rows[("linear", 1.0, "macro_f1")]
    assert half["draws"] == 2 and full["draws"] == 1 and "per_draw" not in full["arms"]["random_init"]
    for arm in ("order_geometry", "random_init", "baseline"):
        summary = half["arms"][arm]
        for seed in ("0", "1"):
            draws = summary["per_draw"][seed]
            assert set(draws) == {"0", "1"}
            assert summary["per_seed"][seed] == pytest.approx(sum(draws.values()) / 2)
    ours, theirs = half["arms"]["order_geometry"]["per_draw"], half["arms"]["random_init"]["per_draw"]
    assert half["differences"]["order_geometry"]["per_seed"] == pytest.approx(
        {s: sum(ours[s][d] - theirs[s][d] for d in ("0", "1")) / 2 for s in ("0", "1")})
    # each draw trains on its own subjects, written down beside the data
    data = json.loads((out / "data" / "fetal_sweeps" / "pools.json").read_text())
    for seed in ("0", "1"):
        for draw in (0, 1):
            folder = out / "runs" / "plane_detection" / "linear" / "50pct" / f"seed{seed}{'_draw1' if draw else ''}"
            record = json.loads((folder / "random_init" / RECORD).read_text())
            assert record["draw"] == draw
            assert record["budget"]["train_subjects"] == data["label_draws"][seed]["50%"][draw]
    text = (out / "results.md").read_text()
    assert "| 50% (2 draws) | macro_f1 |" in text
    # and where the difference's noise comes from: the draws within each seed, or the seeds
    noise = half["differences"]["order_geometry"]["noise"]
    assert noise["seeds"] == 2 and noise["draws"] == 2 and noise["draw_sd"] >= 0 and noise["seed_sd"] >= 0
    assert "Where the noise of the differences comes from (plane_detection)" in text
    assert "| linear, 50% (2 draws) | macro_f1 | order_geometry |" in text


def test_a_baseline_is_computed_once_for_each_set_of_labelled_subjects(finished):
    out, _, _ = finished
    runs = out / "runs"
    for task, fraction in (("plane_detection", "100pct"), ("saliency", "100pct"), ("action_recognition", "100pct")):
        first, second = (json.loads((runs / task / "baseline" / fraction / f"seed{s}" / RECORD).read_text())
                         for s in (0, 1))
        # every labelled subject in both seeds: the second seed's baseline is the first's
        assert first["budget"]["train_subjects"] == second["budget"]["train_subjects"]
        assert "same_as" not in first and second["same_as"] == {"seed": 0, "draw": 0}
        assert second["metrics"] == first["metrics"] and second["seed"] == 1 and second["budget"]["seed"] == 1
    # at 50 % each seed and draw labels other subjects: each is computed
    half = [json.loads(p.read_text()) for p in sorted((runs / "plane_detection" / "baseline" / "50pct").glob("*/" + RECORD))]
    assert len(half) == 4 and not [r for r in half if "same_as" in r and r["budget"]["train_subjects"]
                                   != next(h for h in half if h["seed"] == r["same_as"]["seed"]
                                           and h["draw"] == r["same_as"]["draw"])["budget"]["train_subjects"]]


def test_every_arm_of_a_comparison_gets_the_same_budget_and_data(finished):
    out, results, _ = finished
    checks = [c for task in results["tasks"].values() for c in task["budgets"]]
    assert checks and all(c["equal"] for c in checks)
    for check in checks:
        budgets = list(check["arms"].values())
        assert {json.dumps({k: b[k] for k in BUDGET_KEYS}, sort_keys=True) for b in budgets} == {
            json.dumps({k: budgets[0][k] for k in BUDGET_KEYS}, sort_keys=True)}
    two = [c for c in checks if len(c["arms"]) == 2]
    assert two, "a comparison of a pretrained arm and random init"
    # the ceiling: every labelled subject, with the plane task's own ceiling budget (3 steps,
    # its fine-tunes 2) and saliency's fine-tune budget
    data = json.loads((out / "data" / "fetal_sweeps" / "pools.json").read_text())
    ceiling = json.loads((out / "runs" / "plane_detection" / "supervised" / "seed1" / RECORD).read_text())
    assert ceiling["budget"]["train_subjects"] == data["pools"]["labelled"]
    assert ceiling["budget"]["max_steps"] == 3 and ceiling["budget"]["protocol"] == "finetune"
    finetune = json.loads((out / "runs" / "plane_detection" / "finetune" / "100pct" / "seed1" / "random_init"
                           / RECORD).read_text())
    assert finetune["budget"]["max_steps"] == 2
    saliency = json.loads((out / "runs" / "saliency" / "supervised" / "seed1" / RECORD).read_text())
    assert saliency["budget"]["max_steps"] == 2


def test_a_ceiling_budget_takes_only_steps_and_batch(tmp_path):
    profile = yaml.safe_load(TINY.read_text())
    profile["tasks"]["plane_detection"]["ceiling"] = {"max_steps": 3, "lr": 0.1}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(profile))
    with pytest.raises(ProfileError, match="ceiling takes max_steps, batch_size and overrides"):
        load_profile(bad)


def test_no_subject_crosses_pools_in_any_run(finished):
    out, _, _ = finished
    data = json.loads((out / "data" / "fetal_sweeps" / "pools.json").read_text())
    pools = data["pools"]
    for path in (out / "runs" / "plane_detection").rglob(RECORD):
        budget = json.loads(path.read_text())["budget"]
        assert set(budget["train_subjects"]) <= set(pools["labelled"])
        assert budget["held_out_subjects"] == pools["test"]
    pretraining = json.loads((out / "pretrain" / "order_geometry" / "seed0" / RECORD).read_text())
    assert pretraining["budget"]["train_subjects"] == pools["pretrain"]
    assert not set(pools["pretrain"]) & set(pools["test"])
    for seed in ("0", "1"):
        assert set(data["label_subsets"][seed]["50%"]) < set(data["label_subsets"][seed]["100%"])


def test_a_real_run_has_no_defect(finished):
    _, results, _ = finished
    # A few steps on a handful of frames may leave an arm predicting one class, which the
    # report rightly lists; every other defect (unequal budgets, missing or constant metrics)
    # would be a bug of the run itself.
    assert [d for d in results["defects"] if "predicts one class" not in d] == []


def test_a_rerun_skips_every_finished_run_and_redoes_a_missing_one(finished):
    out, _, _ = finished
    records = sorted(out.rglob(RECORD))
    stamps = {p: p.stat().st_mtime_ns for p in records}
    runner = Runner(load_profile(TINY), out, 0, log=lambda _: None)
    runner.run()
    assert runner.trained == 0 and runner.reused >= len(records) - 4  # same-run copies are reused too
    assert {p: p.stat().st_mtime_ns for p in records} == stamps
    lost = out / "runs" / "plane_detection" / "linear" / "50pct" / "seed1" / "order_geometry" / RECORD
    lost.unlink()
    runner = Runner(load_profile(TINY), out, 0, log=lambda _: None)
    runner.run()
    assert runner.trained == 1 and lost.is_file()


def test_more_label_draws_add_runs_to_a_finished_folder_and_change_none(finished, tmp_path):
    import shutil

    from ultrassl.benchmark.profile import select
    from ultrassl.benchmark.report import build_results

    out = tmp_path / "tiny"
    shutil.copytree(finished[0], out)
    before = {p: p.read_bytes() for p in (out / "runs").rglob(RECORD)}
    plain = select(load_profile(TINY), tasks=["plane_detection"])
    runner = Runner(select(plain, label_draws=3), out, 0, log=lambda _: None)
    runner.run()  # the folder's identity is the profile's: more draws resume it, as more seeds do
    assert {p: p.read_bytes() for p in before} == before
    data = json.loads((out / "data" / "fetal_sweeps" / "pools.json").read_text())
    first = json.loads((finished[0] / "data" / "fetal_sweeps" / "pools.json").read_text())
    for seed in ("0", "1"):
        # a draw's subjects do not depend on how many are asked: the first two are kept
        assert data["label_draws"][seed]["50%"][:2] == first["label_draws"][seed]["50%"]
        for arm in ("order_geometry", "random_init"):
            record = json.loads((out / "runs" / "plane_detection" / "linear" / "50pct" / f"seed{seed}_draw2" / arm
                                 / RECORD).read_text())
            assert record["draw"] == 2 and record["budget"]["train_subjects"] == data["label_draws"][seed]["50%"][2]
        assert (out / "runs" / "plane_detection" / "baseline" / "50pct" / f"seed{seed}_draw2" / RECORD).is_file()
    assert not list((out / "runs" / "plane_detection").rglob("seed*_draw3"))
    assert not list((out / "runs" / "plane_detection" / "finetune").rglob("seed*_draw*"))  # 100 %: one draw

    def row(profile):
        rows = build_results(profile, out, 0)["tasks"]["plane_detection"]["rows"]
        return next(r for r in rows if (r["protocol"], r["fraction"], r["metric"]) == ("linear", 0.5, "macro_f1"))

    more, fewer = row(select(plain, label_draws=3)), row(plain)
    assert more["draws"] == 3 and set(more["arms"]["random_init"]["per_draw"]["0"]) == {"0", "1", "2"}
    # a report of the profile's own draws reads only those, as a report of fewer seeds does
    original = next(r for r in finished[1]["tasks"]["plane_detection"]["rows"]
                    if (r["protocol"], r["fraction"], r["metric"]) == ("linear", 0.5, "macro_f1"))
    assert fewer["draws"] == 2 and fewer["arms"] == original["arms"]
    assert fewer["differences"] == original["differences"]


def test_more_random_init_networks_add_runs_and_random_init_becomes_their_mean(finished, tmp_path):
    import shutil

    from ultrassl.benchmark.profile import select
    from ultrassl.benchmark.report import build_results
    from ultrassl.benchmark.runner import random_init_seed

    out = tmp_path / "tiny"
    shutil.copytree(finished[0], out)
    before = {p: p.read_bytes() for p in (out / "runs").rglob(RECORD)}
    plain = select(load_profile(TINY), tasks=["plane_detection"])
    Runner(select(plain, random_inits=2), out, 0, log=lambda _: None).run()
    assert {p: p.read_bytes() for p in before} == before
    comparison = out / "runs" / "plane_detection" / "linear" / "50pct" / "seed1_draw1"
    first, second = (json.loads((comparison / arm / RECORD).read_text()) for arm in ("random_init", "random_init_net1"))
    assert second["arm"] == "random_init" and second["network"] == 1 and "network" not in first
    assert first["encoder"]["init_args"]["seed"] == 1 == random_init_seed(1, 0)
    assert second["encoder"]["init_args"]["seed"] == random_init_seed(1, 1) not in (0, 1)
    assert second["budget"] == first["budget"]  # another network, the same labels, budget and seed
    assert not (comparison / "order_geometry_net1").exists()

    def row(profile):
        rows = build_results(profile, out, 0)["tasks"]["plane_detection"]["rows"]
        return next(r for r in rows if (r["protocol"], r["fraction"], r["metric"]) == ("linear", 0.5, "macro_f1"))

    both, one = row(select(plain, random_inits=2)), row(plain)
    assert both["random_inits"] == 2 and one["random_inits"] == 1
    assert both["arms"]["random_init"]["per_draw"]["1"]["1"] == pytest.approx(
        (first["metrics"]["macro_f1"] + second["metrics"]["macro_f1"]) / 2)
    original = next(r for r in finished[1]["tasks"]["plane_detection"]["rows"]
                    if (r["protocol"], r["fraction"], r["metric"]) == ("linear", 0.5, "macro_f1"))
    assert one["arms"] == original["arms"] and one["differences"] == original["differences"]


def test_another_profile_or_sim_seed_is_refused(finished, tmp_path):
    out, _, _ = finished
    with pytest.raises(FolderMismatchError, match="sim_seed: 0 -> 3"):
        Runner(load_profile(TINY), out, 3, log=lambda _: None).run()
    changed = copy.deepcopy(yaml.safe_load(TINY.read_text()))
    changed["tasks"]["saliency"]["max_steps"] = 5
    with pytest.raises(FolderMismatchError, match="max_steps: 2 -> 5"):
        Runner(load_profile(changed), out, 0, log=lambda _: None).run()


def test_two_populations_of_one_profile_pool_in_the_populations_report(finished, tmp_path):
    from ultrassl.benchmark.populations import read_populations, summarize

    first, _, _ = finished
    second = tmp_path / "tiny_sim1"
    run_benchmark(TINY, second, sim_seed=1, tasks=["plane_detection"], log=lambda _: None, figures=False)
    summary = summarize(read_populations([first, second]), tasks=["plane_detection"])
    assert summary["groups"] == ["tiny"] and [p["sim_seed"] for p in summary["populations"]] == [0, 1]
    reports = {str(sim): json.loads((folder / "results.json").read_text()) for sim, folder in ((0, first), (1, second))}
    comparison = next(c for c in summary["comparisons"]
                      if (c["protocol"], c["fraction"], c["metric"]) == ("linear", 0.5, "macro_f1"))
    for sim, report in reports.items():
        row = next(r for r in report["tasks"]["plane_detection"]["rows"]
                   if (r["protocol"], r["fraction"], r["metric"]) == ("linear", 0.5, "macro_f1"))
        assert comparison["populations"][sim]["mean"] == pytest.approx(row["differences"]["order_geometry"]["mean"])
    across = comparison["across"]["tiny"]
    assert across["n"] == 2
    assert across["mean"] == pytest.approx(sum(comparison["populations"][s]["mean"] for s in ("0", "1")) / 2)
