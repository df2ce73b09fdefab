"""The ``ultrassl`` command.

* ``ultrassl data {index,synth} ...``: index folders into manifests, generate simulated data
  (:mod:`data_tools.cli`);
* ``ultrassl {fit,validate,test,predict} -c CONFIG ...``: train and evaluate
  (:mod:`ultrassl.engine.cli`, LightningCLI).
"""

from __future__ import annotations

import sys

USAGE = """usage: ultrassl COMMAND ...

  data      index folders into manifests, generate simulated data  (ultrassl data --help)
  fit       train from a config, e.g. ultrassl fit -c configs/pretrain/order_geometry.yaml
  validate  evaluate a checkpoint on the validation data  (--ckpt_path PATH)
  test      evaluate on the test data
  predict   run a model over data
  evaluate  transfer a checkpoint to downstream tasks beside random init  (ultrassl evaluate --help)

  ultrassl fit --help      every option; ultrassl fit -c CONFIG --print_config  the resolved config"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ultrassl`` command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "data":
        from data_tools.cli import main as data_main

        return data_main(args[1:])
    if args and args[0] == "evaluate":
        from ultrassl.downstream.evaluate import main as evaluate_main

        return evaluate_main(args[1:])
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    from ultrassl.engine.cli import UltrasslCLI, main as engine_main

    if args[0] not in UltrasslCLI.subcommands():
        print(f"error: unknown command {args[0]!r}; available: data, {', '.join(UltrasslCLI.subcommands())}",
              file=sys.stderr)
        return 2
    return engine_main(args)


if __name__ == "__main__":
    sys.exit(main())
