"""Shipped SFT checkpoints: found by their recipe only, copied whole, and the ones in the
package are exactly the recipes of the configs that name them (else a run silently
trains its SFT again, ~12-20 min on 2 cores)."""

import json
import sys
from pathlib import Path

import pytest

from prime_megatron.run_layout import RunLayout
from prime_megatron.train import load_and_validate
from prime_megatron.trainer.inputs import InputError, prepare_inputs, write_run_record
from prime_megatron.trainer.sft import (
    PROVENANCE_FILE,
    RECIPE_FILE,
    SHIPPED_DIR,
    find_shipped,
    install_shipped,
    write_recipe,
)

REPO = Path(__file__).resolve().parents[2]
SMALL_TASK = ["synthetic.train_prompts=40", "synthetic.heldout_prompts=8"]
pytestmark = pytest.mark.unit


def _shipped(root: Path, name: str, recipe: dict) -> Path:
    d = root / name
    (d / "hf").mkdir(parents=True)
    (d / "weights.bin").write_bytes(b"\x00\x01" * 8)
    (d / "hf" / "tokenizer.json").write_text("{}")
    write_recipe(d, recipe)
    (d / PROVENANCE_FILE).write_text(json.dumps({"trained": "here, today"}))
    return d


def test_find_shipped_matches_the_whole_recipe_only(tmp_path):
    a = _shipped(tmp_path, "a", {"seed": 1, "sft": {"steps": 1600}})
    b = _shipped(tmp_path, "b", {"seed": 2, "sft": {"steps": 1600}})
    assert find_shipped({"seed": 1, "sft": {"steps": 1600}}, tmp_path) == a
    assert find_shipped({"seed": 2, "sft": {"steps": 1600}}, tmp_path) == b
    assert find_shipped({"seed": 1, "sft": {"steps": 800}}, tmp_path) is None
    assert find_shipped({"seed": 1}, tmp_path / "missing") is None


def test_install_shipped_copies_everything_and_replaces_a_stale_checkpoint(tmp_path):
    recipe = {"seed": 1}
    shipped = _shipped(tmp_path / "shipped", "a", recipe)
    target = tmp_path / "runs" / "sft-tiny"
    (target / "old").mkdir(parents=True)  # a checkpoint of another recipe
    made = install_shipped(shipped, target)
    assert made == {"trained": "here, today"}
    copied = sorted(p.relative_to(target) for p in target.rglob("*"))
    assert copied == sorted(p.relative_to(shipped) for p in shipped.rglob("*"))
    assert (target / "weights.bin").read_bytes() == (shipped / "weights.bin").read_bytes()
    assert json.loads((target / RECIPE_FILE).read_text()) == recipe
    assert [p.name for p in target.parent.iterdir()] == ["sft-tiny"]  # no staging left
    (shipped / PROVENANCE_FILE).unlink()
    assert install_shipped(shipped, target) == {}


def _recipe(*overrides: str) -> dict:
    cfg = load_and_validate(list(overrides))
    return prepare_inputs(cfg, RunLayout(cfg.run.output_dir)).start.sft.recipe


SHIPPED_CONFIGS = [None, "configs/tiny_cpu.yaml", "configs/mixed_chains_prime.yaml"]


@pytest.mark.parametrize("config", SHIPPED_CONFIGS)
def test_the_package_ships_the_sft_start_of_the_default_jobs(config):
    args = ["--config", str(REPO / config)] if config else []
    recipe = _recipe(*args)
    shipped = find_shipped(recipe)
    assert shipped is not None, f"no checkpoint in {SHIPPED_DIR} has the recipe {recipe}"
    assert (shipped / "hf").is_dir() and (shipped / PROVENANCE_FILE).is_file()


def test_the_package_ships_the_small_prms_sft_start():
    """configs/tiny_cpu_small_prm.yaml: the 2-layer PRM's start, by the policy's recipe."""
    cfg = load_and_validate(["--config", str(REPO / "configs/tiny_cpu_small_prm.yaml")])
    recipe = prepare_inputs(cfg, RunLayout(cfg.run.output_dir)).prm_start.sft.recipe
    shipped = find_shipped(recipe)
    assert shipped is not None, f"no checkpoint in {SHIPPED_DIR} has the recipe {recipe}"
    assert shipped.name == "tiny-addition-chains-2layer" and recipe["model"]["num_layers"] == 2
    assert (shipped / "hf").is_dir() and (shipped / PROVENANCE_FILE).is_file()


def test_where_the_sft_checkpoint_goes_is_not_part_of_its_recipe(tmp_path):
    moved = ["sft.checkpoint=elsewhere", "sft.use_shipped=false", f"sft.shipped_dir={tmp_path}"]
    assert _recipe(*moved) == _recipe()
    assert _recipe("sft.steps=800") != _recipe()


def test_ship_sft_tool_copies_a_runs_checkpoint_with_its_provenance(tmp_path):
    sys.path.insert(0, str(REPO / "tools"))
    import ship_sft

    where = [f"run.output_dir={tmp_path / 'run'}", f"sft.checkpoint={tmp_path / 'sft'}"]
    cfg = load_and_validate([*where, *SMALL_TASK])
    layout = RunLayout(cfg.run.output_dir)
    write_run_record(layout, cfg, prepare_inputs(cfg, layout))
    before = {"pass@1": 0.5, "sampled_pass@1": 0.4, "prompts": 1000}
    layout.metrics.write_text(json.dumps({"event": "eval_before", "step": 0, **before}) + "\n")
    _shipped(tmp_path, "sft", {"seed": 1})
    (tmp_path / "sft" / PROVENANCE_FILE).unlink()
    args = ["--run", str(layout.root), "--name", "tiny", "--to", str(tmp_path / "shipped")]
    ship_sft.main([*args, "--minutes", "12.5"])
    made = json.loads((tmp_path / "shipped" / "tiny" / PROVENANCE_FILE).read_text())
    assert made["heldout_before_rl"] == before
    assert " in 12.5 min, commit " in made["trained"]
    assert find_shipped({"seed": 1}, tmp_path / "shipped") == tmp_path / "shipped" / "tiny"
    with pytest.raises(SystemExit, match="exists"):
        ship_sft.main(args)


def test_a_shipped_dir_that_is_not_there_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"sft.shipped_dir=.*missing: no such directory"):
        _recipe(f"sft.shipped_dir={tmp_path / 'missing'}")
