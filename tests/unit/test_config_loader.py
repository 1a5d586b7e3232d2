from dataclasses import dataclass, field

import pytest

from prime_megatron.config import ConfigError
from prime_megatron.config.loader import load_config, save_config


@dataclass
class Inner:
    lr: float = 1e-3
    name: str = "adam"
    layers: list[int] = field(default_factory=lambda: [1, 2])
    maybe: int | None = None


@dataclass
class Outer:
    steps: int = 10
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


@dataclass
class WithSectionDefault:
    # a section whose default differs from its class defaults
    inner: Inner = field(default_factory=lambda: Inner(lr=0.5, name="lion"))


def test_setting_one_field_of_a_section_keeps_the_sections_other_defaults(tmp_path):
    cfg = load_config(WithSectionDefault, None, ["inner.maybe=3"])
    assert (cfg.inner.lr, cfg.inner.name, cfg.inner.maybe) == (0.5, "lion", 3)
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  name: sgd\n")
    assert load_config(WithSectionDefault, path).inner == Inner(lr=0.5, name="sgd")


def test_the_default_jobs_section_values_survive_overrides_of_their_fields():
    from prime_megatron.trainer.config import load_train_config

    overrides = ["algo.beta=0.1", "synthetic.train_prompts=600", "prm_optim.lr=1e-5",
                 "rollout.max_response_len=48"]  # fmt: skip
    cfg = load_train_config(None, overrides)
    assert cfg.algo.beta == 0.1 and cfg.algo.process_reward_norm == "none"
    assert cfg.synthetic.train_prompts == 600 and cfg.synthetic.sft_error_rate == 0.5
    assert cfg.prm_optim.lr == 1e-5 and cfg.prm_optim.grad_clip == 10.0
    assert cfg.rollout.max_response_len == 48 and cfg.rollout.load_format == "dummy"


def test_defaults_yaml_and_overrides_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 5\ninner:\n  lr: 0.1\n  name: sgd\n")
    cfg = load_config(
        Outer, path, ["inner.lr=2", "flag=true", "inner.layers=[3,4]", "inner.maybe=7"]
    )
    assert cfg.steps == 5 and cfg.flag is True
    assert cfg.inner.lr == 2.0 and isinstance(cfg.inner.lr, float)
    assert cfg.inner.name == "sgd" and cfg.inner.layers == [3, 4] and cfg.inner.maybe == 7


@pytest.mark.parametrize(
    "override, message",
    [
        ("stepz=3", r"unknown field\(s\) \['stepz'\]"),
        ("inner.lrr=3", r"\['inner.lrr'\]"),
        ("steps=many", "steps='many' is invalid: expected int"),
        ("flag=3", "flag=3 is invalid: expected bool"),
        ("inner.lr=fast", "inner.lr='fast' is invalid: expected float"),
        ("steps=true", "expected int"),
        ("inner.layers=5", "inner.layers=5 is invalid: expected a list"),
        ("inner=3", "inner must be a mapping"),
        ("no_equals_sign", "section.field=value"),
    ],
)
def test_bad_overrides_name_field_value_and_rule(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Outer, None, [override])


def test_exponent_without_dot_is_a_float():
    # YAML 1.1 reads 1e-4 as a string.
    assert load_config(Outer, None, ["inner.lr=1e-4"]).inner.lr == pytest.approx(1e-4)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_saved_config_loads_back_identically(tmp_path):
    cfg = load_config(Outer, None, ["inner.name=x", "steps=3"])
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(Outer, tmp_path / "resolved.yaml") == cfg


def _one_line_naming(error: pytest.ExceptionInfo, *names: str) -> str:
    message = str(error.value)
    assert "\n" not in message and "<unicode string>" not in message, message
    for name in names:
        assert name in message, message
    return message


@pytest.mark.parametrize("text", ["steps: [1,\n", "steps: 1\n  flag: true\n", "\tsteps: 1\n"])
def test_yaml_syntax_error_in_the_file_names_the_file(tmp_path, text):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(Outer, path)
    _one_line_naming(error, str(path), "invalid YAML", "line")


def test_unreadable_config_file_names_the_file(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError) as error:
        load_config(Outer, path)
    _one_line_naming(error, str(path), "cannot be read")


@pytest.mark.parametrize("override", ["inner.layers=[1,", "inner.name='x", "steps={", "flag=@x"])
def test_yaml_syntax_error_in_an_override_names_the_override(override):
    with pytest.raises(ConfigError) as error:
        load_config(Outer, None, [override])
    _one_line_naming(error, repr(override), "invalid YAML")


