"""Row checks: both layouts, all three file formats, every kind of malformed row."""

import copy
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prime_megatron.data.dataset import PromptDataset
from prime_megatron.data.rows import PromptRow, RowDefaults, RowError, normalize_row

GOOD = {
    "data_source": "numina_olympiads",
    "prompt": [
        {"role": "system", "content": "Think step by step."},
        {"role": "user", "content": "What is 1+1?"},
    ],
    "ability": "math",
    "reward_model": {"style": "rule", "ground_truth": "2"},
    "extra_info": {"split": "train", "index": 0},
}
CODE_GT = {"inputs": ["1 2\n"], "outputs": ["3\n"]}
GOOD_CODE = {**GOOD, "ability": "code", "reward_model": {"ground_truth": json.dumps(CODE_GT)}}


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def with_change(path, value):
    """GOOD with the dotted ``path`` set to ``value`` (``DELETE`` removes it)."""
    row = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    target = row
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is DELETE:
        del target[int(last) if last.isdigit() else last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return row


DELETE = object()

# (row, field named in the error, words in the message)
BAD_ROWS = [
    ([GOOD], "<row>", "expected an object, got list"),
    (json.dumps("a string"), "<row>", "expected an object, got str"),
    ({"data_source": "x"}, "prompt", "need 'prompt'"),
    (with_change("prompt", "What is 1+1?"), "prompt", "non-empty list"),
    (with_change("prompt", []), "prompt", "non-empty list"),
    (with_change("prompt.1", "hi"), "prompt[1]", "message object"),
    (with_change("prompt.1.role", "robot"), "prompt[1].role", "'robot'"),
    (with_change("prompt.1.role", DELETE), "prompt[1].role", "None"),
    (with_change("prompt.1.content", 3), "prompt[1].content", "expected a string"),
    (with_change("prompt.1.content", DELETE), "prompt[1].content", "nothing"),
    (with_change("prompt.1.role", "assistant"), "prompt", "no user message"),
    (with_change("data_source", DELETE), "data_source", "non-empty string"),
    (with_change("data_source", ""), "data_source", "non-empty string"),
    (with_change("ability", 7), "ability", "non-empty string"),
    (with_change("reward_model", DELETE), "reward_model", "expected an object"),
    (with_change("reward_model", "2"), "reward_model", "expected an object"),
    (with_change("reward_model.ground_truth", DELETE), "reward_model.ground_truth", "missing"),
    (with_change("reward_model.ground_truth", None), "reward_model.ground_truth", "missing"),
    (
        with_change("reward_model.ground_truth", [1]),
        "reward_model.ground_truth",
        "string or number",
    ),
    (
        with_change("reward_model.ground_truth", True),
        "reward_model.ground_truth",
        "string or number",
    ),
    (with_change("reward_model.ground_truth", "  "), "reward_model.ground_truth", "empty"),
    (with_change("reward_model.style", 1), "reward_model.style", "expected a string"),
    (with_change("extra_info", [1]), "extra_info", "expected an object"),
    ({**GOOD_CODE, "reward_model": {"ground_truth": "{"}}, "reward_model.ground_truth", "not JSON"),
    (
        {**GOOD_CODE, "reward_model": {"ground_truth": {"inputs": ["1"], "outputs": []}}},
        "reward_model.ground_truth",
        "1 inputs, 0 outputs",
    ),
    (
        {**GOOD_CODE, "reward_model": {"ground_truth": {"inputs": [1], "outputs": [2]}}},
        "reward_model.ground_truth",
        "string inputs",
    ),
    ({"question": "", "answer": "1"}, "question", "non-empty string"),
    ({"question": ["q"], "answer": "1"}, "question", "non-empty string"),
    ({"question": "q"}, "answer", "missing"),
    ({"question": "q", "answer": {"a": 1}}, "answer", "string or number"),
]


@pytest.mark.parametrize("row,field,words", BAD_ROWS)
def test_bad_row_error_names_file_row_and_field(tmp_path, row, field, words):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, row])
    with pytest.raises(RowError) as info:
        PromptDataset.load([path])
    err = info.value
    assert (err.path, err.row, err.field) == (path, 2, field)
    assert words in str(err) and f"{path}: row 2: field {field!r}" in str(err)


def test_invalid_json_line_is_a_row_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, "", "{not json", GOOD])
    with pytest.raises(RowError, match=r"row 3: field '<json>': not valid JSON"):
        PromptDataset.load([path])


def test_skip_mode_drops_and_counts_every_bad_row(tmp_path):
    bad = [row for row, _, _ in BAD_ROWS]
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, *bad, "{oops", GOOD])
    data = PromptDataset.load([path], skip_bad_rows=True)
    assert len(data) == 2
    assert sum(data.skipped.values()) == len(bad) + 1
    assert data.skipped["<json>"] == 1 and data.skipped["reward_model.ground_truth"] == 8


