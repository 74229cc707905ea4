"""Files the dashboard writes or hands out: stored uploads and zipped models.

Uploads are stored as plain bytes under a sanitised, content-addressed name and are only ever read
as tables by core.data.tables; nothing is executed or unpickled.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 80


def sanitise_filename(name: str) -> str:
    """A safe base name: no folders, no leading dots, only letters, digits, '.', '_' and '-'."""
    base = Path(str(name).replace("\\", "/")).name
    base = _UNSAFE.sub("_", base).lstrip("._-")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = stem[: MAX_NAME - len(suffix) - 1] or "upload"
    return f"{stem}.{suffix.lower()}" if suffix else stem


def file_suffix(name: str) -> str:
    """'.csv' for 'Reviews.CSV'; compound suffixes ('.jsonl.gz') are not supported."""
    return Path(sanitise_filename(name)).suffix.lower()


def save_upload(name: str, data: bytes, root: Path) -> Path:
    """Store uploaded bytes as <root>/<sha256[:12]>-<name>; the same content is stored once."""
    digest = hashlib.sha256(data).hexdigest()[:12]
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{digest}-{sanitise_filename(name)}"
    if not target.exists():
        fd, tmp = tempfile.mkstemp(prefix=".upload.", dir=root)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return target


def zip_folder(folder: Path) -> bytes:
    """The folder as zip bytes (built in a temporary directory that is removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="tuneboard-zip-") as tmp:
        archive = shutil.make_archive(str(Path(tmp) / folder.name), "zip", root_dir=folder)
        return Path(archive).read_bytes()
