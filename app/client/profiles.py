"""Connection profiles: where a registry is and who we are there.

A profile holds no secret. Its password or token lives in the system keyring
(:mod:`app.client.credentials`) under :attr:`Profile.secret_account`; the UI
settings module persists the rest (plain dicts from :meth:`Profile.to_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from app.client.transport import ConnectionSettings

Kind = Literal["berth", "oci"]
KINDS: tuple[Kind, ...] = ("berth", "oci")
KIND_LABELS: dict[Kind, str] = {"berth": "Berth registry", "oci": "OCI registry"}


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    url: str
    username: str = ""
    kind: Kind = "berth"
    verify_tls: bool = True
    ca_bundle: str | None = None
    # The app's own local registry: started and stopped with the app, credentials
    # generated on first start.
    embedded: bool = False
    # OCI registries whose catalog is off or hidden: repository names the admin
    # added by hand, browsed besides (or instead of) the catalog's.
    repositories: tuple[str, ...] = ()

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    @property
    def host(self) -> str:
        """host[:port], what a pull command puts in front of the image name."""
        return urlsplit(self.base_url).netloc

    @property
    def secret_account(self) -> str:
        """The keyring account holding this profile's password: one secret per user
        and registry, so two profiles for the same login share it."""
        return f"{self.username}@{self.base_url}"

    def connection(self) -> ConnectionSettings:
        return ConnectionSettings(
            self.base_url, verify_tls=self.verify_tls, ca_bundle=self.ca_bundle or None
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        kind = data.get("kind", "berth")
        return cls(
            name=str(data.get("name", "")),
            url=str(data.get("url", "")),
            username=str(data.get("username", "")),
            kind=kind if kind in KINDS else "berth",
            verify_tls=_bool(data.get("verify_tls", True)),
            ca_bundle=str(data["ca_bundle"]) if data.get("ca_bundle") else None,
            embedded=_bool(data.get("embedded", False)),
            repositories=_names(data.get("repositories")),
        )

    def with_url(self, url: str) -> Profile:
        return replace(self, url=url)


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(dict.fromkeys(v for v in value if isinstance(v, str) and v))


def _bool(value: Any) -> bool:
    # QSettings hands booleans back as "true"/"false" strings on some backends.
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def problems(profile: Profile, others: list[Profile] | None = None) -> list[str]:
    """What is wrong with a profile, as sentences for the connection dialog."""
    out: list[str] = []
    if not profile.name.strip():
        out.append("Give the connection a name.")
    elif any(p.name == profile.name for p in others or []):
        out.append(f"A connection named {profile.name!r} exists already.")
    parts = urlsplit(profile.url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        out.append("The URL must start with http:// or https:// and name a host.")
    if parts.scheme == "http" and profile.ca_bundle:
        out.append("A CA bundle only applies to https:// URLs.")
    return out
