"""Argument conditions of grant tool rules: CEL expressions over the call's `args` and its `caller`.

Why CEL through `common-expression-language` (the `cel` module): CEL is the expression language
Kubernetes admission policies and Envoy use, it cannot loop or call out (every expression ends), and this
binding compiles an expression once into a reusable `Program` (Rust `cel-interpreter`), so a call costs a
few microseconds rather than a parse. It is imported on first use: its package also loads a REPL.

An expression sees two variables:

- `args`: the `arguments` object of the `tools/call` (an empty map when the call sent none);
- `caller`: `{"humanID", "agentID", "teamID", "sessionID"}` of the verified identity (null when unset).

It must evaluate to `true` for the rule to allow; `false`, an error (a missing argument, a wrong type) or a
non-boolean result denies. This module only compiles and checks; `policy/` evaluates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cel import Program

MAX_CONDITION = 2048
"""Longest condition accepted (characters): a rule, not a program."""

VARIABLES = frozenset({"args", "caller"})
CALLER_KEYS = ("humanID", "agentID", "teamID", "sessionID")

# Names a comprehension macro binds (`args.items.all(x, x > 0)` binds `x`): CEL reports them as variables.
_BINDERS = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")


class ConditionError(ValueError):
    """A condition that does not compile, or names a variable other than `args` and `caller`."""


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """A compiled condition, and whether it reads `caller` (converting a variable the expression does not
    read would cost more than evaluating it)."""

    source: str
    program: Program
    uses_caller: bool

    def check(self, arguments: Mapping[str, Any], caller: Callable[[], Mapping[str, str | None]]) -> str | None:
        """None when the condition holds for these arguments and caller, else why not (fail closed)."""
        context = {"args": arguments, "caller": caller()} if self.uses_caller else {"args": arguments}
        return _run(self.program, context)


@lru_cache(maxsize=4096)
def compile_condition(source: str) -> CompiledCondition:
    """Compile `source` once (the cache keeps each distinct condition's program), or ConditionError."""
    if not source.strip():
        raise ConditionError("the condition is empty: write a CEL expression such as 'args.amount <= 100'")
    if len(source) > MAX_CONDITION:
        raise ConditionError(f"the condition is {len(source)} characters long; at most {MAX_CONDITION}")
    import cel  # heavy (see the module docstring): imported only when a condition exists

    try:
        program = cel.compile(source)
    except Exception as exc:  # the binding raises ValueError with the parser's message
        raise ConditionError(f"not a valid CEL expression: {_first_line(exc)}") from None
    names = set(program.variables())
    unknown = names - VARIABLES - set(_BINDERS.findall(source))
    if unknown:
        raise ConditionError(
            f"unknown name(s) {', '.join(sorted(unknown))}: a condition may use only 'args' (the call's "
            "arguments, e.g. args.amount) and 'caller' (caller.humanID, caller.agentID, caller.teamID)"
        )
    return CompiledCondition(source, program, "caller" in names)


def _run(program: Program, context: dict[str, Any]) -> str | None:
    """Run a compiled condition: None when it holds, else why not (false, an error, not a boolean).

    Fails closed: anything but the boolean `true` is a reason to deny."""
    try:
        result = program.execute(context)
    except Exception as exc:  # KeyError for a missing argument, TypeError for a wrong type, ...
        if isinstance(exc, KeyError):
            return f"argument {exc.args[0]!r} is missing" if exc.args else "an argument is missing"
        return f"error: {_first_line(exc)}"
    if result is True:
        return None
    if result is False:
        return "evaluated to false"
    return f"evaluated to {type(result).__name__} {result!r}, not a boolean"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
