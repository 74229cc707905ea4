"""The plain-data form of a signal: which kinds and operators exist, the settings each kind takes.

`signal_from_dict` (core.data.signals) checks a stored node against these tables before it builds
the node, and a form that builds signals can read them without importing the signal tree.
"""

from __future__ import annotations

from typing import Any

from core.errors import ConfigError

SIGNAL_KINDS = ("keywords", "word_list", "regex", "length", "label", "sentiment", "confidence")
SIGNAL_OPS = ("and", "or", "not")
#: The settings each signal kind takes and their types (for forms that build signals).
SIGNAL_FIELDS = {
    "keywords": {"words": list, "mode": str, "case_sensitive": bool, "whole_word": bool},
    "word_list": {"list": str, "words": list},
    "regex": {"pattern": str, "case_sensitive": bool},
    "length": {"min": int, "max": int, "unit": str},
    "label": {"values": list, "column": str},
    "sentiment": {"polarity": str, "method": str, "model": str},
    "confidence": {"model": str, "below": float},
}
#: The settings a kind cannot do without.
REQUIRED_SETTINGS = {"keywords": ("words",), "regex": ("pattern",), "label": ("values",), "confidence": ("model",)}


def signal_place(path: str) -> str:
    """A node's place in words from its path ("0" the root, "0.1.0" its 2nd child's 1st child): "Signal 2 › 1"."""
    below = [int(part) + 1 for part in path.split(".")[1:] if part.isdigit()]
    return "The top signal" if not below else "Signal " + " › ".join(str(n) for n in below)


def leaf_settings(kind: str, data: dict[str, Any], where: str) -> dict[str, Any]:
    """The settings of a stored `kind` node, checked against SIGNAL_FIELDS; a ConfigError names the node `where`."""
    allowed = SIGNAL_FIELDS[kind]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "kind":
            continue
        if key not in allowed:
            raise ConfigError(
                f"{where}: a {kind} signal has no setting {key!r}; it takes: {', '.join(allowed)}.",
                field="data.curation.signal",
            )
        expected = allowed[key]
        if value is not None and not _has_type(value, expected):
            raise ConfigError(
                f"{where}: {kind} setting {key!r} must be {_type_name(expected)}, not {value!r}.",
                field="data.curation.signal",
            )
        kwargs[key] = value
    missing = [k for k in REQUIRED_SETTINGS.get(kind, ()) if kwargs.get(k) in (None, [], "")]
    if missing:
        raise ConfigError(f"{where}: a {kind} signal needs {', '.join(missing)}.", field="data.curation.signal")
    if kind == "keywords" and not all(isinstance(w, str) for w in kwargs["words"]):
        raise ConfigError(f"{where}: keywords must be a list of words (text).", field="data.curation.signal")
    return kwargs


def _has_type(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _type_name(expected: type) -> str:
    return {str: "text", int: "a whole number", float: "a number", bool: "true or false", list: "a list"}[expected]
