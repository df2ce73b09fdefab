"""Every scalar an objective logs moves during training: a metric that never moves is a bug.

The objectives are found through the shipped configs (``configs/pretrain/*.yaml``), and every
objective class in :mod:`ultrassl.objectives` must have one, so a new objective is covered as
soon as it is added. Each config is built through the command's parser (its own pipeline,
sampler and options) with tiny clips, and trained for a few steps; every scalar its
``objective_step`` returns (all of them are logged as ``train/<name>``) must take more than one
value over those steps. A scalar that is constant by construction must be listed in
``CONSTANT`` with the reason.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
import torch
import yaml

import ultrassl.objectives
from ultrassl.engine.base import PretrainModule
from ultrassl.engine.cli import UltrasslCLI

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pretrain"
STEPS = 6
#: ``{(config stem, scalar name): why it is constant}``; empty: no shipped objective has one
CONSTANT: dict[tuple[str, str], str] = {}


def _cpu_configs() -> list[Path]:
    configs = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        if yaml.safe_load(path.read_text()).get("trainer", {}).get("accelerator", "cpu") == "cpu":
            configs.append(path)
    return configs


def _config_model(path: Path) -> str:
    return yaml.safe_load(path.read_text())["model"]["class_path"]


def _objective_classes() -> list[str]:
    names = []
    for module_info in pkgutil.iter_modules(ultrassl.objectives.__path__):
        module = importlib.import_module(f"ultrassl.objectives.{module_info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, PretrainModule) and not inspect.isabstract(cls):
                names.append(f"{module.__name__}.{name}")
    return names


def test_every_objective_has_a_cpu_config():
    covered = {_config_model(path) for path in _cpu_configs()}
    objectives = _objective_classes()
    assert objectives, "no objectives found"
    missing = sorted(set(objectives) - covered)
    assert not missing, f"objectives without a config in {CONFIGS} (so their metrics go untested): {missing}"


def _scalar_traces(config: Path, manifest: Path, tmp_path: Path, *options: str) -> dict[str, list[float]]:
    natural = config.stem.endswith("_natural")
    pipeline = "--data.init_args.pipeline.init_args"
    model = yaml.safe_load(config.read_text())["model"]["init_args"]
    extra = ["--model.init_args.queue_size=8"] if "queue_size" in model else []
    cli = UltrasslCLI(args=[
        "-c", str(config), f"--data.init_args.manifest={manifest}", f"--trainer.default_root_dir={tmp_path}",
        "--data.init_args.batch_size=8", "--data.init_args.clips_per_video=2", "--data.init_args.num_workers=0",
        f"{pipeline}.size={[32, 32] if natural else [32, 40]}", f"{pipeline}.num_frames=4",
        "--model.init_args.backbone_kwargs.channels=[8,16,16]", *extra, *options,
    ], run=False)
    module = cli.model
    cli.datamodule.setup("fit")
    optimiser = torch.optim.AdamW(module.parameters(), lr=module.hparams.lr)
    traces: dict[str, list[float]] = {}
    loader = iter(cli.datamodule.train_dataloader())
    module.train()
    for _ in range(STEPS):
        try:
            batch = next(loader)
        except StopIteration:
            loader = iter(cli.datamodule.train_dataloader())
            batch = next(loader)
        outputs = module.objective_step(batch, "train")
        optimiser.zero_grad()
        outputs["loss"].backward()
        optimiser.step()
        for name, value in outputs.items():
            # what the module logs: every scalar it returns
            if isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1):
                traces.setdefault(name, []).append(float(value.detach()) if isinstance(value, torch.Tensor) else float(value))
    return traces


@pytest.mark.parametrize("config", _cpu_configs(), ids=lambda path: path.stem)
def test_every_logged_scalar_moves_over_a_few_steps(config, sweeps, motion, tmp_path, one_thread):
    torch.manual_seed(0)
    traces = _scalar_traces(config, motion if config.stem.endswith("_natural") else sweeps, tmp_path)
    assert "loss" in traces and all(len(values) == STEPS for values in traces.values())
    constant = {
        name: values[0] for name, values in traces.items()
        if max(values) - min(values) <= 1e-6 and (config.stem, name) not in CONSTANT
    }
    assert not constant, f"{config.stem}: scalars constant over {STEPS} training steps: {constant}"


def test_the_reversal_accuracy_moves_with_the_reversed_negative(motion, tmp_path, one_thread):
    """VTDL's time-reversed negative is off in the shipped config, so its metric is checked here."""
    torch.manual_seed(0)
    traces = _scalar_traces(CONFIGS / "vtdl_natural.yaml", motion, tmp_path, "--model.init_args.reversed_negative=true")
    values = traces["reversal_acc"]
    assert len(values) == STEPS and max(values) - min(values) > 1e-6, f"reversal_acc constant: {values}"
