"""The ``ultrassl`` command.

* ``ultrassl {fit,validate,test,predict} -c CONFIG ...``: train and evaluate
  (:mod:`ultrassl.engine.cli`, LightningCLI);
* ``ultrassl evaluate ...``: transfer a checkpoint to the downstream tasks
  (:mod:`ultrassl.downstream.evaluate`);
* ``ultrassl benchmark ...``: the transfer benchmark over objectives, tasks, label fractions
  and seeds (:mod:`ultrassl.benchmark.cli`);
* ``ultrassl app [FOLDER or MANIFEST]``: the inspection app, bound to 127.0.0.1
  (:mod:`ultrassl.app`);
* commands of other installed packages, declared as entry points of the group
  ``ultrassl.commands`` (``name = "module:main"``, ``main(argv) -> exit status``): this
  project's ``pyproject.toml`` declares ``ultrassl data {index,synth} ...`` of
  :mod:`data_tools.cli`, which builds on this package. Found through the package metadata,
  so that ``ultrassl`` never imports the tools that import it.
"""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, entry_points

#: the entry-point group of commands contributed by other packages
COMMAND_GROUP = "ultrassl.commands"

USAGE = """usage: ultrassl COMMAND ...

  data      index, verify, split, de-identify, convert; simulated data  (ultrassl data --help)
  fit       train from a config, e.g. ultrassl fit -c configs/pretrain/order_geometry.yaml
  validate  evaluate a checkpoint on the validation data  (--ckpt_path PATH)
  test      evaluate on the test data
  predict   run a model over data
  evaluate  transfer a checkpoint to downstream tasks beside random init  (ultrassl evaluate --help)
  benchmark every objective against random init on every task, over seeds  (ultrassl benchmark --help)
            across simulated populations: ultrassl benchmark populations DIR [DIR ...]
  app       the inspection app for a folder or manifest, on this machine only  (ultrassl app --help)

  ultrassl fit --help      every option; ultrassl fit -c CONFIG --print_config  the resolved config"""


def contributed_commands() -> dict[str, EntryPoint]:
    """The commands other installed packages add to ``ultrassl``, by name."""
    return {entry.name: entry for entry in entry_points(group=COMMAND_GROUP)}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ultrassl`` command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    contributed = contributed_commands()
    if args and args[0] in contributed:
        return contributed[args[0]].load()(args[1:])
    if args and args[0] == "evaluate":
        from ultrassl.downstream.evaluate import main as evaluate_main

        return evaluate_main(args[1:])
    if args and args[0] == "benchmark":
        from ultrassl.benchmark.cli import main as benchmark_main

        return benchmark_main(args[1:])
    if args and args[0] == "app":
        from ultrassl.app import main as app_main

        return app_main(args[1:])
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    from ultrassl.engine.cli import UltrasslCLI, main as engine_main

    if args[0] not in UltrasslCLI.subcommands():
        available = [*contributed, *UltrasslCLI.subcommands(), "evaluate", "benchmark", "app"]
        print(f"error: unknown command {args[0]!r}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    return engine_main(args)


if __name__ == "__main__":
    sys.exit(main())
