"""lit_tiny.cli: list flags as users type them, and expected errors in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

from lit_tiny.cli import check_args, normalize_list_flags, run


def command(inputs: list[Path], tasks: Optional[list[str]] = None, ks: tuple[int, ...] = (1,), n: int = 1) -> dict:
    """A command with list flags.

    Args:
        inputs: Files.
        tasks: Task names.
        ks: Numbers.
        n: A number.
    """
    return {"inputs": inputs, "tasks": tasks, "ks": ks, "n": n}


@pytest.mark.parametrize("argv, expected", [
    (["--inputs", "my_texts/"], [Path("my_texts/")]),
    (["--inputs", "a.txt", "b.txt", "--n", "2"], [Path("a.txt"), Path("b.txt")]),
    (["--inputs", "[a.txt, b.txt]"], [Path("a.txt"), Path("b.txt")]),
    (["--inputs=c.txt"], [Path("c.txt")]),
])
def test_list_flags_take_a_bare_value_several_values_or_brackets(argv, expected):
    assert run(command, argv)["inputs"] == expected


def test_list_values_keep_their_types():
    result = run(command, ["--inputs", "x", "--tasks", "hellaswag", "piqa", "--ks", "1", "10"])
    assert result["tasks"] == ["hellaswag", "piqa"] and result["ks"] == (1, 10)
    assert run(command, ["--inputs", "x", "--tasks", "null"])["tasks"] is None
    assert normalize_list_flags(["--n", "3", "--tasks", "a"], {"--tasks"}) == ["--n", "3", "--tasks", '["a"]']


def test_check_args_parses_without_running():
    check_args(command, ["--inputs", "x", "y"])
    with pytest.raises(Exception, match="--nn"):
        check_args(command, ["--inputs", "x", "--nn", "2"])


def failing(path: Path) -> None:
    """Fails the way a missing file does.

    Args:
        path: A file.
    """
    raise FileNotFoundError(f"{path} does not exist: prepare it first")


def test_an_expected_error_is_one_line_and_status_1(capsys, monkeypatch):
    monkeypatch.delenv("LIT_TINY_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exit_:
        run(failing, ["--path", "data/x"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err == "error: data/x does not exist: prepare it first\n"
    monkeypatch.setenv("LIT_TINY_TRACEBACK", "1")
    with pytest.raises(FileNotFoundError):
        run(failing, ["--path", "data/x"])
    monkeypatch.delenv("LIT_TINY_TRACEBACK")
    monkeypatch.setenv("LOCAL_RANK", "1")  # the second process of a job says nothing
    with pytest.raises(SystemExit):
        run(failing, ["--path", "data/x"])
    assert capsys.readouterr().err == ""
