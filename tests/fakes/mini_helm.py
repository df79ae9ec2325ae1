"""NOT Helm: a tiny renderer for the subset of Go templates the mcp-runtime chart is written in, so tests
can render the chart where the `helm` binary is unavailable (it is not packaged in Debian bookworm).

Supported, and nothing more (anything else raises, so the chart cannot silently drift outside the
subset): `{{ .Values.a.b }}`, `{{ .Release.Namespace }}`, `{{ .Release.Name }}`, string literals,
the pipe `| quote`, `{{ if EXPR }}` / `{{ else if EXPR }}` / `{{ else }}` / `{{ end }}` with EXPR made of
`and`, `or`, `not`, `eq`, `ne`, parentheses, values and literals, and whitespace trimming with `{{-`
and `-}}`. Output is split on `---` and parsed as YAML.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
_TOKEN = re.compile(r'\s*(\(|\)|"(?:[^"\\]|\\.)*"|[^\s()]+)')


class TemplateError(Exception):
    pass


def _tokens(expr: str) -> list[str]:
    out, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise TemplateError(f"cannot parse {expr!r}")
        out.append(match.group(1))
        pos = match.end()
    return out


class _Eval:
    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context

    def value(self, token: str) -> Any:
        if token.startswith('"'):
            return bytes(token[1:-1], "utf-8").decode("unicode_escape")
        if token in ("true", "false"):
            return token == "true"
        if token.startswith("."):
            node: Any = self.context
            for part in token[1:].split("."):
                if not isinstance(node, dict):
                    raise TemplateError(f"{token}: {part} is not reachable")
                node = node.get(part)
            return node
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        raise TemplateError(f"unsupported token {token!r}")

    def expr(self, tokens: list[str]) -> Any:
        result, rest = self._call(tokens)
        if rest:
            raise TemplateError(f"trailing tokens {rest}")
        return result

    def _call(self, tokens: list[str]) -> tuple[Any, list[str]]:
        head, rest = tokens[0], tokens[1:]
        if head in ("and", "or", "not", "eq", "ne"):
            args = []
            while rest and rest[0] != ")":
                arg, rest = self._atom(rest)
                args.append(arg)
            return self._apply(head, args), rest
        return self._atom(tokens)

    def _atom(self, tokens: list[str]) -> tuple[Any, list[str]]:
        if tokens[0] == "(":
            value, rest = self._call(tokens[1:])
            if not rest or rest[0] != ")":
                raise TemplateError("unbalanced parentheses")
            return value, rest[1:]
        return self.value(tokens[0]), tokens[1:]

    @staticmethod
    def _apply(op: str, args: list[Any]) -> Any:
        if op == "and":
            return all(args)
        if op == "or":
            return any(args)
        if op == "not":
            return not args[0]
        if op == "eq":
            return args[0] == args[1]
        return args[0] != args[1]

    def output(self, expr: str) -> str:
        parts = [p.strip() for p in expr.split("|")]
        value = self.expr(_tokens(parts[0]))
        for fn in parts[1:]:
            if fn != "quote":
                raise TemplateError(f"unsupported function {fn!r}")
            value = '"' + str("" if value is None else value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)


def render_template(text: str, context: dict[str, Any]) -> str:
    evaluator = _Eval(context)
    out: list[str] = []
    # stack of (parent emitting?, this branch emitting?, a branch already taken?)
    stack: list[tuple[bool, bool, bool]] = []
    emitting = True
    pos = 0
    pieces: list[tuple[str, str]] = []
    for match in _ACTION.finditer(text):
        literal = text[pos:match.start()]
        if match.group(1):
            literal = literal.rstrip()
        pieces.append(("text", literal))
        pieces.append(("action", match.group(2)))
        pos = match.end()
        if match.group(3):
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip())
    pieces.append(("text", text[pos:]))
    for kind, body in pieces:
        if kind == "text":
            if emitting:
                out.append(body)
            continue
        words = body.split(None, 1)
        keyword = words[0] if words else ""
        if keyword == "if":
            taken = emitting and bool(evaluator.expr(_tokens(words[1])))
            stack.append((emitting, taken, taken))
            emitting = taken
        elif keyword == "else":
            if not stack:
                raise TemplateError("else without if")
            parent, _, done = stack.pop()
            rest = body[len("else"):].strip()
            if rest.startswith("if "):
                taken = parent and not done and bool(evaluator.expr(_tokens(rest[3:])))
            elif rest:
                raise TemplateError(f"unsupported else clause {body!r}")
            else:
                taken = parent and not done
            stack.append((parent, taken, done or taken))
            emitting = taken
        elif keyword == "end":
            if not stack:
                raise TemplateError("end without if")
            emitting = stack.pop()[0]
        elif keyword.startswith("/*"):
            continue
        elif emitting:
            out.append(evaluator.output(body))
    if stack:
        raise TemplateError("if without end")
    return "".join(out)


def render_chart(chart: Path, values: dict[str, Any], *, namespace: str, release: str = "mcp-runtime") -> list[dict]:
    """Render every `templates/*.yaml` of the chart; returns the YAML documents (empty ones dropped)."""
    context = {"Values": values, "Release": {"Namespace": namespace, "Name": release}}
    docs: list[dict] = []
    for template in sorted((chart / "templates").glob("*.yaml")):
        rendered = render_template(template.read_text(), context)
        for doc in yaml.safe_load_all(rendered):
            if doc:
                docs.append(doc)
    return docs


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = merge_values(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out
