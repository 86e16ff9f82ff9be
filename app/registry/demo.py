"""``berth-registry demo``: seed an empty data directory with a registry worth exploring.

Three workspaces of projects, repositories and images with months of history: CI
builds pushing version tags, ``latest`` moving, nightly builds replacing each other,
pull-request tags pushed and cleaned up, a base-image upgrade half way, a multi-arch
image, SBOMs and signatures referring to releases, an image deleted, and weekly GC
runs that really free what became unreferenced. Everything goes through the same
code as a push over HTTP (app.registry.content and the blob store), on a clock that
runs from months ago to now, so dates, storage history and GC runs are real. The
last deletions happen "now", so GC has work pending when the registry starts.

Users at each permission level are created with generated passwords (printed, and
written to ``DIR/demo-credentials.txt``, mode 0600, once the seeding is done);
``--admin-user NAME --password-stdin`` lets a caller (the desktop app's ``--demo``)
choose the superuser.

The registry may serve while it is seeded (the desktop app shows the demo as it
lands): ``demo: database ready`` once the database is migrated (a server may start
on it); the superuser, workspaces, projects and repositories come first, in one
transaction, announced by ``demo: accounts ready``; then the other users and the
history, with ``demo: seeding N %`` lines. Meanwhile garbage collection is held
(``gc.HOLD_KEY``): it runs on the story's clock here, not on the server's. A seeding
cut short (the app closed) leaves that hold and no "seeded" mark; ``demo`` run
again on such a registry throws it away and seeds it anew.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import secrets
import shutil
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from sqlalchemy import delete, func, insert, select

from app.core.manifests import parse_manifest
from app.core.permissions import Permission
from app.registry import accounts, content
from app.registry.accounts import Repository
from app.registry.blobstore import FileBlobStore, new_generation
from app.registry.content import Blob, Image, Timing
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.errors import RegistryError
from app.registry.gc import collector as gc
from app.registry.gc import samples
from app.registry.service import Registry

CREDENTIALS_FILE = "demo-credentials.txt"
SEEDED_KEY = "demo_seeded"
HOLD_REASON = "the demo is being seeded"
# Lines on stdout a caller may follow (the desktop app does): the database exists
# (migrated: a server may start on it), the superuser and the workspaces exist.
DATABASE_READY = "demo: database ready"
ACCOUNTS_READY = "demo: accounts ready"
PROGRESS = "demo: seeding "  # + "N %"
PROGRESS_STEP = 5  # per cent
DAY_MS = 24 * 3600 * 1000
HOUR_MS = 3600 * 1000
DAYS = 120
RECENT_REVIEW_DELAY_MS = 10 * 60_000

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
SBOM_TYPE = "application/spdx+json"
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"

# Base layers (kilobytes) and what each stack is made of. Each base is rebuilt once,
# half way through, so older builds hold the old generation of it.
BASE_KB = {"debian": 1800, "alpine": 700, "python": 1500, "node": 1500, "jdk": 2200, "static": 200}
STACKS = {
    "debian": ("debian",),
    "alpine": ("alpine",),
    "python": ("debian", "python"),
    "node": ("debian", "node"),
    "jdk": ("debian", "jdk"),
    "static": ("static",),
}


@dataclass(frozen=True, slots=True)
class ImageSpec:
    name: str
    stack: str
    builds: int  # release builds over the period
    app_kb: int = 60
    nightly: bool = False
    prs: int = 0  # pull-request builds, each tagged pr-N and mostly cleaned up later
    multiarch: bool = False
    signed: bool = False  # releases get an SBOM and a signature (referrers)
    retired: bool = False  # built in the first half only, then deleted with its tags


# workspace -> (name, project -> (name, repository -> images))
CATALOG: dict[str, tuple[str, dict[str, tuple[str, dict[str, list[ImageSpec]]]]]] = {
    "acme": (
        "Acme Inc.",
        {
            "PLATFORM": (
                "Platform",
                {
                    "web-app": [
                        ImageSpec("frontend", "node", 80, 30, nightly=True, prs=40, signed=True),
                        ImageSpec("backend", "python", 40, 80, prs=15),
                        ImageSpec("nginx", "alpine", 8, 20),
                        ImageSpec("storybook", "node", 12, 40),
                        ImageSpec("e2e/runner", "node", 10, 50),
                        ImageSpec("docs-site", "alpine", 6, 20),
                    ],
                    "api": [
                        ImageSpec("gateway", "static", 24, 120, multiarch=True, signed=True),
                        ImageSpec("worker", "python", 30, 60, nightly=True),
                        ImageSpec("scheduler", "python", 14, 40),
                        ImageSpec("v2/gateway", "static", 10, 120),
                        ImageSpec("migrations", "python", 8, 20),
                    ],
                    "auth": [
                        ImageSpec("oauth-proxy", "alpine", 10, 90),
                        ImageSpec("keycloak-theme", "jdk", 8, 30),
                        ImageSpec("legacy-login", "jdk", 6, 150, retired=True),
                    ],
                },
            ),
            "DATA": (
                "Data",
                {
                    "etl": [
                        ImageSpec("spark-jobs", "jdk", 16, 200),
                        ImageSpec("airflow", "python", 12, 100),
                        ImageSpec("dbt", "python", 20, 30),
                    ],
                    "warehouse": [
                        ImageSpec("loader", "python", 10, 50),
                        ImageSpec("backup", "alpine", 5, 20),
                        ImageSpec("dashboards", "node", 6, 40),
                    ],
                },
            ),
            "MOBILE": (
                "Mobile",
                {
                    "ios-build": [
                        ImageSpec("fastlane", "debian", 9, 120),
                        ImageSpec("simulator-runner", "debian", 4, 60),
                        ImageSpec("signing", "alpine", 3, 20),
                    ]
                },
            ),
        },
    ),
    "globex": (
        "Globex Corporation",
        {
            "OPS": (
                "Operations",
                {
                    "tools": [
                        ImageSpec("cli", "static", 18, 80, multiarch=True),
                        ImageSpec("debug/toolbox", "debian", 6, 300),
                        ImageSpec("terraform", "alpine", 10, 150),
                        ImageSpec("ansible", "python", 5, 60),
                    ],
                    "monitoring": [
                        ImageSpec("prometheus", "alpine", 8, 200),
                        ImageSpec("grafana", "debian", 8, 250),
                        ImageSpec("exporters/node", "static", 6, 60),
                        ImageSpec("exporters/postgres", "static", 6, 60),
                        ImageSpec("alertmanager", "alpine", 5, 80),
                        ImageSpec("loki", "static", 4, 120),
                    ],
                },
            ),
            "ML": (
                "Machine learning",
                {
                    "models": [
                        ImageSpec("resnet-serving", "python", 8, 400),
                        ImageSpec("bert-serving", "python", 8, 400),
                        ImageSpec("training/base", "python", 5, 300),
                    ],
                    "notebooks": [
                        ImageSpec("jupyter", "python", 10, 150, nightly=True),
                        ImageSpec("rstudio", "debian", 5, 200),
                        ImageSpec("spark-notebook", "jdk", 3, 100),
                    ],
                },
            ),
        },
    ),
    "initech": (
        "Initech",
        {
            "CORE": (
                "Core systems",
                {
                    "tps-reports": [
                        ImageSpec("generator", "jdk", 12, 100),
                        ImageSpec("archive", "debian", 4, 80),
                        ImageSpec("cover-sheet", "jdk", 6, 40),
                        ImageSpec("stapler-service", "static", 5, 30),
                    ],
                    "printer-drivers": [
                        ImageSpec("pc-load-letter", "debian", 7, 60),
                        ImageSpec("cups", "debian", 5, 90),
                        ImageSpec("fax-gateway", "alpine", 4, 70),
                        ImageSpec("paper-tray", "alpine", 3, 20),
                    ],
                },
            ),
        },
    ),
}

# Who can do what: name -> (description, superuser?, memberships, grants).
UserSpec = tuple[str, bool, dict[str, bool], dict[str, Permission]]
USERS: dict[str, UserSpec] = {
    "alice": ("workspace admin of acme", False, {"acme": True}, {}),
    "bob": (
        "member of acme: write on acme/web-app and acme/api, read on acme/etl",
        False,
        {"acme": False},
        {
            "acme/web-app": Permission.WRITE,
            "acme/api": Permission.WRITE,
            "acme/etl": Permission.READ,
        },
    ),
    "carol": (
        "member of acme: read on acme/web-app",
        False,
        {"acme": False},
        {"acme/web-app": Permission.READ},
    ),
    "dave": (
        "member of acme: admin on acme/auth",
        False,
        {"acme": False},
        {"acme/auth": Permission.ADMIN},
    ),
    "erin": ("guest: read on globex/monitoring", False, {}, {"globex/monitoring": Permission.READ}),
    "frank": (
        "workspace admin of globex and initech",
        False,
        {"globex": True, "initech": True},
        {},
    ),
    "ci-bot": (
        "CI pushes: write on every acme and globex repository",
        False,
        {},
        {
            f"{ws}/{repo}": Permission.WRITE
            for ws in ("acme", "globex")
            for _, repos in CATALOG[ws][1].values()
            for repo in repos
        },
    ),
}


@dataclass
class Credentials:
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # user, password, access

    def text(self) -> str:
        width = max(len(u) for u, _, _ in self.rows) + 2
        lines = ["# Berth demo registry users (berth-registry demo)", ""]
        lines += [f"{u:<{width}}{p:<24}{a}" for u, p, a in self.rows]
        return "\n".join(lines) + "\n"


# bytes -------------------------------------------------------------------------


def _tar_gz(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzip'd tar of ``files`` (deterministic) and its diff id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            info.mode = 0o755 if name.startswith("usr/bin/") else 0o644
            tar.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    diff_id = "sha256:" + hashlib.sha256(plain).hexdigest()
    return gzip.compress(plain, compresslevel=1, mtime=0), diff_id


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Layer:
    data: bytes
    diff_id: str
    # Hashed once: a base layer of megabytes is pushed with every build that uses it.
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", _digest(self.data))


class Layers:
    """Layer bytes, made once per (kind, version, arch) and reused across workspaces
    (each workspace still stores its own copy: workspaces never share blobs)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int, str], Layer] = {}

    def base(self, kind: str, version: int, arch: str) -> Layer:
        key = (kind, version, arch)
        if key not in self._cache:
            rng = random.Random(f"{kind}/{version}/{arch}")
            release = f'NAME="{kind}"\nVERSION_ID="{version}"\nARCH="{arch}"\n'.encode()
            self._cache[key] = Layer(
                *_tar_gz(
                    {
                        f"usr/lib/{kind}/lib{kind}.so": rng.randbytes(BASE_KB[kind] * 1024),
                        f"etc/{kind}-release": release,
                    }
                )
            )
        return self._cache[key]

    @staticmethod
    def app(image: str, build: str, kilobytes: int) -> Layer:
        rng = random.Random(f"{image}@{build}")
        name = image.rsplit("/", 1)[-1]
        return Layer(
            *_tar_gz(
                {
                    f"usr/bin/{name}": rng.randbytes(kilobytes * 1024),
                    f"usr/share/{name}/BUILD": build.encode(),
                }
            )
        )


