from __future__ import annotations

from pathlib import Path

import pytest

from reprokit.errors import MatrixError
from reprokit.matrix import load_matrix, parse_matrix

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
[scenario]
name = "demo"
app = "app.py"
evidence = "../evidence/demo"
requirements = ["tornado==4.1", "greenlet==1.1.3.post0"]

[[scenario.load]]
path = "/"
concurrency = 4
expect_body = "done"
expect_headers = { "X-Doc-Counts" = "1,1" }

[[variant]]
name = "a"
python = "2.7"
requirements = ["motor==0.4", "tornado==4.2"]
expect = "deadlock"
"""


def parse(text: str) -> object:
    return parse_matrix(text, Path("/proj/code/matrix.toml"))


def test_the_projects_matrix_declares_both_motor_variants() -> None:
    matrix = load_matrix(ROOT / "code" / "matrix.toml")
    by_name = {v.name: v for v in matrix.variants}
    assert by_name["motor-0.4"].expect == "deadlock"
    assert by_name["motor-0.4.1"].expect == "ok"
    assert "motor==0.4" in by_name["motor-0.4"].requirements
    assert "pymongo==2.8" in by_name["motor-0.4.1"].requirements
    assert matrix.scenario.app == ROOT / "code" / "app.py"
    assert matrix.scenario.evidence == ROOT / "posts" / "evidence" / "motor-66"


def test_paths_are_relative_to_the_matrix_and_pins_merge_by_name() -> None:
    matrix = parse(GOOD)
    assert matrix.scenario.app == Path("/proj/code/app.py")
    assert matrix.scenario.evidence == Path("/proj/evidence/demo")
    (variant,) = matrix.variants
    assert variant.requirements == ("tornado==4.2", "greenlet==1.1.3.post0", "motor==0.4")
    assert matrix.scenario.load[0].expect_headers == (("X-Doc-Counts", "1,1"),)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('expect = "deadlock"', 'expect = "crash"'), ":17: [[variant]] #1: expect"),
        (lambda t: t.replace('python = "2.7"', 'python = "2"'), ":15: [[variant]] #1: python"),
        (lambda t: t.replace('"motor==0.4"', '"motor>=0.4"'), "not an exact pin"),
        (lambda t: t + "colour = 1\n", "unknown key 'colour'"),
        (lambda t: t.replace('name = "a"', 'name = "a"\nflavour = "x"'), ":15: [[variant]] #1: unknown key 'flavour'"),
        (lambda t: t.replace('path = "/"', 'path = "x"'), ":8: [[scenario.load]] #1: path must"),
        (lambda t: t.replace("concurrency = 4", "concurrency = 0"), "between 1 and 256"),
        (lambda t: t.replace("concurrency = 4", "concurrency = true"), "must be a number"),
        (lambda t: t.replace('app = "app.py"\n', ""), "missing required key 'app'"),
        (lambda t: t.split("[[variant]]")[0], "no [[variant]] tables"),
        (lambda t: t + '[[variant]]\nname = "a"\npython = "2.7"\nexpect = "ok"\n', "declared twice"),
    ],
)
def test_mistakes_are_reported_with_file_and_line(edit, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MatrixError) as info:
        parse(edit(GOOD))
    assert message in str(info.value)
    assert str(info.value).startswith("/proj/code/matrix.toml")


def test_toml_syntax_error_names_file_and_line() -> None:
    with pytest.raises(MatrixError, match=r"matrix.toml: not valid TOML: .*line 3"):
        parse('[scenario]\nname = "x"\napp = \n')


def test_unknown_variant_lists_the_known_ones() -> None:
    matrix = parse(GOOD)
    with pytest.raises(MatrixError, match="no variant named 'b'; the matrix has a"):
        matrix.select(["b"])
    assert matrix.select([]) == matrix.variants


def test_missing_file_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match="does not exist") as info:
        load_matrix(tmp_path / "nope.toml")
    assert info.value.tip and "--matrix" in info.value.tip
