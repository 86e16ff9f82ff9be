"""Names: ``<workspace>/<repository>/<image>`` with the distribution grammar, tags,
slugs, project keys and user names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core import names
from app.core.names import ImageName, InvalidName

COMPONENT = st.from_regex(r"\A[a-z0-9]{1,8}(?:(?:\.|_|__|-{1,3})[a-z0-9]{1,8}){0,3}\Z")


@given(st.lists(COMPONENT, min_size=3, max_size=6))
def test_valid_names_parse(parts: list[str]) -> None:
    text = "/".join(parts)
    if len(text) > names.MAX_NAME_LENGTH:
        return
    name = ImageName.parse(text)
    assert (name.workspace, name.repository) == (parts[0], parts[1])
    assert name.image == "/".join(parts[2:])
    assert str(name) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "acme",
        "acme/web",  # no image part
        "Acme/web/app",
        "acme/web/App",
        "acme/web/..",
        "acme/../app",
        "acme//app/x",
        "/acme/web/app",
        "acme/web/app/",
        "acme/web/.app",
        "acme/web/app-",
        "acme/web/a___b",
        "acme/web/a._b",
        "acme/web/app:tag",
        "acme/web/" + "a" * 247,  # 256 characters
        "acme/web/ app",
        "acme/web/ä",
        "acme/web/app\n",  # "$" would let a trailing newline through
    ],
)
def test_invalid_names(text: str) -> None:
    with pytest.raises(InvalidName):
        ImageName.parse(text)


def test_longest_name() -> None:
    text = "acme/web/" + "a" * (names.MAX_NAME_LENGTH - len("acme/web/"))
    assert str(ImageName.parse(text)) == text


@pytest.mark.parametrize("tag", ["v1", "latest", "_x", "V1.0-rc_2", "a" * 128, "9"])
def test_valid_tags(tag: str) -> None:
    names.validate_tag(tag)
    assert names.is_valid_tag(tag)


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a" * 129, "a/b", "a:b", "a b", "ä", "v1\n"])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(InvalidName):
        names.validate_tag(tag)
    assert not names.is_valid_tag(tag)


def test_slugs_keys_and_user_names() -> None:
    names.validate_slug("web-app")
    names.validate_project_key("PLATFORM_2")
    names.validate_username("alice.b-c_d")
    for bad_slug in ("Web", "-web", "web-", "web_app", "a" * 64, "", "web\n"):
        with pytest.raises(InvalidName):
            names.validate_slug(bad_slug)
    for bad_key in ("platform", "1PLAT", "PLAT-FORM", "P" * 33, "", "PLAT\n"):
        with pytest.raises(InvalidName):
            names.validate_project_key(bad_key)
    for bad_user in ("Alice", "-alice", "a" * 65, "", "al ice", "alice\n"):
        with pytest.raises(InvalidName):
            names.validate_username(bad_user)
