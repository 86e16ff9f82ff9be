"""The management API: JSON under ``/api/v1`` (OpenAPI at ``/api/v1/openapi.json``).

This docstring is the resource map the desktop client is written against; keep it
and the routes in agreement.

Auth and errors
---------------
Same credentials as the OCI API: HTTP Basic, or a bearer token from
``/auth/token`` whose access includes ``api:berth:*``. No anonymous access.
Every error is ``{"error": {"code": str, "message": str, "detail": obj|null}}``:
401 ``UNAUTHORIZED``, 403 ``FORBIDDEN`` (the message names the permission that is
missing and where, e.g. "admin permission on acme/web is required to delete an
image"; ``detail = {"required": "admin", "repository": "acme/web"}``), 404
``NOT_FOUND`` (also for what the caller may not see: no existence leaks), 400
``INVALID_ARGUMENT``, 409 ``CONFLICT``, 503 ``BUSY`` with Retry-After.

Conventions
-----------
Times are ISO 8601 UTC strings (``2026-11-27T13:00:00.123Z``); sizes are integer
bytes. Lists are ``{"items": [...], "next_cursor": str|null, "total": int}`` with
``?limit=`` (default 100, max 1000) and ``?cursor=`` (opaque, keyset-based, stable
under inserts). ``?sort=`` takes a field name, ``-`` prefix for descending.
``permission`` is ``"none" | "read" | "write" | "admin"``; ``role`` is
``"admin" | "member" | "guest"`` (guest: no membership, only grants).

Resources
---------
GET    /me                          {user: {name, superuser}, workspaces: [{slug, name, role}]}
GET    /workspaces                  items: {slug, name, role, project_count,
                                    repository_count, image_count}
GET    /workspaces/{ws}             one of the above
GET    /workspaces/{ws}/projects    items: {key, name, repository_count, image_count}
GET    /workspaces/{ws}/repositories[?project=KEY]
                                    items: {id, slug, project, image_count, tag_count,
                                    size, permission}
GET    /workspaces/{ws}/images[?project=KEY&repository=SLUG&q=TEXT&sort=&limit=&cursor=]
                                    items: {id, name, full_name, repository, project,
                                    tag_count, size, exclusive_size, last_push}
                                    sort: name (default), tag_count, size, last_push
                                    size = bytes of the distinct blobs reachable from
                                    its tags; exclusive_size = those no other image
                                    reaches (what deleting the image frees after GC)
GET    /images/{id}                 {id, name, full_name, workspace, repository,
                                    project, tag_count, size, exclusive_size,
                                    last_push, permission}
DELETE /images/{id}                 204; admin on the repository. Removes the image,
                                    its tags and manifests; blobs wait for GC.
GET    /images/{id}/tags[?q=TEXT&sort=&limit=&cursor=]
                                    items: {name, digest, media_type, size, platforms:
                                    [str], created, pushed_at, other_tags: [str] (at
                                    most 20), other_tag_count: int, last_pulled (by
                                    this tag's name), digest_last_pulled (its digest
                                    by any reference); pulls are written in batches,
                                    every few seconds (app.registry.pulls)}
                                    sort: name (default), pushed_at, size, created
                                    (fast with 100,000 tags: keyset pagination)
DELETE /images/{id}/tags/{tag}      204; write on the repository
POST   /images/{id}/tags/delete     body {tags: [str]} (at most 1000); write.
                                    {results: [{tag, status: "deleted"|"not_found"|
                                    "error", message}], deleted: int}
GET    /images/{id}/manifests/{digest}
                                    {digest, media_type, artifact_type, size, tags,
                                    created, platforms, config: {digest, size}|null,
                                    layers: [{digest, media_type, size, image_count}],
                                    manifests: [{digest, media_type, platform, size}],
                                    subject: str|null, referrers: [{digest,
                                    artifact_type, size}]}
                                    size = compressed size, as in tag listings: the
                                    manifest with its config and layers (an index:
                                    with its children's sizes)
GET    /workspaces/{ws}/storage     {stored, referenced, shared, pending, logical,
                                    saving, blob_count, uploading, upload_count,
                                    repositories: [{slug, project, exclusive, shared,
                                    image_count}]}  (uploading: bytes open uploads
                                    received so far, not blobs yet)
GET    /workspaces/{ws}/storage/shared-layers[?repository=SLUG&sort=&limit=&cursor=]
                                    items: {digest, size, image_count,
                                    images: [{id, full_name}]}  (sort: size, image_count;
                                    default -size; images: at most 50 you may read)
GET    /workspaces/{ws}/storage/history[?since=ISO]
                                    {samples: [{at, stored, referenced, pending}],
                                    gc_runs: [gc run]}  (oldest first; at most 1000
                                    samples, thinned evenly, the newest kept)
GET    /workspaces/{ws}/storage/overview
                                    {storage, gc, history}: the three answers above and
                                    below (storage, gc, storage/history), read in one
                                    transaction: figures and GC status of one moment
POST   /workspaces/{ws}/storage/delete-impact
                                    body {tags: [{image_id, tag}], images: [id]}
                                    {freed, kept, freed_blobs, kept_blobs, tags,
                                    staying: [{image_id, digest, count, tags}]}
                                    (tags: how many go; staying: per manifest of a
                                    deleted tag, the image's other tags on it, all
                                    counted, the first 20 by name named)
GET    /workspaces/{ws}/gc          {queued_manifests, queued_blobs, due_manifests,
                                    due_blobs, pending_bytes, next_review_at,
                                    review_delay_s, upload_grace_s, recent_runs: [gc run]}
POST   /workspaces/{ws}/gc/run      workspace admin; reviews everything queued now
                                    (grace and race rules still apply); returns the
                                    gc run it recorded
       gc run = {id, triggers: [str], started_at, duration_ms, manifests_deleted,
                 blobs_deleted, bytes_freed}
GET    /workspaces/{ws}/audit[?limit=&cursor=]   workspace admin;
                                    items: {id, at, actor, action, target, detail}
GET    /workspaces/{ws}/events      text/event-stream; event types: pushed,
                                    tag_deleted, manifest_deleted, image_deleted,
                                    gc_run, policy_run, trashed, restored, trash_expired,
                                    trash_emptied; data is the JSON event (non-admins see
                                    events of repositories they may read, and GC runs)
Recently deleted (app/registry/api/trash.py; serve --trash-retention, 0 = off):
GET    /workspaces/{ws}/trash[?repository=&image_id=&q=&kind=&deleted_by=&sort=&limit=&cursor=]
                                    read; items: {id, kind: "tag"|"manifest"|"image",
                                    image_id, image, repository, tag, digest,
                                    replaced_by, size, tag_count, action, deleted_by,
                                    deleted_at, expires_at}; sort: -deleted_at
                                    (default), expires_at, size, image
POST   /workspaces/{ws}/trash/restore   body {entries: [{id, as?}]} (at most 1000);
                                    {results: [{id, status: "restored"|"conflict"|
                                    "not_found"|"forbidden"|"invalid", message,
                                    image_id, tag, digest}], restored}; a tag needs
                                    write, an image admin (per entry)
POST   /workspaces/{ws}/trash/empty     body {entries?: [id], all?: bool, repository?,
                                    older_than_s?}; admin (per entry; all with
                                    nothing allowed: 403); {results: [{id, status:
                                    "emptied"|"not_found"|"forbidden"}], emptied}
Cleanup policies (app/registry/api/policies.py; SCOPE = /workspaces/{ws} for the
workspace's policy, /workspaces/{ws}/repositories/{slug} for a repository's own,
which overrides the workspace's there):
GET    SCOPE/policy                 {scope, workspace, repository, rules: [{kind,
                                    value}], interval, next_run_at, updated_at,
                                    updated_by, covers: [repository slug]}; read;
                                    no policy: rules [] (nothing is removed)
PUT    SCOPE/policy {rules, interval}   workspace admin / admin on the repository
DELETE SCOPE/policy                 same (204 also when there was none)
POST   SCOPE/policy/previews {rules?}   201 preview = {id, scope, rules, saved,
                                    created_at, created_by, expires_at, images, tags,
                                    remove, keep, freed, kept, freed_blobs, kept_blobs,
                                    plan_ms}; the saved policy: read; given rules:
                                    the permission to set them
GET    /policy-previews/{id}        the preview (read on its scope)
GET    /policy-previews/{id}/tags[?action=remove|keep&image_id=&limit=&cursor=]
                                    items: {image_id, image, tag, digest, action, rule,
                                    reason, pushed_at, last_pulled, size} (image, then
                                    tag order; only repositories you may read)
GET    /policy-previews/{id}/images items: {image_id, image, remove, keep}
POST   /policy-previews/{id}/runs {keep: [{image_id, tag}]}   202 run; runs exactly
                                    the preview's plan (tags moved since stay); admin
                                    of the scope; 409 while a run of it is going
POST   SCOPE/policy/runs            202 run: plan the saved policy now and run that
GET    /policy-runs/{id}            run = {id, scope, trigger, actor, state, preview_id,
                                    rules, started_at, finished_at, tags_planned,
                                    tags_deleted, tags_changed, tags_missing,
                                    bytes_freed, error}
GET    /workspaces/{ws}/policy-runs[?limit=&cursor=]   newest first
Administration (superuser, or workspace admin inside their workspace):
POST   /users {name, password, superuser}          superuser
POST   /workspaces {slug, name}                     superuser
GET    /workspaces/{ws}/members        items: {user, admin}
PUT    /workspaces/{ws}/members/{user} {admin: bool}
DELETE /workspaces/{ws}/members/{user}
POST   /workspaces/{ws}/projects {key, name}
POST   /workspaces/{ws}/repositories {slug, project}
GET    /workspaces/{ws}/repositories/{slug}/grants   items: {user, permission}
PUT    /workspaces/{ws}/repositories/{slug}/grants/{user} {permission}
"""
