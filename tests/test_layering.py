"""Imports point one way: no module imports from a layer above its own.

The layers, bottom to top (a unit is a subpackage of ``ultrassl``, one of its top-level
modules, or a top-level package of the repository):

0. ``ultrassl`` (the version), ``errors``, ``plain``, ``distributed``, ``atomic``, ``threads``:
   what everything may use, importing nothing of the package;
1. ``io``: the readers (files -> frames, header facts);
2. ``transforms``: MONAI-style clip transforms over the readers, their recorded parameters
   (``batch_param`` reads them back) and the annotation sidecars they attach;
3. ``data``: manifests, indexing, split files, plane names, datasets, the data module, and
   the pipeline protocol it runs (so that no data code needs a recipe);
4. ``pipelines``: the recipes, chains of transforms over the data layer;
5. ``metrics``, ``models``, ``losses``: independent of each other; models read checkpoints
   and build encoders, which the engine and the tasks build on;
6. ``engine``: the modules' common base, optimiser and schedule, and ``ultrassl fit``
   (LightningCLI), which builds any model and data module;
7. ``objectives``: the pretraining methods, thin modules over the engine;
8. ``downstream``: the tasks, their protocols, transfer and evaluation, over everything
   below (they read pretraining checkpoints, never the objectives' code);
9. ``synth``: the simulator, which only needs the data layer's plane names; nothing below it
   depends on it;
10. ``benchmark``: the transfer benchmark, which simulates its data and runs the tasks;
    ``app``: the command that starts the inspection app (it imports nothing of the package);
11. the programs: ``ultrassl.cli`` (the command), ``ultrassl.demo``, ``data_tools`` (adds
    ``ultrassl data`` through an entry point, so the command does not import it) and
    ``apps``; none imports another.

Units of one layer may not import each other; a unit may import itself freely. Every
import counts, function-local and ``TYPE_CHECKING`` ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ultrassl", "data_tools", "apps")
LAYERS: list[set[str]] = [
    {"ultrassl", "ultrassl.errors", "ultrassl.plain", "ultrassl.distributed", "ultrassl.atomic", "ultrassl.threads"},
    {"ultrassl.io"},
    {"ultrassl.transforms"},
    {"ultrassl.data"},
    {"ultrassl.pipelines"},
    {"ultrassl.metrics", "ultrassl.models", "ultrassl.losses"},
    {"ultrassl.engine"},
    {"ultrassl.objectives"},
    {"ultrassl.downstream"},
    {"ultrassl.synth"},
    {"ultrassl.benchmark", "ultrassl.app"},
    {"ultrassl.cli", "ultrassl.demo", "data_tools", "apps"},
]
LAYER_OF = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """The layering unit of a dotted module name."""
    parts = module.split(".")
    if parts[0] != "ultrassl":
        return parts[0]
    return ".".join(parts[:2])


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of the repository (found without importing)."""
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of the repository's own modules in ``path``."""
    return imports_of(path.read_text(), module_name(path), path.name == "__init__.py", str(path))


def imports_of(source: str, module: str, is_package: bool, filename: str = "<source>") -> list[tuple[int, str]]:
    """``(line, module)`` of every import of the repository's own modules in ``source``, the
    text of ``module`` (a package's ``__init__`` when ``is_package``)."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            # "from ultrassl import distributed" imports the module ultrassl.distributed
            for alias in node.names:
                name = f"{origin}.{alias.name}"
                found.append((node.lineno, name if is_module(name) else origin))
    return [(line, name) for line, name in found if name.split(".")[0] in PACKAGES]


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def test_every_unit_has_a_layer():
    units = {unit_of(module_name(path)) for path in sources()}
    assert units <= set(LAYER_OF), f"give these a layer in {__file__}: {sorted(units - set(LAYER_OF))}"


def test_no_import_goes_up_a_layer_or_across_one():
    wrong = []
    for path in sources():
        unit = unit_of(module_name(path))
        for line, imported in imported_modules(path):
            target = unit_of(imported)
            if target == unit or target not in LAYER_OF or unit not in LAYER_OF:
                continue
            if LAYER_OF[target] >= LAYER_OF[unit]:
                where = "up" if LAYER_OF[target] > LAYER_OF[unit] else "across"
                wrong.append(f"{path.relative_to(REPO)}:{line}: {unit} (layer {LAYER_OF[unit]}) imports {imported} "
                             f"({where}: layer {LAYER_OF[target]})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_checker_sees_local_relative_and_from_package_imports():
    source = ("import numpy\n\ndef f():\n    from ultrassl.downstream import tasks\n"
              "    from ..engine.cli import main\n    from ultrassl import distributed\n")
    found = {name: line for line, name in imports_of(source, "ultrassl.models.probe", is_package=False)}
    assert found == {"ultrassl.downstream.tasks": 4, "ultrassl.engine.cli": 5, "ultrassl.distributed": 6}
    assert [LAYER_OF[unit_of(name)] > LAYER_OF["ultrassl.models"] for name in found] == [True, True, False]


def _calls(path: Path) -> list[tuple[int, str]]:
    """``(line, name)`` of the attributes and names a module calls."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name:
                found.append((node.lineno, name))
    return found


def test_one_optimiser_factory_one_schedule_one_class_path_resolver():
    owners = {
        # the optimisers and the schedule every module trains with
        "AdamW": {"ultrassl/engine/optim.py"}, "SGD": {"ultrassl/engine/optim.py"},
        "LambdaLR": {"ultrassl/engine/optim.py"},
        # dotted class paths are resolved once (provenance imports packages by name for their versions)
        "import_module": {"ultrassl/models/checkpoint.py", "ultrassl/engine/provenance.py"},
    }
    elsewhere = [f"{path.relative_to(REPO)}:{line}: {name}" for path in sources() for line, name in _calls(path)
                 if name in owners and str(path.relative_to(REPO)) not in owners[name]]
    assert not elsewhere, "a second copy:\n" + "\n".join(elsewhere)
