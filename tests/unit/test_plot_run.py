import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools" / "plot_run.py"


def test_plot_run_writes_png(tmp_path):
    lines = [
        {"step": s, "rollout/accuracy": 0.4 + 0.01 * s, "prm/pairwise_acc": 0.6}
        for s in range(1, 6)
    ]
    lines.insert(0, {"event": "eval_before", "pass@1": 0.5})
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    proc = subprocess.run(
        [sys.executable, str(TOOL), str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    png = tmp_path / "metrics.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_plot_run_missing_metrics_is_an_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(TOOL), str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "metrics.jsonl not found" in proc.stderr
