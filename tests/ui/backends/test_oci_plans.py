"""The parts of the OCI kind that need no registry: the tree made of repository
names, the delete plans (which tags go by which request, index children, the
choice where a digest is shared), the step job's cancel and stop, and the
confirmation dialog's choice between the safe path and the digest."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from app.client.berth_api import DeleteImpact, Image, Tag, TagDeleteResult
from app.client.errors import ClientError, DeletesDisabled
from app.client.oci_details import Layer, ManifestDetails
from app.ui.backends.deletion import DeleteMethod, DeletePlan
from app.ui.backends.oci_deletion import DeleteStep, StepsDelete, plan_tag_delete
from app.ui.backends.oci_tree import NameTree, image_id
from app.ui.common import confirm_delete
from app.ui.common.confirm_delete import ConfirmDeleteDialog

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def image_manifest(digest: str) -> ManifestDetails:
    return ManifestDetails(digest, OCI_MANIFEST, 500, Layer(f"{digest}-cfg", "c", 10), ())


def index_manifest(digest: str, *children: ManifestDetails) -> ManifestDetails:
    return ManifestDetails(digest, OCI_INDEX, 300, None, (), tuple(children))


def test_names_grouped_by_path_segment() -> None:
    tree = NameTree(
        "reg:5000",
        ["team/app/api", "team/app/web", "team/app", "team/worker", "alpine", "library/nginx",
         "team-x/y", "team/app/web"],
    )  # fmt: skip
    assert tree.namespace("").image_count == 7
    assert [n.path for n in tree.children("")] == ["library", "team", "team-x"]
    assert [(n.path, n.image_count, n.has_children) for n in tree.children("team")] == [
        ("team/app", 3, False)
    ]
    assert tree.namespace("team").has_children
    assert not tree.namespace("library").has_children
    assert tree.under("team") == ["team/app", "team/app/api", "team/app/web", "team/worker"]
    assert tree.under("team/app/web") == ["team/app/web"]
    assert tree.children("team/app") == []
    assert tree.namespace("team").scope.label == "reg:5000/team"
    assert tree.namespace("").name == "reg:5000"
    assert image_id("team/app") == image_id("team/app") != image_id("team/apq")


D1, D2, D3 = "sha256:d1", "sha256:d2", "sha256:d3"
MANIFESTS = {d: image_manifest(d) for d in (D1, D2, D3)}
DIGESTS = {"v1": D1, "latest": D1, "stable": D1, "v2": D2, "v3": D3}


def test_tag_deletes_where_the_registry_has_them() -> None:
    for capability in (True, None):  # None: not known, so the standard delete is tried
        plan = plan_tag_delete("team/app", ["v1"], DIGESTS, MANIFESTS, tag_delete=capability)
        assert not plan.choice
        assert plan.ways == {"tag": (DeleteStep("tag", "team/app", D1, ("v1",)),)}


def test_digest_only_registry_offers_the_safe_path_for_shared_digests() -> None:
    plan = plan_tag_delete("team/app", ["v1", "v2"], DIGESTS, MANIFESTS, tag_delete=False)
    assert plan.choice
    assert list(plan.ways) == ["placeholder", "digest"]
    # v2 is its digest's only tag: deleted by digest either way.
    assert plan.ways["placeholder"] == (
        DeleteStep("digest", "team/app", D2, ("v2",)),
        DeleteStep("placeholder", "team/app", D1, ("v1",)),
    )
    assert plan.ways["digest"] == (
        DeleteStep("digest", "team/app", D1, ("latest", "stable", "v1")),
        DeleteStep("digest", "team/app", D2, ("v2",)),
    )
    assert plan.also_deleted == {"placeholder": (), "digest": ("latest", "stable")}
    assert plan.tags_going("digest") == ["v1", "v2", "latest", "stable"]


def test_every_tag_of_a_digest_selected_needs_no_choice() -> None:
    plan = plan_tag_delete(
        "team/app", ["v1", "latest", "stable"], DIGESTS, MANIFESTS, tag_delete=False
    )
    assert not plan.choice
    assert plan.ways == {
        "digest": (DeleteStep("digest", "team/app", D1, ("latest", "stable", "v1")),)
    }


def test_index_children_go_only_when_nothing_staying_needs_them() -> None:
    amd, arm, s390 = (image_manifest(f"sha256:{p}") for p in ("amd", "arm", "s390"))
    one = index_manifest("sha256:idx1", amd, arm)
    two = index_manifest("sha256:idx2", arm, s390)
    manifests = {m.digest: m for m in (amd, arm, s390, one, two)}
    # arm is in both indexes; s390 is also tagged on its own.
    digests = {"1": one.digest, "2": two.digest, "s390": s390.digest}
    plan = plan_tag_delete("tools/cli", ["1", "2"], digests, manifests, tag_delete=False)
    (steps,) = plan.ways.values()
    assert [(s.digest, s.children) for s in steps] == [
        # arm goes with the later index, so a cancel between steps never leaves an
        # index pointing at a deleted child; s390 stays (a tag names it).
        (one.digest, (amd.digest,)),
        (two.digest, (arm.digest,)),
    ]


IMAGE = Image(1, "team/app", "team/app", "team", "", 3, -1, -1, None, "reg:5000")


def test_steps_job_reports_per_tag_cancels_between_steps_and_stops_on_a_refusal() -> None:
    steps = [
        DeleteStep("placeholder", "team/app", D1, ("v1",)),
        DeleteStep("digest", "team/app", D2, ("v2",)),
        DeleteStep("digest", "team/app", D3, ("v3",)),
    ]
    ran: list[DeleteStep] = []

    async def run_step(step: DeleteStep) -> list[TagDeleteResult]:
        ran.append(step)
        if step.digest == D2:
            return [TagDeleteResult("v2", "error", "v2 moved since you confirmed")]
        return [TagDeleteResult(t, "deleted", "") for t in step.tags]

    progress: list[tuple[int, int]] = []
    removed: list[str] = []
    job = StepsDelete(
        None,  # type: ignore[arg-type]  (the steps run through run_step only)
        run_step,
        IMAGE,
        steps,
        on_progress=lambda d, t: progress.append((d, t)),
        on_chunk=removed.extend,
    )
    outcome = asyncio.run(job.run())
    assert outcome.deleted == ["v1", "v3"]
    assert outcome.failed == [("v2", "v2 moved since you confirmed")]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert removed == ["v1", "v3"]

    async def cancel_after_first(step: DeleteStep) -> list[TagDeleteResult]:
        job2.cancel()
        return [TagDeleteResult(t, "deleted", "") for t in step.tags]

    job2 = StepsDelete(None, cancel_after_first, IMAGE, steps)  # type: ignore[arg-type]
    outcome = asyncio.run(job2.run())
    assert outcome.cancelled
    assert outcome.deleted == ["v1"]
    assert [t for t, _ in outcome.failed] == ["v2", "v3"]

    async def refused(step: DeleteStep) -> list[TagDeleteResult]:
        raise DeletesDisabled("Deleting: the registry has deletes turned off.", status=405)

    outcome = asyncio.run(StepsDelete(None, refused, IMAGE, steps).run())  # type: ignore[arg-type]
    assert isinstance(outcome.stopped_by, ClientError)
    assert outcome.deleted == []
    assert [t for t, _ in outcome.failed] == ["v1", "v2", "v3"]


def tag(name: str, digest: str, others: tuple[str, ...]) -> Tag:
    return Tag(name, digest, OCI_MANIFEST, 1000, (), None, None, others, len(others))


def test_confirmation_offers_the_safe_path_first(
    qtbot: QtBot, qt_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    safe = DeleteMethod("placeholder", "Keep the others", "safe", (), DeleteImpact(0, 900, 0, 3))
    whole = DeleteMethod(
        "digest", "Delete the digest", "takes latest", ("latest",), DeleteImpact(700, 200, 2, 1)
    )
    plan = DeletePlan(
        IMAGE, (tag("v1", D1, ("latest",)),), methods=(safe, whole), storage_note="From the scan."
    )
    dialog = ConfirmDeleteDialog(plan, None, None)
    qtbot.addWidget(dialog)
    assert dialog.method is safe
    assert dialog.staying is not None
    assert not dialog.staying.isHidden()
    assert dialog.also.isHidden()
    assert "0 B</b> will be freed" in dialog.storage.text()
    assert dialog.storage.text().endswith("From the scan.")
    dialog.methods[1][0].setChecked(True)
    assert dialog.method is whole
    assert "700 B</b> will be freed" in dialog.storage.text()
    assert "latest" in dialog.also.text()
    assert not dialog.also.isHidden()
    assert dialog.staying.isHidden()

    # Through the seam: Enter accepts with the default (safe) way.
    async def run() -> DeleteMethod | None:
        return await confirm_delete.choose_delete_method(None, plan)

    shown: list[ConfirmDeleteDialog] = []
    monkeypatch.setattr(ConfirmDeleteDialog, "open", lambda self: shown.append(self))
    task = qt_loop.create_task(run())
    qtbot.waitUntil(lambda: bool(shown))
    shown[0].accept()
    qtbot.waitUntil(task.done)
    assert task.result() is safe


def test_cancelled_confirmation_chooses_nothing(
    qtbot: QtBot, qt_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = DeletePlan(
        IMAGE,
        (tag("v1", D1, ("latest",)),),
        methods=(DeleteMethod("placeholder", "a", "b"), DeleteMethod("digest", "c", "d")),
    )
    shown: list[ConfirmDeleteDialog] = []
    monkeypatch.setattr(ConfirmDeleteDialog, "open", lambda self: shown.append(self))

    async def run() -> Any:
        return await confirm_delete.choose_delete_method(None, plan)

    task = qt_loop.create_task(run())
    qtbot.waitUntil(lambda: bool(shown))
    shown[0].reject()
    qtbot.waitUntil(task.done)
    assert task.result() is None
