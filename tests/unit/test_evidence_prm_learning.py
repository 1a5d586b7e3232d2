import pytest

from prime_megatron.evidence.metrics import RunRecord
from prime_megatron.evidence.prm_learning import credit_targets, over_training, seed_summary


def run(pairwise: list[float], credit: float | None = None) -> RunRecord:
    steps = [{"step": i + 1, "prm/pairwise_acc": v} for i, v in enumerate(pairwise)]
    if credit is not None:
        steps[-1]["credit/prm_auroc"] = credit
        steps[-1]["credit/confidence_sft_auroc"] = 0.7
    return RunRecord("r", steps, {})


def test_seed_summary_averages_each_seeds_last_third():
    runs = [run([0.5, 0.5, 0.8], credit=0.9), run([0.5, 0.5, 0.6])]
    s = seed_summary(runs)
    assert s["prm/pairwise_acc"]["per_seed"] == [0.8, 0.6]
    assert s["prm/pairwise_acc"]["mean"] == pytest.approx(0.7)
    assert s["prm/pairwise_acc"]["ci95"] == pytest.approx(1.96 * 0.1414213 / 1.4142136, rel=1e-4)
    assert s["credit/prm_auroc"]["per_seed"] == [0.9]  # one seed measured it
    t = credit_targets(s)
    assert t["pairwise_acc_ge_0.75"] is False and t["step_auroc_ge_0.8"] is True
    assert t["step_auroc_above_sft_confidence"] is True
    assert t["outcome_auroc_ge_0.8"] is None  # never measured: not a pass


def test_seed_summary_reports_how_much_the_policy_listens_to_the_prm():
    steps = [{"step": i + 1, "adv/process_share": v, "adv/std": 1.0} for i, v in
             enumerate([0.9, 0.9, 0.05])]  # fmt: skip
    s = seed_summary([RunRecord("r", steps, {})])
    assert s["adv/process_share"]["per_seed"] == [0.05] and "adv/std" not in s


def test_over_training_bins_steps_and_averages_seeds():
    rows = over_training([run([0.1, 0.2, 0.3, 0.4]), run([0.3, 0.4, 0.5, 0.6])],
                         ["prm/pairwise_acc", "credit/prm_auroc"], bins=2)  # fmt: skip
    assert [r["steps"] for r in rows] == [[1, 2], [3, 4]]
    assert rows[0]["prm/pairwise_acc"] == pytest.approx(0.25)
    assert rows[1]["prm/pairwise_acc"] == pytest.approx(0.45)
    assert rows[0]["credit/prm_auroc"] is None
