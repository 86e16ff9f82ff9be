"""Permission levels and how OCI token actions map onto them.

Permissions are granted per repository: read < write < admin. A workspace admin
holds admin on every repository of the workspace; a superuser holds admin
everywhere.
"""

from __future__ import annotations

from enum import IntEnum


class Permission(IntEnum):
    NONE = 0
    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Permission:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown permission {text!r} (read, write or admin)") from None

    @property
    def label(self) -> str:
        return self.name.lower()


# Docker token-scope actions and the permission each needs.
ACTION_PERMISSION = {
    "pull": Permission.READ,
    "push": Permission.WRITE,
    "delete": Permission.WRITE,
    "*": Permission.ADMIN,
}


def allowed_actions(permission: Permission, requested: list[str]) -> list[str]:
    """The subset of requested token actions that a permission grants."""
    return [a for a in requested if a in ACTION_PERMISSION and permission >= ACTION_PERMISSION[a]]


def effective_permission(
    *, superuser: bool, workspace_admin: bool, granted: Permission | None
) -> Permission:
    if superuser or workspace_admin:
        return Permission.ADMIN
    return granted or Permission.NONE
