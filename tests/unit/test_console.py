"""The console shows the run's own lines; upstream records go to the log file."""

import logging
import warnings

import pytest

from prime_megatron.console import Progress, route_logs, say

pytestmark = pytest.mark.unit


@pytest.fixture
def clean_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[len(handlers) :]:
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_upstream_warnings_go_to_the_file_errors_also_to_the_console(
    tmp_path, capsys, clean_root_logger
):
    log_file = tmp_path / "logs" / "rank_0.log"
    route_logs(log_file)
    logging.getLogger("vllm.platforms.cpu").warning("Triton is not installed.")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", FutureWarning, stacklevel=1)
    logging.getLogger("vllm.engine").error("engine died")
    say("step line")
    out, err = capsys.readouterr()
    assert "Triton" not in out + err and "deprecated thing" not in out + err
    assert "engine died" in err
    assert out == "step line\n"
    text = log_file.read_text()
    for expected in ("Triton is not installed.", "deprecated thing", "engine died", "step line"):
        assert expected in text


def test_progress_prints_every_n_and_the_last_with_eta(capsys):
    progress = Progress(total=7, desc="SFT", line_every=3)
    for n in range(1, 8):
        progress.update(n, f"nll {1 / n:.2f}")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("|")[2].split("[")[0].strip() for line in lines] == ["3/7", "6/7", "7/7"]
    assert "nll 0.33" in lines[0] and "<" in lines[0]  # elapsed<remaining
    assert "100%" in lines[-1]


def test_progress_after_resume_counts_from_the_resumed_step(capsys):
    progress = Progress(total=10, desc="RL", initial=8)
    progress.update(9)
    progress.update(10)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("|")[2].split("[")[0].strip() for line in lines] == ["9/10", "10/10"]
