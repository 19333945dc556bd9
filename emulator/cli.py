"""The `aetrig` command: one entry point, one module per subcommand.

Each subcommand module defines ``add_arguments(parser)``, ``main(args) -> int`` and an
``EXAMPLES`` string shown under ``--help``. Every subcommand takes ``--config FILE``: a stage's
settings schema reads it (emulator/runtime/stage_config.py), any other command's parser does
(emulator/runtime/command_config.py), with the same semantics (docs/design.md "Command-line
conventions"). Modules are imported only when their subcommand runs, so ``aetrig --help`` works
without optional extras such as torch or pythia8.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from emulator.runtime.command_config import CONFIG_FLAG, CommandParser, option_strings

#: subcommand -> (module, one-line summary). The one table of what `aetrig` can do.
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("producer.generate.command", "generate jet ntuples with Pythia 8 + towers + FastJet"),
    "produce": ("producer.command", "replay ROOT events over ZeroMQ at a chosen rate"),
    "encode": ("emulator.encoder.command", "encoder service: ONNX Runtime latents, errors and flags"),
    "sink": ("consumer.sink.command", "record the scored stream durably as ROOT segments"),
    "run": ("emulator.run.command", "start producer, encoders and sink together on loopback"),
    "verify": ("consumer.offline.verify_command", "check a recording: every seq present, counts consistent"),
    "import-pretrained": ("models.training.pretrained_command", "turn the published TLA weights into a model dir"),
    "train": ("models.training.train_command", "train an autoencoder with PyTorch and export it to ONNX"),
    "event-design": ("models.training.event_design_command",
                     "choose and ship an event-level model's score (score transform, thresholds)"),
    "calibrate": ("consumer.offline.calibrate_command", "recompute a model's anomaly thresholds on a background"),
    "context-fit": ("models.training.context_fit",
                    "fit a rate-trained model's context model (recording format 4's latent coder) on training jets"),
    "quantize": ("models.training.quantize_command", "int8 copy of a model (ONNX Runtime static quantisation, VNNI)"),
    "decode": ("consumer.offline.decode_command", "decode a recorded latent stream back to jet variables"),
    "report": ("consumer.offline.report_command", "run the three studies and write plots, tables and index.html"),
    "evaluate": ("consumer.offline.evaluate_command", "anomaly models vs HT and leading-jet-pT triggers at equal rate"),
    "bench": ("emulator.bench.command", "benchmark in-process, service and pipeline throughput/latency"),
    "keys": ("emulator.ops.keys_command", "create CurveZMQ key pairs for encrypted cross-host links"),
}


def _top_level_help() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: aetrig COMMAND [options]   (aetrig COMMAND --help for details)", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "every command takes --config FILE (TOML: its flags as keys; flags override it); --model is one",
              "model, a directory or a models/zoo name (docs/design.md \"Command-line conventions\")",
              "exit status: 0 ok, 1 the work failed, 2 a usage or input error (quantize, import-pretrained, decode",
              "and generate exited 1 before), 3 aetrig run lost or duplicated events, 130 interrupted",
              "", "example:", "  aetrig run --duration 20 --rate 50000 --encoders 2 --out runs/demo"]
    return "\n".join(lines)


def build_parser(command: str) -> tuple[argparse.ArgumentParser, object]:
    """Import the subcommand's module and build its parser."""
    module_name, summary = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = CommandParser(
        prog=f"aetrig {command}",
        description=(module.__doc__ or summary).strip(),
        epilog="examples:\n" + module.EXAMPLES.strip("\n"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    if CONFIG_FLAG not in option_strings(parser):  # the stages' settings schemas read their own
        parser.add_config_flag(command)
    return parser, module


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_top_level_help())
        return 0
    if argv[0] in ("-V", "--version"):
        from emulator import __version__

        print(f"aetrig {__version__}")
        return 0
    command = argv[0]
    if command not in COMMANDS:
        print(f"aetrig: unknown command {command!r}\n\n{_top_level_help()}", file=sys.stderr)
        return 2
    parser, module = build_parser(command)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.main(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
