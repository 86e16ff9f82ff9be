"""Mounting the management API on the registry's ASGI app."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.registry.api import (
    admin,
    audit,
    errors,
    events,
    gc,
    images,
    manifests,
    overview,
    policies,
    storage,
    tags,
    trash,
    workspaces,
)

PREFIX = "/api/v1"
ROUTERS = (
    workspaces.router,
    images.router,
    tags.router,
    manifests.router,
    storage.router,
    overview.router,
    gc.router,
    policies.router,
    trash.router,
    audit.router,
    events.router,
    admin.router,
)


def mount(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX)
    errors.install(app)
    events.install(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description="Berth registry management API: see the resource map in "
                "app/registry/api/__init__.py",
                routes=app.routes,
            )
            _drop_unused_validation_responses(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _drop_unused_validation_responses(schema: dict[str, Any]) -> None:
    """Invalid requests answer 400 in the one error shape, never FastAPI's 422."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
