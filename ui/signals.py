"""The Data page's editable signal tree, and its conversion to the curation signal format.

The page edits a *UI tree*: every node has a stable `id` (so widget keys survive edits) and a
`negate` flag (shown as a NOT toggle); groups carry `op` ("and"/"or") and `children`, leaves carry
`kind` and the kind's settings. `to_signal` turns it into the plain dict core.data.signals reads
({"op": "and", "children": [...]}, {"op": "not", "child": ...}, {"kind": ..., ...}) and maps each
UI node to its path in that dict ("0", "0.1", ...) so per-node pass counts land on the right widget.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from typing import Any

from core.plan.presets import NIKE_SIGNAL

Node = dict[str, Any]

LEAF_DEFAULTS: dict[str, dict[str, Any]] = {
    "keywords": {"words": [], "mode": "any"},
    "word_list": {"list": "brand_products:Nike"},
    "regex": {"pattern": ""},
    "length": {"min": 3, "max": None, "unit": "words"},
    "label": {"values": []},
    "sentiment": {"polarity": "positive"},
    "confidence": {"model": "", "below": 0.6},
}

#: The seed scenario: reviews that mention Nike and one of its products and are positive.
EXAMPLE_SIGNAL: dict[str, Any] = NIKE_SIGNAL


def new_id() -> str:
    return secrets.token_hex(4)


def new_group(op: str = "and") -> Node:
    """An empty AND/OR group."""
    return {"id": new_id(), "op": op, "negate": False, "children": []}


def new_leaf(kind: str) -> Node:
    """A leaf of `kind` with its default settings."""
    return {"id": new_id(), "kind": kind, "negate": False, **copy.deepcopy(LEAF_DEFAULTS.get(kind, {}))}


def from_signal(signal: dict[str, Any] | None) -> Node:
    """A UI tree (root: a group) from a curation signal dict; None gives an empty AND group."""
    if not signal:
        return new_group()
    node = _from_signal(signal)
    if "op" in node and not node["negate"]:
        return node
    root = new_group()
    root["children"].append(node)
    return root


def _from_signal(signal: dict[str, Any]) -> Node:
    if signal.get("op") == "not":
        inner = _from_signal(signal.get("child") or {})
        inner["negate"] = not inner["negate"]
        return inner
    if signal.get("op") in ("and", "or"):
        group = new_group(signal["op"])
        group["children"] = [_from_signal(c) for c in signal.get("children") or []]
        return group
    leaf = {k: copy.deepcopy(v) for k, v in signal.items() if k != "name"}
    leaf.update(id=new_id(), negate=False)
    return leaf


def leaf_signal(node: Node) -> dict[str, Any]:
    """The curation dict of one leaf (settings left empty are omitted)."""
    out: dict[str, Any] = {"kind": node["kind"]}
    for key, value in node.items():
        if key in ("id", "kind", "negate") or value in (None, "", []):
            continue
        out[key] = value
    return out


def to_signal(
    root: Node, is_valid: Callable[[dict[str, Any]], bool] = lambda _: True
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """(curation signal dict or None when empty, UI node id -> path in that dict).

    Leaves for which `is_valid(leaf_dict)` is False and groups left empty are skipped, so a
    half-filled leaf does not break the whole tree.
    """
    paths: dict[str, str] = {}
    signal = _to_signal(root, "0", is_valid, paths)
    return signal, paths if signal is not None else {}


def _to_signal(node: Node, path: str, is_valid, paths: dict[str, str]) -> dict[str, Any] | None:
    inner_path = f"{path}.0" if node.get("negate") else path
    if "op" in node:
        children = []
        for child in node.get("children") or []:
            built = _to_signal(child, f"{inner_path}.{len(children)}", is_valid, paths)
            if built is not None:
                children.append(built)
        if not children:
            return None
        body = {"op": node["op"], "children": children}
    else:
        body = leaf_signal(node)
        if not is_valid(body):
            return None
    paths[node["id"]] = path
    return {"op": "not", "child": body} if node.get("negate") else body


def find(root: Node, node_id: str) -> tuple[Node | None, Node | None]:
    """(node, its parent) by id."""
    if root["id"] == node_id:
        return root, None
    for child in root.get("children") or []:
        if child["id"] == node_id:
            return child, root
        found, parent = find(child, node_id) if "op" in child else (None, None)
        if found is not None:
            return found, parent
    return None, None


def remove(root: Node, node_id: str) -> None:
    """Remove a node (never the root)."""
    _, parent = find(root, node_id)
    if parent is not None:
        parent["children"] = [c for c in parent["children"] if c["id"] != node_id]


def parse_list(value: str) -> list[str]:
    """'a, b ,,c' -> ['a', 'b', 'c']."""
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


def path_of(root: Node, node_id: str, path: str = "0") -> str | None:
    """Where a node sits in the tree as a path of child positions ("0" the root, "0.1" its 2nd child)."""
    if root["id"] == node_id:
        return path
    for index, child in enumerate(root.get("children") or []):
        found = path_of(child, node_id, f"{path}.{index}")
        if found is not None:
            return found
    return None
