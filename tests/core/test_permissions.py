"""Permission levels and the token actions each grants."""

from __future__ import annotations

import pytest

from app.core.permissions import Permission, allowed_actions, effective_permission


def test_levels_are_ordered_and_parse() -> None:
    assert Permission.NONE < Permission.READ < Permission.WRITE < Permission.ADMIN
    assert Permission.parse("Write") is Permission.WRITE
    assert Permission.ADMIN.label == "admin"
    with pytest.raises(ValueError, match="unknown permission"):
        Permission.parse("owner")


@pytest.mark.parametrize(
    ("permission", "granted"),
    [
        (Permission.NONE, []),
        (Permission.READ, ["pull"]),
        (Permission.WRITE, ["pull", "push", "delete"]),
        (Permission.ADMIN, ["pull", "push", "delete", "*"]),
    ],
)
def test_allowed_actions_are_an_intersection(permission: Permission, granted: list[str]) -> None:
    requested = ["pull", "push", "delete", "*", "bogus"]
    assert allowed_actions(permission, requested) == granted
    assert allowed_actions(permission, []) == []


def test_effective_permission() -> None:
    assert effective_permission(superuser=True, workspace_admin=False, granted=None) == (
        Permission.ADMIN
    )
    assert effective_permission(superuser=False, workspace_admin=True, granted=Permission.READ) == (
        Permission.ADMIN
    )
    assert effective_permission(
        superuser=False, workspace_admin=False, granted=Permission.WRITE
    ) == (Permission.WRITE)
    assert effective_permission(superuser=False, workspace_admin=False, granted=None) == (
        Permission.NONE
    )
