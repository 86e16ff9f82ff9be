"""Repository names, tags and their Berth meaning.

An OCI repository name in Berth is ``<workspace>/<repository>/<image>``, where the
image part may itself contain ``/``. The grammar is the distribution spec's
(lowercase components separated by ``.``, ``_``, ``__`` or dashes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The patterns are shared with pydantic (Rust regex, no "\Z"), so they end in "$"; in
# Python always use fullmatch, since "$" alone also matches before a final newline.
COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-+[a-z0-9]+)*$")
PROJECT_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_NAME_LENGTH = 255


class InvalidName(ValueError):
    """An invalid repository name, tag, slug or key."""


@dataclass(frozen=True, slots=True)
class ImageName:
    workspace: str
    repository: str
    image: str

    @classmethod
    def parse(cls, name: str) -> ImageName:
        validate_repository_path(name)
        parts = name.split("/")
        if len(parts) < 3:
            raise InvalidName(f"{name!r} must have the form <workspace>/<repository>/<image>")
        return cls(parts[0], parts[1], "/".join(parts[2:]))

    def __str__(self) -> str:
        return f"{self.workspace}/{self.repository}/{self.image}"


def validate_repository_path(name: str) -> None:
    if not name:
        raise InvalidName("empty repository name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"repository name longer than {MAX_NAME_LENGTH} characters")
    for component in name.split("/"):
        if not component:
            raise InvalidName(f"{name!r} has an empty path component")
        if not COMPONENT_RE.fullmatch(component):
            raise InvalidName(
                f"{component!r} in {name!r} is not a valid component "
                "(lowercase letters, digits and single separators)"
            )


def validate_image_path(image: str) -> None:
    """The ``<image>`` part alone (may contain ``/``)."""
    validate_repository_path(image)


def validate_tag(tag: str) -> None:
    if not TAG_RE.fullmatch(tag):
        raise InvalidName(
            f"{tag!r} is not a valid tag (letters, digits, '_', '.', '-'; at most 128)"
        )


def is_valid_tag(tag: str) -> bool:
    return TAG_RE.fullmatch(tag) is not None


def validate_slug(slug: str, what: str = "slug") -> None:
    if not SLUG_RE.fullmatch(slug) or len(slug) > 63:
        raise InvalidName(
            f"{slug!r} is not a valid {what} (lowercase letters, digits and dashes, "
            "at most 63 characters)"
        )


def validate_project_key(key: str) -> None:
    if not PROJECT_KEY_RE.fullmatch(key):
        raise InvalidName(
            f"{key!r} is not a valid project key (uppercase letter first, then "
            "uppercase letters, digits or '_', at most 32)"
        )


def validate_username(name: str) -> None:
    if not USERNAME_RE.fullmatch(name):
        raise InvalidName(
            f"{name!r} is not a valid user name (lowercase letters, digits, '.', '_', "
            "'-', at most 64)"
        )
