"""Choose and ship the score of an event-level anomaly model: `aetrig event-design compare|ship`.

On top of a model trained with `aetrig train --level event` (the network is not retrained):
``compare`` scores its variants (the global features' weight in the error, and the score-transform
terms error / latent / HT) against the HT and leading-jet-pT triggers at equal FPR on design signals;
``ship`` writes the chosen variant as a new model directory with its card's ``score_transform`` and
thresholds calibrated on a background (models/training/event_design.py; docs/models.md).
"""

from __future__ import annotations

import argparse
import sys

EXAMPLES = """
aetrig generate --process qcd --events 50000 --seed 901 --jobs 2 --out data/qcd_train_50k_s901.root
aetrig generate --process darkshower --events 2000 --seed 1102 --jobs 2 --out data/design_darkshower_s1102.root
aetrig train --level event --variables four-vector --input data/qcd_train_50k_s901.root --jets 10 --slots 4 \\
    --latent 3 --epochs 20 --batch-size 512 --lr 0.003 --seed 0 --out /tmp/evt/4v
aetrig event-design compare --models /tmp/evt/4v --train-background data/qcd_train_50k_s901.root \\
    --global-weight 1 30 --combo 1,0,0 1,0.5,1.25 --signal darkshower=data/design_darkshower_s1102.root
aetrig event-design ship --model /tmp/evt/4v --global-weight 30 --combo 1,0.5,1.25 \\
    --train-background data/qcd_train_50k_s901.root --calibrate producer/samples/qcd.root --out /tmp/EVT_4v
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from models.training.event_design import add_arguments as design_arguments

    design_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from models.runtime.rebuild import typed_command
    from models.training.event_design import run

    args.command_text = typed_command("event-design", sys.argv)  # the card's source.command, as typed
    try:
        return run(args)
    except (ValueError, OSError) as exc:
        print(f"aetrig event-design: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # models.training.event_design says what is wrong with the options or files so
        if not isinstance(exc.code, str):
            raise
        print(f"aetrig event-design: error: {exc.code}", file=sys.stderr)
        return 2
