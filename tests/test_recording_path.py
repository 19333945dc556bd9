"""One recording path convention: the --out directory of `aetrig run` or `aetrig sink` (runtime/recording.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emulator.runtime.recording import RecordingError, recording_dir

REPO = Path(__file__).resolve().parents[1]


def test_the_out_directory_and_its_segments_name_the_same_recording(tmp_path: Path) -> None:
    (tmp_path / "run" / "segments").mkdir(parents=True)
    assert recording_dir(tmp_path / "run") == tmp_path / "run"
    assert recording_dir(tmp_path / "run" / "segments") == tmp_path / "run"


def test_a_directory_above_a_recording_is_refused_with_the_recording_named(tmp_path: Path) -> None:
    (tmp_path / "run" / "recording" / "segments").mkdir(parents=True)
    with pytest.raises(RecordingError, match=r"not a recording.*recordings inside it: .*run/recording"):
        recording_dir(tmp_path / "run")
    with pytest.raises(RecordingError, match="no such directory"):
        recording_dir(tmp_path / "missing")


@pytest.mark.parametrize("command", [["verify"], ["decode", "--out", "x.root"]])
def test_readers_exit_2_with_one_line_on_a_path_that_is_not_a_recording(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "run" / "recording" / "segments").mkdir(parents=True)
    done = subprocess.run([sys.executable, "-m", "emulator.cli", command[0], str(tmp_path / "run"), *command[1:]],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "not a recording" in done.stderr and "run/recording" in done.stderr
    assert "Traceback" not in done.stderr
