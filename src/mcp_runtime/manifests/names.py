"""Kubernetes-safe names and label values, derived deterministically.

Every rendered object name is a DNS-1035 label (a Service name must start with a letter) of at most
63 characters. A name that would be too long is cut and given a short hash of the full name, so two
long server names never collide and the same server always gets the same names.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 63
MAX_LABEL_VALUE = 63

_NOT_NAME = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _clean_name(text: str) -> str:
    return _NOT_NAME.sub("-", text.lower()).strip("-")


def object_name(base: str, suffix: str = "") -> str:
    """`<base><suffix>` as a DNS-1035 label of at most 63 characters.

    Lowercases and replaces anything but letters, digits and '-'; prefixes `mcp-` when the result
    would not start with a letter; when too long, cuts the base and puts an 8-character hash of the
    full wanted name before the suffix (`<cut base>-<hash><suffix>`). Valid short names are unchanged.
    """
    clean = _clean_name(f"{base}{suffix}")
    if not clean[:1].isalpha():
        clean = f"mcp-{clean}".rstrip("-")
    if len(clean) <= MAX_NAME:
        return clean
    tail = f"-{short_hash(base + suffix)}{_clean_name(suffix) and '-' + _clean_name(suffix)}"
    head = _clean_name(base)
    if not head[:1].isalpha():
        head = f"mcp-{head}"
    head = head[: MAX_NAME - len(tail)].rstrip("-")
    return f"{head}{tail}"


def label_value(value: str) -> str:
    """A valid label value (at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends).

    Values that are already valid are kept as they are; others are cleaned and, when changed, given a
    short hash of the original so different inputs stay distinguishable.
    """
    if len(value) <= MAX_LABEL_VALUE and _LABEL_VALUE.match(value):
        return value
    clean = _NOT_LABEL_VALUE.sub("-", value).strip("-_.")
    tail = f"-{short_hash(value)}"
    head = clean[: MAX_LABEL_VALUE - len(tail)].rstrip("-_.")
    return f"{head}{tail}" if head else short_hash(value)
