"""`aetrig run --pin-cpus`: which cores each stage gets (emulator/run/cpu_plan.py)."""

from __future__ import annotations

import pytest

from emulator.run.cpu_plan import describe_plan, plan_cpus

STAGES = ["sink", "encoder-0", "producer"]


def test_one_encoder_on_two_cores_gets_a_core_of_its_own() -> None:
    plan = plan_cpus(STAGES, "auto", cpus=[0, 1])
    assert plan == {"encoder-0": frozenset({1}), "sink": frozenset({0}), "producer": frozenset({0})}
    assert describe_plan(plan, "auto") == "cores: sink, producer on CPU 0; encoder-0 on CPU 1 (--pin-cpus auto)"


def test_encoders_take_the_highest_cores_and_the_rest_share_the_others() -> None:
    names = ["sink", "encoder-0", "encoder-1", "producer"]
    plan = plan_cpus(names, "auto", cpus=[2, 3, 5, 7, 8])  # a container's cpuset need not start at 0
    assert plan["encoder-0"] == {7} and plan["encoder-1"] == {8}
    assert plan["sink"] == plan["producer"] == {2, 3, 5}


@pytest.mark.parametrize(("names", "cpus", "setting"), [
    (["sink", "encoder-0", "encoder-1", "producer"], [0, 1], "auto"),  # as many encoders as cores
    (STAGES, [0], "auto"),  # one core
    (STAGES, [0, 1, 2, 3], "off"),
])
def test_nothing_is_pinned_without_a_spare_core_or_when_off(names: list[str], cpus: list[int], setting: str) -> None:
    plan = plan_cpus(names, setting, cpus=cpus)
    assert plan == {}
    assert "not pinned" in describe_plan(plan, setting)


def test_an_unknown_setting_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="--pin-cpus must be one of auto, off"):
        plan_cpus(STAGES, "yes", cpus=[0, 1])