# the seeding clock and writes ----------------------------------------------------


@dataclass
class Pushed:
    digest: str
    manifest: bytes
    media_type: str
    size: int


class Seeder:
    """Writes content through app.registry.content at the times the simulation says."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self.layers = Layers()

    def image(self, repo: Repository, name: str, now: int) -> Image:
        with self.reg.db.write() as conn:
            return content.ensure_image(conn, repo, name, now)

    def blob(self, image: Image, data: bytes, now: int, digest: str | None = None) -> None:
        digest = digest or _digest(data)
        with self.reg.db.read() as conn:
            held = content.workspace_blob(conn, image.workspace_id, digest) is not None
        generation = new_generation()
        if not held:
            # Straight to the object's key, without the upload path's fsyncs: a seed
            # cut short is thrown away, not recovered.
            self.reg.store.put_object(image.workspace_id, digest, generation, data)
        kept = False
        try:
            with self.reg.db.write() as conn:
                _blob, kept = content.finish_upload(
                    conn, image, digest, len(data), generation, self.reg.timing, now
                )
        finally:
            if not held and not kept:
                self.reg.store.delete_object(image.workspace_id, digest, generation)

    def _read_config(self, blob: Blob) -> bytes | None:
        return self.reg.store.read_bytes(
            blob.workspace_id, blob.digest, blob.generation, content.MAX_CONFIG_READ
        )

    def manifest(
        self, image: Image, payload: bytes, media_type: str, tag: str | None, now: int, actor: str
    ) -> Pushed:
        digest = _digest(payload)
        parsed = parse_manifest(payload, media_type)
        with self.reg.db.write() as conn:
            content.put_manifest(
                conn,
                image,
                digest,
                payload,
                parsed,
                tag,
                self._read_config,
                self.reg.timing,
                now,
                actor=actor,
            )
        return Pushed(digest, payload, media_type, len(payload))

    def tag(self, image: Image, pushed: Pushed, tag: str, now: int, actor: str) -> None:
        self.manifest(image, pushed.manifest, pushed.media_type, tag, now, actor)

    def delete_tags(self, image: Image, tags: list[str], now: int, actor: str) -> None:
        with self.reg.db.write() as conn:
            content.delete_tags(conn, image, tags, self.reg.timing, now, actor)

    def delete_image(self, image: Image, now: int, actor: str) -> None:
        with self.reg.db.write() as conn:
            content.delete_image(conn, image, self.reg.timing, now, actor)

    # OCI documents -------------------------------------------------------------

    def build(
        self,
        image: Image,
        spec: ImageSpec,
        label: str,
        base_version: int,
        arch: str,
        now: int,
        kilobytes: int,
    ) -> Pushed:
        """Push one single-platform image (layers, config, manifest by digest)."""
        layers = [self.layers.base(k, base_version, arch) for k in STACKS[spec.stack]]
        layers.append(self.layers.app(f"{image.name}/{arch}", label, kilobytes))
        created = _rfc3339(now - random.Random(label).randint(60, 900) * 1000)
        config = json.dumps(
            {
                "created": created,
                "architecture": arch,
                "os": "linux",
                "config": {
                    "Labels": {
                        "org.opencontainers.image.version": label,
                        "org.opencontainers.image.title": image.name,
                    },
                    "Entrypoint": [f"/usr/bin/{image.name.rsplit('/', 1)[-1]}"],
                },
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
                "history": [{"created": created, "created_by": "berth demo"} for _ in layers],
            },
            sort_keys=True,
        ).encode()
        for layer in layers:
            self.blob(image, layer.data, now, layer.digest)
        self.blob(image, config, now)
        payload = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": _digest(config), "size": len(config)},
                "layers": [
                    {"mediaType": OCI_LAYER, "digest": layer.digest, "size": len(layer.data)}
                    for layer in layers
                ],
                "annotations": {"org.opencontainers.image.created": created},
            },
            sort_keys=True,
        ).encode()
        return self.manifest(image, payload, OCI_MANIFEST, None, now, "ci-bot")

    def index(self, image: Image, children: list[tuple[str, Pushed]], now: int) -> Pushed:
        payload = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": child.media_type,
                        "digest": child.digest,
                        "size": child.size,
                        "platform": {"os": "linux", "architecture": arch},
                    }
                    for arch, child in children
                ],
            },
            sort_keys=True,
        ).encode()
        return self.manifest(image, payload, OCI_INDEX, None, now, "ci-bot")

    def referrer(
        self, image: Image, subject: Pushed, artifact_type: str, body: bytes, now: int
    ) -> None:
        empty = b"{}"
        for data in (empty, body):
            self.blob(image, data, now)
        payload = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": {"mediaType": OCI_EMPTY, "digest": _digest(empty), "size": 2},
                "layers": [
                    {"mediaType": artifact_type, "digest": _digest(body), "size": len(body)}
                ],
                "subject": {
                    "mediaType": subject.media_type,
                    "digest": subject.digest,
                    "size": subject.size,
                },
            },
            sort_keys=True,
        ).encode()
        self.manifest(image, payload, OCI_MANIFEST, None, now, "ci-bot")


def _rfc3339(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


# the story -------------------------------------------------------------------------


@dataclass(order=True)
class Event:
    at: int
    order: int
    run: Callable[[int], None] = field(compare=False)


@dataclass
class ImageState:
    spec: ImageSpec
    repo: Repository
    version: list[int]
    pushed: dict[str, Pushed] = field(default_factory=dict)  # tag -> what it points at
    releases: list[str] = field(default_factory=list)
    created: Image | None = None

    @property
    def image(self) -> Image:
        assert self.created is not None, "pushed to before its first build"
        return self.created


class Story:
    """Everything that happens to the registry over the period, in time order."""

    def __init__(self, seeder: Seeder, start: int, end: int, rng: random.Random) -> None:
        self.seeder = seeder
        self.start = start
        self.end = end
        self.rng = rng
        self.events: list[Event] = []
        self.upgrade_at = start + (end - start) // 2  # the base images are rebuilt here

    def at(self, when: int, run: Callable[[int], None]) -> None:
        self.events.append(Event(when, len(self.events), run))

    def working_hours(self, count: int, until: int | None = None) -> Iterator[int]:
        """``count`` times on weekdays between 08:00 and 19:00 UTC, in order."""
        days = [
            self.start + d * DAY_MS
            for d in range(((until or self.end) - self.start) // DAY_MS)
            if time.gmtime((self.start + d * DAY_MS) / 1000).tm_wday < 5
        ]
        picks = sorted(
            self.rng.choice(days) + self.rng.randint(8 * HOUR_MS, 19 * HOUR_MS)
            for _ in range(count)
        )
        return iter(picks)

    def base_version(self, when: int) -> int:
        return 2 if when >= self.upgrade_at else 1

    def ensure(self, state: ImageState, when: int) -> None:
        # Created by its first push, as over HTTP.
        if state.created is None:
            state.created = self.seeder.image(state.repo, state.spec.name, when)

    def release(self, state: ImageState, when: int) -> None:
        self.ensure(state, when)
        spec, image = state.spec, state.image
        major, minor, patch = state.version
        if self.rng.random() < 0.15:
            minor, patch = minor + 1, 0
        else:
            patch += 1
        state.version = [major, minor, patch]
        label = f"{major}.{minor}.{patch}"
        base = self.base_version(when)
        if spec.multiarch:
            children = [
                (arch, self.seeder.build(image, spec, label, base, arch, when, spec.app_kb))
                for arch in ("amd64", "arm64")
            ]
            pushed = self.seeder.index(image, children, when)
        else:
            pushed = self.seeder.build(image, spec, label, base, "amd64", when, spec.app_kb)
        sha = "sha-" + pushed.digest.split(":", 1)[1][:7]
        for tag in (label, sha, "latest"):
            self.seeder.tag(image, pushed, tag, when, "ci-bot")
            state.pushed[tag] = pushed
        state.releases.append(label)
        if spec.signed:
            sbom = json.dumps(
                {
                    "spdxVersion": "SPDX-2.3",
                    "name": f"{image.name}:{label}",
                    "packages": [{"name": k, "versionInfo": str(base)} for k in STACKS[spec.stack]],
                }
            ).encode()
            self.seeder.referrer(image, pushed, SBOM_TYPE, sbom, when + 1000)
            signature = json.dumps(
                {"critical": {"image": {"docker-manifest-digest": pushed.digest}}}
            )
            self.seeder.referrer(image, pushed, SIGNATURE_TYPE, signature.encode(), when + 2000)

    def nightly(self, state: ImageState, when: int) -> None:
        self.ensure(state, when)
        label = "nightly-" + time.strftime("%Y%m%d", time.gmtime(when / 1000))
        pushed = self.seeder.build(
            state.image,
            state.spec,
            label,
            self.base_version(when),
            "amd64",
            when,
            max(10, state.spec.app_kb // 3),
        )
        # Moving the tag leaves last night's build untagged: GC collects it.
        self.seeder.tag(state.image, pushed, "nightly", when, "ci-bot")

    def pull_request(self, state: ImageState, number: int, cleanup: int, when: int) -> None:
        self.ensure(state, when)
        tag = f"pr-{number}"
        pushed = self.seeder.build(
            state.image, state.spec, tag, self.base_version(when), "amd64", when, 15
        )
        self.seeder.tag(state.image, pushed, tag, when, "ci-bot")
        if cleanup < self.end:
            self.at(cleanup, lambda t: self.seeder.delete_tags(state.image, [tag], t, "ci-bot"))

    def plan_image(self, state: ImageState) -> None:
        spec = state.spec
        until = self.upgrade_at if spec.retired else None
        for when in self.working_hours(spec.builds, until):
            self.at(when, partial(self.release, state))
        if spec.nightly:
            for day in range(
                max(0, (self.end - self.start) // DAY_MS - 30), (self.end - self.start) // DAY_MS
            ):
                self.at(self.start + day * DAY_MS + 2 * HOUR_MS, partial(self.nightly, state))
        for n, when in enumerate(self.working_hours(spec.prs), start=100):
            cleanup = when + self.rng.randint(1, 6) * DAY_MS
            self.at(when, partial(self.pull_request, state, n, cleanup))

    def plan_housekeeping(self, workspace_ids: list[int]) -> None:
        reg = self.seeder.reg
        for day in range((self.end - self.start) // DAY_MS + 1):
            midnight = self.start + day * DAY_MS
            for wid in workspace_ids:
                self.at(midnight, partial(_sample, reg, wid))
            if time.gmtime(midnight / 1000).tm_wday == 6:  # Sunday night: GC
                for wid in workspace_ids:
                    self.at(midnight + 3 * HOUR_MS, partial(_collect, reg, wid))

    def run(self, progress: Callable[[int], None] = lambda _pct: None) -> None:
        """Replay every event in time order; ``progress(per cent)`` at each step."""
        events = sorted(self.events)
        said = 0
        for done, event in enumerate(events, start=1):
            event.run(event.at)
            pct = done * 100 // len(events)
            if pct >= said + PROGRESS_STEP:
                said = pct - pct % PROGRESS_STEP
                progress(said)


def _sample(reg: Registry, workspace_id: int, at: int) -> None:
    with reg.db.read() as conn:
        sample = samples.current(conn, workspace_id, at)
    with reg.db.write() as conn:
        samples.insert_sample(conn, workspace_id, sample)


def _collect(reg: Registry, workspace_id: int, at: int) -> None:
    began = now_ms()
    gc.run_workspace(reg, workspace_id, clock=lambda: at + (now_ms() - began))


# accounts and structure ------------------------------------------------------------


def _structure(
    reg: Registry, admin: str, admin_password: str
) -> tuple[Credentials, dict[str, Repository]]:
    """The superuser, workspaces, projects and repositories: what a first look needs."""
    creds = Credentials()
    repos: dict[str, Repository] = {}
    with reg.db.write() as conn:
        accounts.add_user(conn, admin, admin_password, superuser=True)
        creds.rows.append((admin, admin_password, "superuser"))
        for ws, (ws_name, projects) in CATALOG.items():
            accounts.add_workspace(conn, ws, ws_name)
            for key, (project_name, repositories) in projects.items():
                accounts.add_project(conn, ws, key, project_name)
                for slug in repositories:
                    accounts.add_repository(conn, ws, slug, key)
                    repos[f"{ws}/{slug}"] = accounts.get_repository(conn, ws, slug)
    return creds, repos


def _users(reg: Registry, admin: str, creds: Credentials) -> None:
    """The other users, one transaction each: a password hash takes a while, and a
    registry serving meanwhile should not wait for all of them."""
    for name, (access, superuser, memberships, grants) in USERS.items():
        if name == admin:
            continue
        password = secrets.token_urlsafe(12)
        with reg.db.write() as conn:
            accounts.add_user(conn, name, password, superuser=superuser)
            for ws, is_admin in memberships.items():
                accounts.add_member(conn, ws, name, admin=is_admin)
            for repo, perm in grants.items():
                ws, slug = repo.split("/")
                accounts.grant(conn, ws, slug, name, perm)
        creds.rows.append((name, password, access))


SEEDED, EMPTY, UNFINISHED, OTHER = "seeded", "empty", "unfinished", "other"


def state_of(reg: Registry) -> str:
    """SEEDED by demo before; EMPTY; UNFINISHED: a demo seeding was cut short (its
    hold is still there, its mark is not); OTHER: holds other data."""
    with reg.db.read() as conn:
        marks = dict(
            conn.execute(
                select(s.settings.c.key, s.settings.c.value).where(
                    s.settings.c.key.in_([SEEDED_KEY, gc.HOLD_KEY])
                )
            ).all()
        )
        if SEEDED_KEY in marks:
            return SEEDED
        if marks.get(gc.HOLD_KEY) == HOLD_REASON:
            return UNFINISHED
        users = conn.execute(select(func.count()).select_from(s.users)).scalar_one()
        spaces = conn.execute(select(func.count()).select_from(s.workspaces)).scalar_one()
    return OTHER if users or spaces else EMPTY


def hold(reg: Registry) -> None:
    """Hold garbage collection (gc.HOLD_KEY) before anything is seeded, and before a
    server is told it may start: no pass of it ever runs on the story's data."""
    with reg.db.write() as conn:
        conn.execute(insert(s.settings).values(key=gc.HOLD_KEY, value=HOLD_REASON))


