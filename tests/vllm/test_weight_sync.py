"""Megatron (TP/PP) -> vLLM (rollout TP) weight sync under torchrun with gloo.

Each launch runs every check of ``scripts/sync_check.py`` (greedy match, optimizer step +
re-sync, bucket smaller than the largest tensor, seeded sampling, K-grouping, RSS over many
syncs). Six launches cover TP=1, TP=2, PP=2 and TP2xPP2 with rollout TP 1 and 2, GQA +
biases and tied embeddings.
"""

import json
import subprocess
import sys

import pytest

from tests.dist.conftest import ROOT
from tests.torchrun import free_port, run_torchrun
from tests.vllm.conftest import SCRIPTS

CASES = [  # model, Megatron TP, PP, rollout TP (world = max(TP*PP, rollout TP))
    ("llama_tied", 1, 1, 1),  # the default job's layout: every tensor straight from its param
    ("qwen2_gqa", 2, 1, 1),  # 2 rollout replicas, 1 prompt share each
    ("qwen2_gqa", 2, 1, 2),  # shard-only, converted straight from the parameters
    ("llama_tied", 1, 2, 2),  # vLLM sharded across the two pipeline stages
    ("qwen2_gqa", 2, 2, 2),  # world 4: 2 replicas of rollout TP 2
    ("llama_tied", 2, 2, 1),  # world 4: 4 replicas; tied embedding across PP
]


@pytest.mark.parametrize("model, tp, pp, rollout_tp", CASES)
def test_sync_generate_and_resync(model, tp, pp, rollout_tp, vllm_ckpts):
    out = run_torchrun(SCRIPTS / "sync_check.py", max(tp * pp, rollout_tp),
                       str(vllm_ckpts[model]), str(tp), str(pp), str(rollout_tp))  # fmt: skip
    assert f"SYNC_CHECK_OK tp={tp} pp={pp} rollout_tp={rollout_tp}" in out


def test_verify_tool_reports_agreement(vllm_ckpts):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           str(ROOT / "tools" / "verify_weight_sync.py"), "--ckpt", str(vllm_ckpts["llama_tied"]),
           "--prompts", "3", "--max-new-tokens", "8", "--kv-cache-gib", "0.25"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["greedy_match"], report
    assert report["sync"]["weight_version"] == 1
    assert report["greedy_logp"]["n_tokens"] == 3 * 8
