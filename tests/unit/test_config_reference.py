from dataclasses import dataclass, field

from prime_megatron.config.reference import field_comments, render_reference


@dataclass
class Inner:
    """An inner section.

    More detail that the reference leaves out."""

    # Two lines of
    # explanation.
    rate: float = 0.5
    name: str = "x"  # trailing words

    size: int = 3


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    flag: bool = True  # a switch


def test_field_comments_take_the_lines_above_and_the_trailing_comment():
    assert field_comments(Inner) == {
        "rate": "Two lines of explanation.", "name": "trailing words", "size": "",
    }  # fmt: skip


def test_the_reference_shows_defaults_and_where_a_job_differs():
    text = render_reference(Outer(), {"job": Outer(Inner(rate=0.1))}, "T", "intro")
    assert "| `flag` | `true` |  | a switch |" in text
    assert "| `inner.rate` | `0.5` | job: `0.1` | Two lines of explanation. |" in text
    assert "An inner section." in text and "More detail" not in text
    assert text.index("## Top level") < text.index("## `inner`")