@pytest.mark.parametrize(
    "raw", [".inf", "-.inf", ".nan", "1e400", "1.0e400", "inf", "1" + "0" * 400]
)
def test_non_finite_floats_are_refused_for_every_float_field(raw):
    with pytest.raises(ConfigError, match=r"inner\.lr=.* is invalid: expected a finite number"):
        load_config(Outer, None, [f"inner.lr={raw}"])


@dataclass
class WithOptionals:
    scale: float | None = None
    weights: list[float] = field(default_factory=list)


@pytest.mark.parametrize("override", ["scale=.inf", "weights=[1.0, .nan]"])
def test_non_finite_floats_are_refused_inside_optionals_and_lists(override):
    with pytest.raises(ConfigError, match="a finite number"):
        load_config(WithOptionals, None, [override])


@dataclass
class Tuned:
    # A section whose parent customises it: overrides of one field must keep the others.
    inner: Inner = field(default_factory=lambda: Inner(lr=0.5, name="tuned"))


def test_overriding_one_field_keeps_a_customised_sections_other_defaults():
    cfg = load_config(Tuned, None, ["inner.maybe=3"])
    assert (cfg.inner.lr, cfg.inner.name, cfg.inner.maybe) == (0.5, "tuned", 3)
    assert load_config(Tuned, None, []).inner == Inner(lr=0.5, name="tuned")


def test_a_yaml_file_starts_from_its_base_and_merges_field_by_field(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "root.yaml").write_text("steps: 5\ninner:\n  lr: 0.1\n  name: sgd\n")
    (tmp_path / "sub" / "mid.yaml").write_text("base: ../root.yaml\ninner:\n  lr: 0.2\n")
    (tmp_path / "top.yaml").write_text("base: sub/mid.yaml\ninner:\n  maybe: null\n")
    cfg = load_config(Outer, tmp_path / "top.yaml", ["flag=true"])
    assert cfg == Outer(steps=5, flag=True, inner=Inner(lr=0.2, name="sgd", maybe=None))


@pytest.mark.parametrize(
    "files, message",
    [
        ({"a.yaml": "base: b.yaml\n", "b.yaml": "base: a.yaml\n"}, "bases form a cycle"),
        ({"a.yaml": "base: gone.yaml\n"}, r"gone.yaml \(the base of .*a.yaml\) does not exist"),
        ({"a.yaml": "base: [x]\n"}, r"base=\['x'\] is invalid: expected a YAML file path"),
    ],
)
def test_bad_bases_are_one_line_errors(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(Outer, tmp_path / "a.yaml")


@pytest.mark.parametrize(
    "text, message",
    [
        ("steps: 5\nflag: true\nsteps: 6\n", "duplicate key 'steps' at line 3 (first at line 1)"),
        (
            "inner:\n  lr: 0.1\n  name: a\n  lr: 0.2\n",
            "duplicate key 'lr' at line 4 (first at line 2)",
        ),
        (
            "inner:\n  lr: 0.1\nsteps: 2\ninner:\n  name: b\n",
            "duplicate key 'inner' at line 4 (first at line 1)",
        ),
    ],
)
def test_a_key_repeated_in_a_yaml_mapping_is_refused_naming_both_lines(tmp_path, text, message):
    # PyYAML keeps the last value silently: a section pasted twice would win without a word.
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(Outer, path)
    assert _one_line_naming(error, str(path)).endswith(message)


def test_a_key_repeated_in_an_override_is_refused():
    with pytest.raises(ConfigError, match="duplicate key 'a' at line 1"):
        load_config(WithMapping, None, ["table={a: 1, a: 2}"])


@dataclass
class WithMapping:
    table: dict[str, str] = field(default_factory=dict)


@pytest.mark.parametrize(
    "override, message",
    [
        ("table=[math,code]", r"table=\['math', 'code'\] is invalid: expected a mapping"),
        ("table=abc", "table='abc' is invalid: expected a mapping"),
        ("table={a: [1]}", r"table\['a'\]=\[1\] is invalid: expected str"),
    ],
)
def test_mapping_fields_refuse_what_is_not_a_mapping_of_their_types(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(WithMapping, None, [override])
    assert load_config(WithMapping, None, ["table={a: b, 3: 4}"]).table == {"a": "b", "3": "4"}


def test_a_directory_given_as_the_config_file_is_named_as_one(tmp_path):
    with pytest.raises(ConfigError, match=f"config file {tmp_path} is a directory, not a YAML"):
        load_config(Outer, tmp_path)