def seed(
    reg: Registry,
    admin: str,
    admin_password: str,
    *,
    days: int = DAYS,
    end: int | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> Credentials:
    """Seed an empty registry; returns the users and their passwords."""
    end = end if end is not None else now_ms()
    start = end - days * DAY_MS
    rng = random.Random(20261127)
    creds, repos = _structure(reg, admin, admin_password)
    log(ACCOUNTS_READY)
    _users(reg, admin, creds)
    seeder = Seeder(reg)
    story = Story(seeder, start, end - HOUR_MS, rng)
    states: dict[str, ImageState] = {}
    for ws, (_, projects) in CATALOG.items():
        for _, repositories in projects.values():
            for slug, specs in repositories.items():
                for spec in specs:
                    version = [rng.randint(1, 4), rng.randint(0, 9), 0]
                    state = ImageState(spec, repos[f"{ws}/{slug}"], version)
                    states[f"{ws}/{slug}/{spec.name}"] = state
                    story.plan_image(state)
    workspace_ids = sorted({r.workspace_id for r in repos.values()})
    story.plan_housekeeping(workspace_ids)
    # Half way through, the legacy login image is retired: GC frees its bytes.
    legacy = states["acme/auth/legacy-login"]
    story.at(story.upgrade_at + 5 * DAY_MS, lambda t: seeder.delete_image(legacy.image, t, "alice"))
    log(f"replaying {len(story.events)} events over {days} days ...")
    story.run(lambda pct: log(f"{PROGRESS}{pct} %"))
    # The last changes are stamped with the real clock once the replay is done, and
    # reviewed ten minutes on: GC has work pending when the demo opens.
    reg.timing = Timing(review_delay=RECENT_REVIEW_DELAY_MS, upload_grace=reg.timing.upload_grace)
    _recent_changes(reg, seeder, states, now_ms())
    with reg.db.write() as conn:
        conn.execute(insert(s.settings).values(key=SEEDED_KEY, value=_rfc3339(end)))
        conn.execute(delete(s.settings).where(s.settings.c.key == gc.HOLD_KEY))
    return creds


def _recent_changes(reg: Registry, seeder: Seeder, states: dict[str, ImageState], now: int) -> None:
    """What an admin did minutes ago: GC has not reviewed it yet."""
    frontend = states["acme/web-app/frontend"]
    # Old releases go, both of their tags: their app layers become pending.
    old = frontend.releases[:12]
    doomed = [t for label in old for t in (label, _sha_tag(frontend, label))]
    seeder.delete_tags(frontend.image, doomed, now - 40_000, "alice")
    # The second backend build of the day replaced latest.
    backend = states["acme/web-app/backend"]
    story = Story(seeder, now - DAY_MS, now, random.Random(1))
    story.release(backend, now - 30_000)
    # A whole image retired by the workspace admin.
    seeder.delete_image(states["acme/etl/airflow"].image, now - 20_000, "alice")
    toolbox = states["globex/tools/debug/toolbox"]
    seeder.delete_tags(toolbox.image, toolbox.releases[:3], now - 10_000, "frank")


def _sha_tag(state: ImageState, label: str) -> str:
    return "sha-" + state.pushed[label].digest.split(":", 1)[1][:7]


# command line ----------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--admin-user", default="admin", metavar="NAME", help="the superuser (default: admin)"
    )
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the superuser's password from standard input (default: generated)",
    )
    parser.add_argument(
        "--days", type=int, default=DAYS, help=f"how much history to make (default {DAYS})"
    )


