# The hash that ties stored evidence to the code that produced it. Both
# `reprokit repro` (when it stores a run) and the Sphinx extension (when it
# embeds one) compute it the same way, so a change under code/ after a capture
# is noticed at build time.
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def code_hash(root: Path, files: Iterable[str]) -> str:
    """sha256 over each file's project-relative path and bytes, in sorted order.

    Line endings are normalised so a checkout with CRLF hashes the same.
    A missing file hashes as absent rather than raising: it is a change too.
    """
    digest = hashlib.sha256()
    for rel in sorted(set(files)):
        path = Path(root, rel)
        digest.update(rel.encode("utf-8") + b"\0")
        try:
            data = path.read_bytes().replace(b"\r\n", b"\n")
        except FileNotFoundError:
            digest.update(b"<missing>\0")
            continue
        digest.update(str(len(data)).encode() + b"\0" + data)
    return "sha256:" + digest.hexdigest()
