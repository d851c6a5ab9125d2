"""Pydantic models of what goes over the wire, in both dialects.

The client builds request bodies and reads answers with these models; the
emulator reads requests and writes answers with the same ones. Answers are
parsed leniently (unknown fields are kept, optional fields may be missing)
because providers add fields over time; requests are parsed strictly by the
emulator because the real service refuses what it does not know.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator

# Answers are read strictly where being lenient would hide a broken server: a boolean is no
# float, and no count of tokens is negative.
Number = StrictFloat | StrictInt
Count = Annotated[int, Field(ge=0)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- native (dashscope) request -------------------------------------------------------


_CONTENT_KEYS = ("text", "image", "video", "multi_images")


class NativeContent(_Strict):
    """One content object of a native request: one of the four keys, or (fusion, on the
    models that fuse) a text, an image or an image group, and a video in the same object,
    which then give ONE vector."""

    text: str | None = None
    image: str | None = None
    video: str | None = None
    multi_images: list[str] | None = None

    @model_validator(mode="after")
    def _keys_given(self) -> NativeContent:
        given = self.keys
        if not given:
            raise ValueError("each content must have one of text, image, video, multi_images")
        if self.image is not None and self.multi_images is not None:
            raise ValueError("a content holds image or multi_images, not both")
        return self

    @property
    def keys(self) -> list[str]:
        """The keys this content sets, in the order of the four keys."""
        return [k for k in _CONTENT_KEYS if getattr(self, k) is not None]

    @property
    def fused(self) -> bool:
        """Whether this content holds several media (one fused vector on the models that
        fuse; refused by the others)."""
        return len(self.keys) > 1

    @property
    def kind(self) -> Literal["text", "image", "video", "multi_images", "fused"]:
        if self.fused:
            return "fused"
        if self.text is not None:
            return "text"
        if self.image is not None:
            return "image"
        if self.video is not None:
            return "video"
        return "multi_images"

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class NativeInput(_Strict):
    contents: list[NativeContent]


class NativeParameters(_Lenient):
    """The native ``parameters`` (contract.md, "Dated snapshots, parameters and regions")."""

    dimension: int | None = None
    fps: float | None = None
    res_level: int | None = None
    max_video_frames: int | None = None
    instruct: str | None = None
    output_type: str | None = None


class NativeRequest(_Strict):
    model: str
    input: NativeInput
    parameters: NativeParameters | None = None


# --- native (dashscope) answer ---------------------------------------------------------


class NativeEmbedding(_Lenient):
    index: int
    embedding: list[Number]
    type: str | None = None


class NativeOutput(_Lenient):
    embeddings: list[NativeEmbedding]


class InputTokensDetails(_Lenient):
    text_tokens: Count | None = None
    image_tokens: Count | None = None
    video_tokens: Count | None = None


class NativeUsage(_Lenient):
    """Both shapes of native usage; see contract.md, "Usage: two shapes"."""

    input_tokens: Count | None = None
    image_tokens: Count | None = None
    image_count: Count | None = None
    duration: Annotated[float, Field(ge=0)] | None = None
    output_tokens: Count | None = None
    total_tokens: Count | None = None
    input_tokens_details: InputTokensDetails | None = None


class NativeResponse(_Lenient):
    output: NativeOutput
    usage: NativeUsage | None = None
    request_id: str | None = None


class NativeError(_Lenient):
    code: str | None = None
    message: str | None = None
    request_id: str | None = None


# --- openai dialect --------------------------------------------------------------------


class ImageURL(_Lenient):
    url: str


class OpenAIPart(_Strict):
    """An OpenAI-style part: ``{"type": "text", "text": ...}``, ``{"type": "image", "url": ...}``,
    ``{"type": "image_url", "image_url": {"url": ...}}`` or ``{"type": "video", "url": ...}``."""

    type: Literal["text", "image", "image_url", "video"]
    text: str | None = None
    url: str | None = None
    image_url: ImageURL | None = None

    def to_native(self) -> NativeContent:
        if self.type == "text":
            if self.text is None:
                raise ValueError("a text part needs 'text'")
            return NativeContent(text=self.text)
        if self.type == "image_url":
            if self.image_url is None:
                raise ValueError("an image_url part needs 'image_url': {'url': ...}")
            return NativeContent(image=self.image_url.url)
        if self.url is None:
            raise ValueError(f"a {self.type} part needs 'url'")
        if self.type == "image":
            return NativeContent(image=self.url)
        return NativeContent(video=self.url)


class OpenAIRequest(_Lenient):
    model: str
    input: str | list[str] | list[OpenAIPart] | NativeInput
    user: str | None = None
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None

    def contents(self) -> list[NativeContent]:
        """The request's parts as native contents, in order."""
        if isinstance(self.input, str):
            return [NativeContent(text=self.input)]
        if isinstance(self.input, NativeInput):
            return list(self.input.contents)
        return [
            NativeContent(text=item) if isinstance(item, str) else item.to_native()
            for item in self.input
        ]


class OpenAIEmbedding(_Lenient):
    object: str = "embedding"
    index: int
    embedding: list[Number]


class OpenAIUsage(_Lenient):
    prompt_tokens: Count = 0
    total_tokens: Count = 0


class OpenAIResponse(_Lenient):
    object: str = "list"
    data: list[OpenAIEmbedding]
    model: str | None = None
    usage: OpenAIUsage | None = None


class OpenAIErrorDetail(_Lenient):
    message: str | None = None
    type: str | None = None
    code: str | int | None = None
    param: str | None = None


class OpenAIError(_Lenient):
    error: OpenAIErrorDetail = Field(default_factory=OpenAIErrorDetail)


NATIVE_PATH = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
OPENAI_PATH = "/v1/embeddings"