def test_all_rows_bad_is_an_error_even_when_skipping(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ["{oops"])
    with pytest.raises(ValueError, match="no usable rows"):
        PromptDataset.load([path], skip_bad_rows=True)


def test_prime_row_is_normalised():
    parsed = normalize_row(GOOD)
    assert parsed == PromptRow(
        messages=tuple(GOOD["prompt"]),
        data_source="numina_olympiads",
        ability="math",
        ground_truth="2",
        style="rule",
        extra_info={"split": "train", "index": 0},
    )


def test_numeric_ground_truth_becomes_text_and_code_ground_truth_is_kept():
    math_row = normalize_row(with_change("reward_model.ground_truth", 12))
    assert math_row.ground_truth == "12"
    code_row = normalize_row(GOOD_CODE)
    assert code_row.ground_truth == GOOD_CODE["reward_model"]["ground_truth"]


def test_plain_layout_takes_source_and_ability_from_defaults(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "2+2?", "answer": 4}])
    (row,) = PromptDataset.load([path], defaults=RowDefaults("gsm8k", "math")).rows
    assert row.messages == ({"role": "user", "content": "2+2?"},)
    assert (row.data_source, row.ability, row.ground_truth) == ("gsm8k", "math", "4")


def test_parquet_and_json_load_like_jsonl(tmp_path):
    rows = [GOOD, with_change("reward_model.ground_truth", "3")]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    (tmp_path / "d.json").write_text(json.dumps(rows))
    jsonl = PromptDataset.load([write_jsonl(tmp_path / "d.jsonl", rows)]).rows
    parquet = PromptDataset.load([str(tmp_path / "d.parquet")]).rows
    as_json = PromptDataset.load([str(tmp_path / "d.json")]).rows
    assert parquet == jsonl == as_json
    both = PromptDataset.load([str(tmp_path / "d.parquet"), str(tmp_path / "d.json")])
    assert [r.ground_truth for r in both] == ["2", "3", "2", "3"]


def test_parquet_bad_row_names_its_row(tmp_path):
    rows = [GOOD, with_change("ability", "")]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    with pytest.raises(RowError, match=r"d.parquet: row 2: field 'ability'"):
        PromptDataset.load([str(tmp_path / "d.parquet")])


def test_file_level_problems(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n")
    with pytest.raises(RowError, match="unknown format '.csv'"):
        PromptDataset.load([str(tmp_path / "d.csv")])
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        PromptDataset.load([str(tmp_path / "missing.jsonl")])
    (tmp_path / "d.json").write_text('{"not": "a list"}')
    with pytest.raises(RowError, match="must be a list"):
        PromptDataset.load([str(tmp_path / "d.json")])


@pytest.mark.parametrize("line", ['{"question": "1+1?", "answer": NaN}',
                                  '{"question": "1+1?", "answer": Infinity}'])  # fmt: skip
def test_a_nan_gold_answer_in_jsonl_is_a_bad_row(tmp_path, line):
    # Python's json reads NaN as a float; as the text "nan" it was a gold answer to be paid.
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "2+2?", "answer": 4}, line])
    with pytest.raises(RowError) as error:
        PromptDataset.load([path])
    assert str(error.value).startswith(f"{path}: row 2: field 'answer': is ")
    assert str(error.value).endswith(", not an answer")


def test_nan_none_and_empty_gold_answers_in_parquet_are_bad_rows(tmp_path):
    for number, answer in enumerate([float("nan"), None, " "], start=1):
        path = tmp_path / f"d{number}.parquet"
        rows = [{"question": "2+2?", "answer": "4"}, {"question": "3+3?", "answer": answer}]
        if isinstance(answer, float):  # a float column, as pandas writes a missing number
            rows[0]["answer"] = 4.0
        pq.write_table(pa.Table.from_pylist(rows), path)
        with pytest.raises(RowError, match=rf"d{number}.parquet: row 2: field 'answer': "):
            PromptDataset.load([str(path)])


def test_a_line_that_is_not_utf8_is_a_bad_row_naming_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"question": "caf\xe9", "answer": "1"}\n')
    with pytest.raises(RowError) as error:
        PromptDataset.load([str(path)])
    assert str(error.value) == (
        f"{path}: row 2: field '<json>': not UTF-8 text (byte b'\\xe9' at offset 17)"
    )
    assert len(PromptDataset.load([str(path)], skip_bad_rows=True)) == 1


def test_unreadable_json_and_parquet_files_are_one_line_naming_the_file(tmp_path):
    (tmp_path / "d.json").write_bytes(b'[{"question": "caf\xe9"}]')
    with pytest.raises(RowError, match=r"d.json: not UTF-8 text \(byte b'\\xe9'"):
        PromptDataset.load([str(tmp_path / "d.json")])
    pq.write_table(pa.Table.from_pylist([GOOD] * 50), tmp_path / "full.parquet")
    data = (tmp_path / "full.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(RowError) as error:
        PromptDataset.load([str(tmp_path / "cut.parquet")])
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'cut.parquet'}: not a readable parquet file (")
    assert "\n" not in message
