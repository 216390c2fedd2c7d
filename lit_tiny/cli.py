"""The command lines of lit_tiny's scripts: jsonargparse, plus what users type and what they should see.

* A list flag takes what users type: one bare value (``--tasks hellaswag``), several values
  (``--tasks hellaswag piqa``) or the bracket form (``--tasks '[hellaswag, piqa]'``).
* An expected error (a missing file, bad data, a setting that does not fit, a refused resume: the
  ``ValueError`` and ``OSError`` kinds whose messages name the file and the fix) prints one line,
  ``error: ...``, and exits with status 1. ``LIT_TINY_TRACEBACK=1`` shows the traceback instead.
  In a multi-process job only the first process prints it.
"""

from __future__ import annotations

import json
import os
import sys
import typing
from typing import Any, Callable, Optional, Sequence, Union

import yaml
from jsonargparse import CLI, capture_parser

EXPECTED_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
                   PermissionError)
TRACEBACK_VARIABLE = "LIT_TINY_TRACEBACK"


def run(component: Union[Callable[..., Any], dict[str, Callable[..., Any]]], argv: Optional[Sequence[str]] = None) -> Any:
    """``jsonargparse.CLI(component)`` on ``argv`` (default ``sys.argv[1:]``), with list flags normalised
    and expected errors reported in one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = capture_parser(lambda: CLI(component, as_positional=False, args=[]))
    argv = normalize_list_flags(argv, list_flags(parser))
    try:
        return CLI(component, as_positional=False, args=argv)
    except EXPECTED_ERRORS as err:
        if os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0"):
            raise
        if is_first_process():
            print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)


def check_args(component: Union[Callable[..., Any], dict[str, Callable[..., Any]]], argv: Sequence[str]):
    """Parse ``argv`` as :func:`run` would, without running anything; a bad flag or value raises
    ``jsonargparse.ArgumentError`` with the parser's message (what the documentation tests use)."""
    parser = capture_parser(lambda: CLI(component, as_positional=False, args=[]))
    parser.exit_on_error = False
    return parser.parse_args(normalize_list_flags(list(argv), list_flags(parser)))


def is_first_process() -> bool:
    """False in the second and later processes of a distributed job (torchrun, Lightning's launcher, SLURM)."""
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def list_flags(parser) -> set[str]:
    """Option strings of every argument (in every subcommand) whose type is a list or a tuple."""
    flags: set[str] = set()
    for action in parser._actions:
        for sub in (getattr(action, "choices", None) or {}).values() if hasattr(action, "_name_parser_map") else ():
            flags |= list_flags(sub)
        if _is_sequence(getattr(action, "_typehint", None)):
            flags |= {s for s in action.option_strings if not s.endswith("+")}
    return flags


def _is_sequence(hint: Any) -> bool:
    if hint is None:
        return False
    if typing.get_origin(hint) is Union:
        return any(_is_sequence(arg) for arg in typing.get_args(hint) if arg is not type(None))
    return typing.get_origin(hint) in (list, tuple) or hint in (list, tuple)


def normalize_list_flags(argv: Sequence[str], flags: set[str]) -> list[str]:
    """Rewrite ``--flag a b`` and ``--flag a`` into ``--flag [a, b]`` for the list flags; the bracket form
    and ``null`` pass through unchanged."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        name, has_value, value = argv[i].partition("=")
        i += 1
        if name not in flags:
            out.append(argv[i - 1])
            continue
        values = [value] if has_value else []
        while not has_value and i < len(argv) and not argv[i].startswith("--"):
            values.append(argv[i])
            i += 1
        if len(values) == 1 and (values[0].lstrip().startswith("[") or values[0] in ("null", "None")):
            out += [name, values[0]]
        elif values:
            out += [name, "[" + ", ".join(_yaml_item(v) for v in values) + "]"]
        else:
            out.append(name)  # jsonargparse says what is missing
    return out


def _yaml_item(value: str) -> str:
    """A value as a YAML flow-sequence item: numbers and booleans as they are, anything else quoted."""
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    return value if isinstance(parsed, (int, float, bool)) and not isinstance(parsed, str) else json.dumps(value)
