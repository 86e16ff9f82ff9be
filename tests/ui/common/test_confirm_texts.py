"""What the delete confirmation says, as text (no registry): the tags that stay
counted truly and named as far as known, and counts with their nouns."""

from __future__ import annotations

from app.client.berth_api import DeleteImpact, Image, StayingTags, Tag
from app.ui.backends.deletion import DeletePlan
from app.ui.common.confirm_delete import image_delete_text, staying_text

IMAGE = Image(id=7, name="app", full_name="acme/web/app", repository="web", project="PLAT",
              tag_count=42, size=0, exclusive_size=0, last_push=None)  # fmt: skip
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def tag(name: str, digest: str, others: list[str], count: int | None = None) -> Tag:
    # A listing names at most 20 other tags and counts them all.
    shown = tuple(o for o in others if o != name)[:20]
    total = len([o for o in others if o != name]) if count is None else count
    return Tag(name, digest, "", 1, (), None, None, shown, total)


def test_staying_tags_from_the_rows_count_beyond_the_names_they_carry() -> None:
    everyone = [f"r{i:02d}" for i in range(41)] + ["v1"]
    going = [tag(n, D1, everyone) for n in everyone[3:13]]
    plan = DeletePlan(IMAGE, tuple(going))
    (only,) = plan.staying_tags(None)
    assert only.count == 32  # 42 on the digest, 10 of them go
    assert set(only.names) <= set(everyone) - {t.name for t in going}
    text = staying_text([only])
    assert text.startswith("32 other tags on the same manifest stay, and so does the manifest: ")
    assert f"… and {32 - len(only.names)} more (sha256:111111111111)" in text


def test_the_servers_answer_wins_over_the_rows() -> None:
    going = (tag("a", D1, ["a", "b"]), tag("x", D2, ["x"]))
    told = DeleteImpact(0, 0, 0, 0, tags=2, staying=(StayingTags(D1, 5, ("b", "c")),))
    assert DeletePlan(IMAGE, going).staying_tags(told) == [StayingTags(D1, 5, ("b", "c"))]
    assert DeletePlan(IMAGE, going).staying_tags(None) == [StayingTags(D1, 1, ("b",))]


def test_one_and_many() -> None:
    one = staying_text([StayingTags(D1, 1, ("latest",))])
    assert one == (
        "1 other tag on the same manifest stays, and so does the manifest: "
        "latest (sha256:111111111111)"
    )
    two = staying_text([StayingTags(D1, 1, ("a",)), StayingTags(D2, 1, ("b",))])
    assert two.startswith("2 other tags on the same manifests stay, and so do those manifests: ")
    many = staying_text([StayingTags(f"sha256:{i:064d}", 2, ("x",)) for i in range(25)])
    assert many.endswith("… and 5 more manifests")
    assert "Delete" not in image_delete_text(3)
    assert image_delete_text(1) == (
        "The image will be deleted with <b>its only tag</b> and every manifest it holds."
    )
    assert "all 3 of its tags" in image_delete_text(3)
    assert "has no tags" in image_delete_text(0)
