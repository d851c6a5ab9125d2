"""Captioned image references and fused groups: the core's one rule for both adapters.

A captioned reference (``file:///bike.jpg#caption=a%20red%20bicycle``) is ONE fused part of
its caption and its image; a fused method's groups become :class:`Fused` parts; a loader's
caption function is checked once for both loaders; and a captioned hit goes into a chat
prompt as its image and its caption."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest

from tests._core_fakes import FakeService, MakeClient, png_bytes
from tongyi_vision import (
    FLASH_SNAPSHOT,
    Fused,
    Image,
    InputError,
    MediaNotFoundError,
    MultiImage,
    Video,
)
from tongyi_vision.media.references import (
    caption_for,
    captioned_part,
    captioned_reference,
    checked_captioner,
    fused_groups,
    query_part,
    split_caption,
    text_or_media,
)
from tongyi_vision.media.sources import data_uri, file_uri

URL = "https://example.com/a.png"


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "red bike #1.png"  # a space and a '#' in the name: encoded in the URI
    path.write_bytes(png_bytes(color=(200, 0, 0)))
    return path


# --- captioned references ------------------------------------------------------------------


@pytest.mark.parametrize(
    "caption",
    ["a red bicycle", "100% steel, #1 = best", "ein Fahrrad: 自行车", "two\nlines", "a/b?c&d"],
)
def test_a_caption_survives_the_round_trip_through_its_reference(
    picture: Path, caption: str
) -> None:
    uri = file_uri(picture)
    value = captioned_reference(uri, caption)
    assert "\n" not in value and " " not in value  # one word: a vector store keeps it whole
    assert split_caption(value) == (uri, caption)


def test_the_caption_is_percent_encoded_after_its_fragment() -> None:
    value = captioned_reference("file:///photos/bike.jpg", "a red bicycle, 100% steel")
    assert value == "file:///photos/bike.jpg#caption=a%20red%20bicycle%2C%20100%25%20steel"


@pytest.mark.parametrize(
    "value",
    [
        "a note about #caption=things",
        "https://example.com/a.png#caption=a%20cat",  # a URL string is text, caption or not
        "data:video/mp4;base64,AAAA#caption=a%20talk",
        "file:///photos/bike.jpg",
        "file:///photos/bike.jpg#t=1,2",
    ],
)
def test_only_image_references_carry_a_caption(value: str) -> None:
    assert split_caption(value) == (value, None)
    assert captioned_part(value) is None


def test_a_captioned_file_reference_is_the_fused_caption_and_image(picture: Path) -> None:
    uri = file_uri(picture)
    part = captioned_part(captioned_reference(uri, "a red bicycle"), auto_fit=False)
    assert part == Fused(["a red bicycle", Image(uri)])
    assert isinstance(part, Fused)
    image = part.parts[1]
    assert isinstance(image, Image) and image.auto_fit is False


def test_a_captioned_data_uri_is_the_fused_caption_and_image() -> None:
    uri = data_uri("image/png", png_bytes())
    part = captioned_part(captioned_reference(uri, "a small red square"))
    assert part == Fused(["a small red square", Image(uri)])


def test_a_blank_caption_leaves_the_image_alone(picture: Path) -> None:
    uri = file_uri(picture)
    assert captioned_part(captioned_reference(uri, "  ")) == Image(uri)


def test_a_captioned_reference_to_a_missing_file_names_the_file(tmp_path: Path) -> None:
    value = captioned_reference(file_uri(tmp_path / "gone.png"), "a red bicycle")
    with pytest.raises(MediaNotFoundError, match=r"gone\.png"):
        captioned_part(value)


def test_the_text_rule_reads_a_captioned_reference_unless_files_are_off(picture: Path) -> None:
    value = captioned_reference(file_uri(picture), "a red bicycle")
    assert text_or_media(value) == Fused(["a red bicycle", Image(file_uri(picture))])
    assert text_or_media(value, files=False) == value  # no file read: the text itself
    data = captioned_reference(data_uri("image/png", png_bytes()), "a square")
    assert isinstance(text_or_media(data, files=False), Fused)  # data URIs read no file


def test_a_captioned_query_is_read_only_when_asked(picture: Path) -> None:
    value = captioned_reference(file_uri(picture), "a red bicycle")
    with pytest.raises(InputError, match="read_query_files=True"):
        query_part(value, read_files=False)
    assert query_part(value, read_files=True) == Fused(["a red bicycle", Image(file_uri(picture))])


def test_a_captioned_reference_goes_over_the_wire_as_one_content(
    make_client: MakeClient, picture: Path
) -> None:
    service = FakeService(dialect="dashscope")
    client = make_client(service, dialect="dashscope", model=FLASH_SNAPSHOT)
    value = captioned_reference(file_uri(picture), "a red bicycle, 100% steel")

    client.embed([text_or_media(value), text_or_media(file_uri(picture))])

    (seen,) = service.seen
    image = data_uri("image/png", picture.read_bytes())
    assert seen.body["input"]["contents"] == [
        {"text": "a red bicycle, 100% steel", "image": image},
        {"image": image},
    ]


# --- fused groups ---------------------------------------------------------------------------


def test_each_kind_of_member_becomes_its_part(picture: Path) -> None:
    raw = png_bytes()
    block = {"type": "image", "url": URL}
    clip = Video("https://example.com/clip.mp4")
    groups: list[Any] = [
        ["a red bicycle", block, picture],
        [raw, io.BytesIO(raw), MultiImage([URL]), clip],
        Fused(["as it is", Image(URL)]),
    ]

    fused = fused_groups(groups, method="embed_fused")

    assert fused == [
        Fused(["a red bicycle", Image(URL), Image(str(picture))]),
        Fused([Image(raw), Image(raw), MultiImage([URL]), clip]),
        groups[2],
    ]
    assert fused[2] is groups[2]


def test_a_member_string_is_read_as_the_text_methods_read_it(picture: Path) -> None:
    raw = base64.b64encode(png_bytes()).decode("ascii")
    (fused,) = fused_groups([[file_uri(picture), raw, "https://example.com/x.png"]], method="m")
    assert fused.parts == [
        Image(file_uri(picture)),
        Image(png_bytes()),
        "https://example.com/x.png",
    ]


def test_a_captioned_member_adds_its_caption_and_its_image(picture: Path) -> None:
    value = captioned_reference(file_uri(picture), "a red bicycle")
    (fused,) = fused_groups([[value, Image(URL)]], method="embed_fused")
    assert fused == Fused(["a red bicycle", Image(file_uri(picture)), Image(URL)])


def test_auto_fit_reaches_every_image_member(picture: Path) -> None:
    (fused,) = fused_groups([["text", picture, png_bytes()]], auto_fit=False, method="m")
    assert [m.auto_fit for m in fused.parts if isinstance(m, Image)] == [False, False]


@pytest.mark.parametrize("groups", ["a red bicycle", b"bytes", {"type": "text"}, None, 3])
def test_groups_must_be_a_list_and_the_error_names_the_method(groups: object) -> None:
    with pytest.raises(InputError, match=r"get_fused_embedding_batch takes a list of groups"):
        fused_groups(groups, method="get_fused_embedding_batch")
    with pytest.raises(InputError, match=r"wrap one group in a list: embed_fused\(\[\[text"):
        fused_groups(groups, method="embed_fused")


def test_a_bad_group_is_named_by_its_position(picture: Path) -> None:
    with pytest.raises(InputError, match="part 1: a fused group is a list of parts, not str") as e:
        fused_groups([["a", picture], "not a group"], method="embed_fused")
    assert e.value.part_index == 1
    with pytest.raises(InputError, match="not int") as caught:
        fused_groups([["a", URL], ["b", picture, 7]], method="embed_fused")
    assert caught.value.part_index == 1
    with pytest.raises(InputError, match="not Fused"):
        fused_groups([["a", Fused(["b", Image(URL)])]], method="embed_fused")


def test_a_missing_file_in_a_group_keeps_its_type_and_gains_the_position(tmp_path: Path) -> None:
    gone = captioned_reference(file_uri(tmp_path / "gone.png"), "a caption")
    with pytest.raises(MediaNotFoundError, match=r"gone\.png") as caught:
        fused_groups([["fine", Image(URL)], [gone]], method="embed_fused")
    assert caught.value.part_index == 1


# --- the loaders' caption function ----------------------------------------------------------


def test_a_caption_function_is_checked_once_for_both_loaders(picture: Path) -> None:
    captions = {picture.name: "a red bicycle", "blank.png": "   "}

    def captioner(path: Path) -> str | None:
        return captions.get(path.name)

    assert checked_captioner(None) is None
    assert checked_captioner(captioner) is captioner
    with pytest.raises(TypeError, match=r"caption must be a function.*not dict"):
        checked_captioner(captions)
    assert caption_for(captioner, picture) == "a red bicycle"
    assert caption_for(captioner, picture.with_name("blank.png")) is None
    assert caption_for(captioner, picture.with_name("other.png")) is None
    assert caption_for(None, picture) is None
    with pytest.raises(TypeError, match=r"returned a int; it must return the caption as a str"):
        caption_for(lambda path: 42, picture)  # type: ignore[arg-type, return-value]


# --- a captioned hit in a chat prompt -------------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "data"])
def test_a_captioned_hit_is_its_image_then_its_caption(picture: Path, kind: str) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from tongyi_vision.langchain import to_content_blocks

    data = picture.read_bytes()
    reference = file_uri(picture) if kind == "file" else data_uri("image/png", data)
    hit = Document(page_content=captioned_reference(reference, "a red bicycle, 100% steel"))
    plain = Document(page_content=reference)
    image = {"type": "image", "base64": base64.b64encode(data).decode(), "mime_type": "image/png"}
    caption = {"type": "text", "text": "a red bicycle, 100% steel"}

    assert to_content_blocks([hit, plain]) == [image, caption, image]
    assert to_content_blocks([hit], text=False) == [image, caption]  # it goes with its image
    blank = Document(page_content=captioned_reference(reference, " "))
    assert to_content_blocks([blank]) == [image]
    # too large to show: its reference, as text
    assert to_content_blocks([hit], max_image_bytes=len(data) - 1) == [
        {"type": "text", "text": hit.page_content}
    ]
