"""Crash-safe file primitives: atomic whole-file writes and append-only JSON lines.

A small module of its own so that `core.config` (which saves config.yaml atomically) and
`core.run.folder` (which imports RunConfig) do not import each other.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

# mkstemp creates files readable by their owner only; a config, a metrics file or an exported model card should
# get the mode any other file the user writes gets. The umask can only be read by setting it, so once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically (see atomic_write_text)."""
    atomic_write_text(path, json.dumps(data, indent=2, default=str))


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line; one write call so a crash tears at most this line."""
    line = (json.dumps(_finite(record), default=_json_default, allow_nan=False) + "\n").encode("utf-8")
    with open(path, "a+b") as handle:
        # A process killed mid-write leaves a torn last line without its newline; the first record
        # appended after a restart (e.g. the resume event) would be glued to it and lost with it.
        if handle.seek(0, os.SEEK_END) > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                line = b"\n" + line
        handle.write(line)
        handle.flush()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read every complete line; a torn or garbled line (crash mid-write) is skipped."""
    records: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(value, dict):
                    records.append(value)
    except FileNotFoundError:
        pass
    return records


def _finite(value: Any) -> Any:
    """NaN and infinities (anywhere in nested data) become None: JSON has no spelling for them."""
    if isinstance(value, float):
        return clean_number(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def clean_number(value: Any) -> Any:
    """JSON has no NaN/inf: store them as None so files stay valid and readers stay simple."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value
