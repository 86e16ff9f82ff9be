"""The tree of a plain OCI registry: its repository names grouped by path segment.

``library/nginx``, ``team/app/api`` and ``team/app/web`` make the namespaces
``library``, ``team`` and ``team/app``; a namespace lists every name at or under
it. Names are kept sorted, so the names under a path are found by bisection, not
by a scan of the whole catalog per click. No Qt here.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable

from app.ui.backends.protocol import Namespace


def image_id(name: str) -> int:
    """A stable id for a repository name: the window remembers the last image by id
    across sessions, and a counter would hand the same id to another name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:6], "big")


def parent_path(name: str) -> str:
    return name.rsplit("/", 1)[0] if "/" in name else ""


class NameTree:
    """Sorted repository names and the namespaces they make."""

    def __init__(self, registry: str, names: Iterable[str] = ()) -> None:
        self.registry = registry
        self.names: list[str] = sorted(set(names))

    def __len__(self) -> int:
        return len(self.names)

    def under(self, path: str) -> list[str]:
        """Names equal to ``path`` or below it ("" : every name)."""
        if not path:
            return list(self.names)
        # Every name below path lies in [path, path + "0") ("/" sorts just before
        # "0"); so do a few siblings such as path-x, dropped by the check.
        start = bisect.bisect_left(self.names, path)
        end = bisect.bisect_left(self.names, path + "0")
        return [n for n in self.names[start:end] if n == path or n.startswith(path + "/")]

    def namespace(self, path: str) -> Namespace:
        names = self.under(path)
        prefix = path + "/" if path else ""
        deeper = any("/" in n[len(prefix) :] for n in names if n != path)
        return Namespace(self.registry, path, len(names), deeper)

    def children(self, path: str) -> list[Namespace]:
        """The namespaces one segment below ``path``."""
        prefix = path + "/" if path else ""
        found: dict[str, None] = {}
        for name in self.under(path):
            rest = name[len(prefix) :] if name != path else ""
            if "/" in rest:
                found[prefix + rest.split("/", 1)[0]] = None
        return [self.namespace(p) for p in sorted(found, key=lambda p: p.split("/"))]
