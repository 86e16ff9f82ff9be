"""One manifest of an image: what it holds, who shares its layers, what refers to it."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from app.core.manifests import ManifestError, parse_manifest
from app.registry.api.context import Authenticated, ImageId, image_access
from app.registry.api.errors import documented
from app.registry.api.models import BlobRef, ChildManifest, LayerInfo, ManifestDetail, Referrer
from app.registry.api.times import normalized
from app.registry.db import schema as s
from app.registry.errors import NotFound

router = APIRouter(responses=documented(400, 401, 404, 503))
m = s.manifests.c


@router.get(
    "/images/{image_id}/manifests/{digest}",
    response_model=ManifestDetail,
    summary="One manifest: layers (with how many images share each), children, referrers",
)
def get_manifest(caller: Authenticated, image_id: ImageId, digest: str) -> ManifestDetail:
    with caller.registry.db.read() as conn:
        access = image_access(conn, caller.user, image_id)
        row = conn.execute(
            select(
                m.id,
                m.digest,
                m.media_type,
                m.artifact_type,
                m.payload,
                m.total_size,
                m.platforms,
                m.created,
                m.subject_digest,
            ).where(m.image_id == image_id, m.digest == digest)
        ).first()
        if row is None:
            raise NotFound(f"no manifest {digest} in this image", detail={"digest": digest})
        try:
            parsed = parse_manifest(bytes(row.payload), row.media_type)
        except ManifestError:  # stored bytes were validated on push; be safe anyway
            parsed = None
        tags = list(
            conn.execute(
                select(s.tags.c.name).where(s.tags.c.manifest_id == row.id).order_by(s.tags.c.name)
            ).scalars()
        )
        layer_digests = sorted({str(d.digest) for d in parsed.layers}) if parsed else []
        shared = dict(
            conn.execute(
                select(s.blobs.c.digest, s.blobs.c.image_refs).where(
                    s.blobs.c.workspace_id == access.image.workspace_id,
                    s.blobs.c.digest.in_(layer_digests),
                )
            ).all()
        )
        child_digests = sorted({str(d.digest) for d in parsed.manifests}) if parsed else []
        child_sizes = dict(
            conn.execute(
                select(m.digest, m.total_size).where(
                    m.image_id == image_id, m.digest.in_(child_digests)
                )
            ).all()
        )
        referrers = conn.execute(
            select(m.digest, m.artifact_type, m.total_size)
            .where(m.image_id == image_id, m.subject_digest == digest)
            .order_by(m.digest)
        ).all()
    config = parsed.config if parsed is not None else None
    return ManifestDetail(
        digest=row.digest,
        media_type=row.media_type,
        artifact_type=row.artifact_type,
        size=row.total_size,
        tags=tags,
        created=normalized(row.created),
        platforms=row.platforms.split(",") if row.platforms else [],
        config=BlobRef(digest=str(config.digest), size=config.size) if config else None,
        layers=[
            LayerInfo(
                digest=str(d.digest),
                media_type=d.media_type,
                size=d.size,
                image_count=shared.get(str(d.digest), 0),
            )
            for d in (parsed.layers if parsed else ())
        ],
        manifests=[
            ChildManifest(
                digest=str(d.digest),
                media_type=d.media_type,
                platform=d.platform,
                size=child_sizes.get(str(d.digest), d.size),
            )
            for d in (parsed.manifests if parsed else ())
        ],
        subject=row.subject_digest,
        referrers=[
            Referrer(digest=r.digest, artifact_type=r.artifact_type, size=r.total_size)
            for r in referrers
        ],
    )
