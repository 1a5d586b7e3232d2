"""docs/bad-inputs.md is what prime-train does now with each known bad input: every case is
run again (in-process, each fails before anything heavy) and its exit code and message
compared with the table; the seconds column is left out (it depends on the machine)."""

import importlib.util
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bad_inputs.py"


def _tool():
    spec = importlib.util.spec_from_file_location("bad_inputs", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_bad_input_is_one_line_exit_2_no_run_dir_and_the_doc_says_so():
    tool = _tool()
    rows = tool.table_rows()
    for case, code, _seconds, message in rows:
        assert code == "2" and message.startswith("prime-train: "), (case, message)
        assert "NOT ONE LINE" not in message and "RUN DIR LEFT" not in message, (case, message)
    fresh = tool.comparable(tool.render(rows))
    assert tool.comparable(tool.TARGET.read_text()) == fresh, (
        "docs/bad-inputs.md is out of date: run python tools/bad_inputs.py"
    )