def main(args: argparse.Namespace) -> int:
    data: Path = args.data
    password = secrets.token_urlsafe(12)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    if not 1 <= args.days <= 3650:
        raise RegistryError("--days must be between 1 and 3650", code="INVALID_ARGUMENT")
    reg = Registry.open(
        data,
        database_url=args.database_url,
        timing=Timing(),
        blob_store=args.blob_store,
        claim_store=True,
    )
    try:
        state = state_of(reg)
        if state == UNFINISHED:
            reg = _throw_away(reg, data, args.database_url)
            state = state_of(reg)
        if state == SEEDED:
            print(f"{data} already holds the demo; its users are in {data / CREDENTIALS_FILE}")
            return 0
        if state == OTHER:
            raise RegistryError(
                f"{data} already holds a registry; demo seeds only an empty data directory",
                code="INVALID_ARGUMENT",
            )
        hold(reg)
        print(DATABASE_READY, flush=True)
        began = time.monotonic()
        creds = seed(
            reg, args.admin_user, password, days=args.days, log=lambda s: print(s, flush=True)
        )
    finally:
        reg.close()
    path = data / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(creds.text())
    print(creds.text(), end="")
    print(f"seeded {data} in {time.monotonic() - began:.0f} s; users written to {path}")
    return 0


def _throw_away(reg: Registry, data: Path, database_url: str | None) -> Registry:
    """A seeding cut short is not resumed: its database and objects go, and a fresh
    registry is opened in their place (a data directory only: a database or an object
    store elsewhere is not ours to empty)."""
    store = reg.store
    if database_url is not None or not isinstance(store, FileBlobStore):
        raise RegistryError(
            "the registry holds a demo whose seeding was cut short; empty its database "
            "and blob store, then run demo again",
            code="INVALID_ARGUMENT",
        )
    reg.close()
    print(f"{data} holds a demo whose seeding was cut short: seeding it again", flush=True)
    for name in ("registry.db", "registry.db-wal", "registry.db-shm"):
        (data / name).unlink(missing_ok=True)
    for folder in (store.objects, store.uploads):
        shutil.rmtree(folder, ignore_errors=True)
    return Registry.open(data, timing=Timing())
