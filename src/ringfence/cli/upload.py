"""Prepare inventory uploads: files go as they are; osquery result directories are bundled into one JSON file."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ringfence.errors import InputError

__all__ = ["prepare_uploads"]


def prepare_uploads(paths: list[Path]) -> tuple[list[Path], Callable[[], None]]:
    """Return the files to send and a cleanup function.

    A directory of ``<query>.json`` osquery results becomes one document
    ``{"<query>": rows, ...}`` named after the directory.
    """
    tmp = Path(tempfile.mkdtemp(prefix="ringfence-upload-"))
    uploads: list[Path] = []
    missing = [p for p in paths if not p.exists()]
    if missing:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError("inventory import rejected, nothing was changed",
                         [InputError.single("file", f"{p} does not exist", expected="an existing path").issues[0]
                          for p in missing])
    for path in paths:
        if path.is_dir():
            doc: dict[str, object] = {}
            for part in sorted(path.glob("*.json")):
                try:
                    doc[part.stem] = json.loads(part.read_text(encoding="utf-8"))
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise InputError.single("json", f"{part} is not valid JSON ({e})", location=str(part),
                                            expected="the output of osqueryi --json") from e
            bundle = tmp / f"{path.name}.json"
            bundle.write_text(json.dumps(doc), encoding="utf-8")
            uploads.append(bundle)
        else:
            uploads.append(path)
    return uploads, lambda: shutil.rmtree(tmp, ignore_errors=True)
