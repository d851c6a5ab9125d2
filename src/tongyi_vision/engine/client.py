"""``Client`` and ``AsyncClient``: every decision in ``_BaseClient`` and the scheduler's
``Call``; the two shells only hold connections and run the call with their driver."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

import httpx
from typing_extensions import Self

from .._version import __version__
from ..media.fused import Fused
from ..media.image import Image, ImageSource, MultiImage
from ..media.parts import Part, parts_digest, prepare_part, resolve_part
from ..media.prepared import Prepared, prepare_text
from ..media.texts import split_text, truncate_text
from ..media.video import Video
from ..wire.dialects import Answer, path_for
from ..wire.errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    DimensionMismatchError,
    InputError,
    PartialResult,
    TextTooLongError,
    TongyiVisionError,
)
from ..wire.limits import (
    DEFAULT_MAX_PARTS_PER_REQUEST,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_REQUEST_TOKENS,
    DEFAULT_MAX_VIDEO_FRAMES,
    MAX_IMAGES_PER_REQUEST,
    MODELS,
    image_tokens_estimate,
    media_price,
    parameter_problem,
)
from ..wire.results import EmbedResult, ProgressEvent, Usage, Vector
from .cache import CacheStore, EmbeddingCache, Entry, as_cache, as_float32
from .config import REGION_URLS, Settings, resolve_settings, unsupported_parameter
from .drivers import Pacing, run_on_tasks, run_on_threads
from .permits import AsyncPermits, ThreadPermits
from .pieces import LONG_TEXT_MODES, LongText, Pieces
from .planner import Limits, Plan, dedupe, pack
from .progress import ProgressBar, ProgressCallback
from .ratelimit import RateLearner, RateLimit
from .scheduler import (
    DEFAULT_MAX_RATE_LIMIT_WAIT,
    Call,
    OnInvalid,
    Recorder,
    RequestSettings,
    RetryPolicy,
)
from .transport import ACCEPT_ENCODING, apost, attempt_seconds, deadline, open_sync, post

HTTP = TypeVar("HTTP", httpx.Client, httpx.AsyncClient)
# Keys at least this long are masked wherever they appear; shorter ones only as whole words.
_WHOLE_KEY = 8


class _BaseClient(Generic[HTTP]):
    """Settings, planning and bookkeeping shared by both clients; no I/O."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        model: str | None = None,
        dialect: str | None = None,
        dimension: int | None = None,
        region: str | None = None,
        workspace: str | None = None,
        res_level: int | None = None,
        max_video_frames: int | None = None,
        fps: float | None = None,
        instruct: str | None = None,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 3,
        max_concurrency: int = 8,
        max_parts_per_request: int = DEFAULT_MAX_PARTS_PER_REQUEST,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_request_tokens: int = DEFAULT_MAX_REQUEST_TOKENS,
        auto_fit: bool = True,
        long_text: LongText = "split",
        cache: EmbeddingCache | CacheStore | str | os.PathLike[str] | None = None,
        default_headers: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
        show_progress: bool = False,
        rate_limit: RateLimit | None = None,
        max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
        http_client: HTTP | None = None,
    ) -> None:
        self._settings: Settings = resolve_settings(
            api_key=api_key,
            base_url=base_url,
            model=model,
            dialect=dialect,
            dimension=dimension,
            region=region,
            workspace=workspace,
            res_level=res_level,
            max_video_frames=max_video_frames,
            fps=fps,
            instruct=instruct,
        )
        for name, value, low in (
            ("max_retries", max_retries, 0),
            ("max_concurrency", max_concurrency, 1),
            ("max_parts_per_request", max_parts_per_request, 1),
            ("max_request_bytes", max_request_bytes, 1024),
            ("max_request_tokens", max_request_tokens, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigurationError(f"{name} must be an int >= {low}, not {value!r}")
        if long_text not in LONG_TEXT_MODES:
            raise ConfigurationError(
                f"long_text must be 'split', 'truncate' or 'error', not {long_text!r}"
            )
        _check_callback(progress)
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise ConfigurationError(
                "rate_limit must be a tongyi_vision.RateLimit (for example "
                f"RateLimit(requests_per_minute=600)), not {type(rate_limit).__name__}"
            )
        if (
            isinstance(max_rate_limit_wait, bool)
            or not isinstance(max_rate_limit_wait, (int, float))
            or not 0 <= max_rate_limit_wait < float("inf")
        ):
            raise ConfigurationError(
                f"max_rate_limit_wait must be seconds >= 0, not {max_rate_limit_wait!r}"
            )
        self.rate_limit = rate_limit
        # What this client learns of the account's limits from 429s (its own, whichever
        # threads and event loops it runs on); nothing paces it before a 429.
        self._learner = RateLearner(rate_limit)
        self._pacing = Pacing(rate_limit, self._learner)
        self.max_rate_limit_wait = float(max_rate_limit_wait)
        self.long_text: LongText = long_text
        self.cache = as_cache(cache)
        self.timeout = _timeout(timeout)
        self._attempt_seconds = attempt_seconds(self.timeout)
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self.auto_fit = auto_fit
        self.progress = progress
        self.show_progress = show_progress
        self._limits = Limits(
            max_parts_per_request, MAX_IMAGES_PER_REQUEST, max_request_bytes, max_request_tokens
        )
        self._policy = RetryPolicy(
            max_retries=max_retries,
            max_rate_limit_wait=self.max_rate_limit_wait,
            rate_limit_known=rate_limit is not None,
        )
        self._url = self._settings.base_url + path_for(self._settings.dialect)
        self._headers = {
            "User-Agent": f"tongyi-vision/{__version__}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            # encodings the client decodes itself, under a cap (see engine/transport.py)
            "Accept-Encoding": ACCEPT_ENCODING,
            # the client's own Authorization wins, whatever the case of a caller's header
            **_checked_headers(default_headers),
            "Authorization": f"Bearer {self._settings.api_key.get()}",
        }
        self._http_limits = httpx.Limits(
            max_connections=max_concurrency, max_keepalive_connections=max_concurrency
        )
        self._usage = Usage()
        self._usage_lock = threading.Lock()
        # What a twin of this client is made with: the resolved settings, the same options.
        self._options: dict[str, Any] = {
            "base_url": self._settings.base_url,
            "model": self._settings.model,
            "dialect": self._settings.dialect,
            "dimension": self._settings.dimension,
            "res_level": res_level,
            "max_video_frames": max_video_frames,
            "fps": fps,
            "instruct": instruct,
            "timeout": self.timeout,
            "max_retries": max_retries,
            "max_concurrency": max_concurrency,
            "max_parts_per_request": max_parts_per_request,
            "max_request_bytes": max_request_bytes,
            "max_request_tokens": max_request_tokens,
            "auto_fit": auto_fit,
            "long_text": long_text,
            "cache": self.cache,
            "default_headers": default_headers,
            "progress": progress,
            "show_progress": show_progress,
            "rate_limit": rate_limit,  # shared by the twin: one budget
            "max_rate_limit_wait": self.max_rate_limit_wait,
        }
        self._connect(http_client)

    def _connect(self, http_client: HTTP | None) -> None:
        raise NotImplementedError

    # --- public read-only settings ---

    @property
    def settings(self) -> Settings:
        """The settings in use, as resolved once at construction (the key stays hidden)."""
        return self._settings

    @property
    def model(self) -> str:
        """The model name sent with every request."""
        return self._settings.model

    @property
    def dialect(self) -> str:
        """``"openai"`` (the EmpirioLabs gateway) or ``"dashscope"`` (Model Studio's own API)."""
        return self._settings.dialect

    @property
    def base_url(self) -> str:
        """The service root, without the endpoint's path."""
        return self._settings.base_url

    @property
    def dimension(self) -> int | None:
        """The size of the vectors this client returns (``None`` for an unknown model)."""
        return self._settings.expected_dimension

    @property
    def region(self) -> str | None:
        """The region of the native service root in use (``"singapore"`` or ``"beijing"``;
        ``None`` for the gateway or another host). Keys are bound to a region."""
        return self._settings.region

    @property
    def instruct(self) -> str | None:
        """The instruction :meth:`Client.embed_query` sends with queries (never documents)."""
        return self._settings.instruct

    @property
    def usage(self) -> Usage:
        """Usage and cost summed over every call this client has made."""
        return self._usage

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.model!r}, dialect={self.dialect!r}, "
            f"base_url={self.base_url!r}, api_key='**********')"
        )

    def __getstate__(self) -> object:
        raise TypeError(
            f"{type(self).__name__} cannot be pickled (it holds connections and the API key); "
            "create one in the other process"
        )

    # --- shared steps of a call ---

    def _redact(self, text: str) -> str:
        """``text`` with the API key masked: everywhere, or for a key too short to be told
        from a piece of a word (a test's ``"k"``), where it stands as a word of its own."""
        key = self._settings.api_key.get()
        if not key or key not in text:
            return text
        if len(key) >= _WHOLE_KEY:
            return text.replace(key, "**********")
        return re.sub(rf"(?<![\w-]){re.escape(key)}(?![\w-])", "**********", text)

    def _start(
        self,
        given: Iterable[Part],
        resume: PartialResult | None,
        progress: ProgressCallback | None,
        on_invalid: OnInvalid,
        instruct: str | None = None,
    ) -> _Started:
        """Check every part (raising before any request), dedupe, plan, and set up the call;
        ``instruct`` goes with the texts of a query call."""
        parts = _listed(given)
        if on_invalid not in ("raise", "skip"):
            raise ValueError(f"on_invalid must be 'raise' or 'skip', not {on_invalid!r}")
        _check_callback(progress)
        known: list[Vector | None] = [None] * len(parts)
        digest = parts_digest(parts)
        if resume is not None:
            if len(resume.vectors) != len(parts):
                raise InputError(
                    f"resume holds {len(resume.vectors)} results but {len(parts)} parts were "
                    "given; pass the same parts as the failed call"
                )
            if resume.parts_digest is not None and resume.parts_digest != digest:
                raise InputError(
                    "resume holds the results of other parts (of the same number); pass the "
                    "same parts, in the same order, as the call it came from"
                )
            known = list(resume.vectors)
        prepared: list[tuple[int, Prepared]] = []
        refused: dict[int, TongyiVisionError] = {}
        pieces = Pieces(len(parts))
        truncated = 0
        for index, part in enumerate(parts):
            if known[index] is not None:
                continue
            try:
                resolved = resolve_part(part)  # a content block's text may be long too
                try:
                    prepared.append(
                        (index, self._fit(prepare_part(resolved, defer_checks=True), instruct))
                    )
                except TextTooLongError:
                    if self.long_text == "error" or not isinstance(resolved, str):
                        raise
                    if self.long_text == "truncate":
                        text = prepare_text(truncate_text(resolved))
                        prepared.append((index, self._fit(text, instruct)))
                        truncated += 1
                        continue
                    texts = [self._fit(prepare_text(t), instruct) for t in split_text(resolved)]
                    earlier = resume.pieces.get(index) if resume is not None else None
                    slots = pieces.add(index, [t.text_tokens for t in texts], earlier)
                    prepared += [
                        (s, t) for s, t in zip(slots, texts, strict=True) if not pieces.has(s)
                    ]
            except InputError as exc:
                error = exc.at(index)
                if on_invalid == "raise":
                    raise error from exc.__cause__
                refused[index] = error
        unique, owners = dedupe(prepared)
        served = Usage()
        keys: list[str | None] = [None] * len(unique)
        if self.cache is not None:
            unique, owners, keys, served = self._from_cache(unique, owners, known, pieces)
        # The costly checks (decoding headers), for the parts to be sent only.
        checked = []
        for position, candidate in enumerate(unique):
            try:
                candidate.check()
            except InputError as exc:
                error = exc.at(pieces.part_of(owners[position][0]))
                if on_invalid == "raise":
                    raise error from exc.__cause__
                refused.update((pieces.part_of(slot), error) for slot in owners[position])
                continue
            checked.append(position)
        if len(checked) < len(unique):
            unique = [unique[i] for i in checked]
            owners = [owners[i] for i in checked]
            keys = [keys[i] for i in checked]
        recorder = _recorder(self.cache, unique, keys) if self.cache is not None else None
        parts_total = sum(map(len, owners))
        bar = ProgressBar(parts_total, enabled=self.show_progress)
        batches = pack(
            unique,
            self._limits,
            parameters=[dict(p.options) for p in unique],
            tokens=[self._tokens(p) for p in unique],
        )
        call = Call(
            Plan(unique, owners, batches),
            settings=RequestSettings(
                self._settings.dialect,
                self._settings.model,
                self._settings.dimension,
                self._settings.expected_dimension,
                self._redact,
            ),
            policy=self._policy,
            progress=_fan_out(progress, self.progress, bar.callback),
            parts_total=parts_total,
            on_invalid=on_invalid,
            pieces=pieces,
            recorder=recorder,
        )
        call.usage = served + Usage(truncated=truncated)
        return _Started(call, known, refused, bar, digest)

    def _fit(self, part: Prepared, instruct: str | None) -> Prepared:
        """A prepared part with the native parameters it is sent with (its own values, else
        the client's; ``instruct`` for the texts of a query), refused now if the model or
        the dialect cannot take it. Parts sent with other parameters are other parts."""
        settings = self._settings
        model, dialect = settings.model, settings.dialect
        if part.kind == "fused":
            if dialect == "openai":
                raise InputError(
                    "a fused part is one content object of several media, which only the "
                    "native API carries; use dialect='dashscope' with a dated snapshot",
                    part=part.description,
                )
            if not settings.spec.fuses:
                fusing = [m for m, s in MODELS.items() if s.fuses]
                raise InputError(
                    f"{model} does not fuse media into one vector; use {' or '.join(fusing)}, "
                    "or embed the members as parts of their own",
                    part=part.description,
                )
        own = dict(part.options)
        for name in own:
            problem = unsupported_parameter(name, model, dialect)
            if problem is not None:
                raise InputError(problem, part=part.description)
        given = {**settings.parameters, **own}
        options = {name: given[name] for name in sorted(part.uses) if name in given}
        if instruct is not None and part.kind == "text":
            options["instruct"] = instruct
        if not options:
            return part if not own else replace(part, options=())
        named = json.dumps(options, sort_keys=True, separators=(",", ":"))
        return replace(part, key=f"{part.key}\0{named}", options=tuple(options.items()))

    @staticmethod
    def _tokens(part: Prepared) -> int:
        """About how many tokens a part costs: its text's estimate, and each image at its
        resolution tier (a video the service samples as its most frames at that tier)."""
        options = dict(part.options)
        per_image = image_tokens_estimate(options.get("res_level"))
        frames = int(options.get("max_video_frames", DEFAULT_MAX_VIDEO_FRAMES))
        return part.text_tokens + per_image * (part.images + part.videos * frames)

    def _from_cache(
        self,
        unique: list[Prepared],
        owners: list[list[int]],
        known: list[Vector | None],
        pieces: Pieces,
    ) -> tuple[list[Prepared], list[list[int]], list[str | None], Usage]:
        """Serve what the cache holds (filling ``known`` and the pieces); return the parts
        still to send, their owners and keys, and the usage of what was served."""
        assert self.cache is not None
        model, dimension = self._settings.model, self._settings.expected_dimension
        keys = [self.cache.key(_identity(p), model, dimension, dict(p.options)) for p in unique]
        hits = self.cache.get_many([k for k in keys if k is not None])
        if not hits:
            return unique, owners, keys, Usage()
        text_price, media_price_ = media_price(model)
        kept: list[int] = []
        cached, saved = 0, 0.0
        for position, key in enumerate(keys):
            entry = hits.get(key) if key is not None else None
            if entry is None:
                kept.append(position)
                continue
            cached += 1
            saved += entry.tokens * (media_price_ if entry.media else text_price) / 1_000_000
            for n, slot in enumerate(owners[position]):
                vector = entry.vector if n == 0 else list(entry.vector)
                if not pieces.is_piece(slot):
                    known[slot] = vector
                elif (whole := pieces.take(slot, vector)) is not None:
                    known[whole[0]] = whole[1]
        served = Usage(cached=cached, saved_usd=saved)
        return (
            [unique[i] for i in kept],
            [owners[i] for i in kept],
            [keys[i] for i in kept],
            served,
        )

    def _finish(self, started: _Started) -> EmbedResult | PartialResult:
        call = started.call
        usage = replace(call.usage, pieces=call.pieces_sent()).priced(self._settings.model)
        with self._usage_lock:
            self._usage = self._usage + usage
        partial = call.partial(len(started.known), started.known)
        partial.usage = usage
        partial.errors = {**started.refused, **partial.errors}
        partial.parts_digest = started.digest
        if call.error is not None:
            call.error.partial = partial
            raise self._explained(call.error)
        if call.on_invalid == "skip":
            return partial
        vectors = partial.vectors
        if any(v is None for v in vectors):  # pragma: no cover - every batch succeeded
            raise TongyiVisionError("internal error: a part has no vector after a successful call")
        return EmbedResult(
            vectors=[v for v in vectors if v is not None],
            usage=usage,
            model=self._settings.model,
            dimension=self._settings.expected_dimension
            or (len(vectors[0] or []) if vectors else 0),
        )

    def _explained(self, error: TongyiVisionError) -> TongyiVisionError:
        """A call's error with what this client knows of its cause added to its message."""
        settings = self._settings
        hint = ""
        if isinstance(error, AuthenticationError) and settings.dialect == "dashscope":
            where = (
                f"the {settings.region} region ({settings.base_url})"
                if settings.region
                else settings.base_url
            )
            other = [r for r in REGION_URLS if r != settings.region]
            hint = (
                f"Model Studio keys are bound to a region and this client used {where}: a "
                f"key of another region is refused with 401, so check that {settings.key_env} "
                "belongs to it"
                + (f", or pass region={other[0]!r} if it does not" if settings.region else "")
            )
        elif isinstance(error, DimensionMismatchError) and settings.dimension is not None:
            hint = f"{settings.model} was asked for dimension={settings.dimension}" + (
                " and may ignore it (the providers' pages disagree on the undated names): "
                "use a dated snapshot such as "
                f"{settings.model}-2026-03-06, or leave dimension unset"
                if settings.spec.dimension_checked and settings.spec.known
                else ""
            )
        if hint and isinstance(error, APIError):
            error.hint = hint
        return error

    def _query(self, text: str, instruct: str | None) -> tuple[list[Part], str | None]:
        """The parts of a query call and the instruction it carries (``instruct`` given, else
        the client's), refused now if the model cannot take one."""
        if not isinstance(text, str):
            raise InputError(f"embed_query takes one text (a str), not {type(text).__name__}")
        if instruct is None:
            return [text], self._settings.instruct
        problem = parameter_problem("instruct", instruct) or unsupported_parameter(
            "instruct", self._settings.model, self._settings.dialect
        )
        if problem is not None:
            raise InputError(problem, part="instruct")
        return [text], instruct

    def _texts(self, texts: Iterable[str]) -> list[Part]:
        items = list(texts)
        for index, text in enumerate(items):
            if not isinstance(text, str):
                raise InputError(
                    f"embed_texts takes strings, not {type(text).__name__}", part_index=index
                )
        return list(items)

    def _images(self, images: Iterable[Image | ImageSource]) -> list[Part]:
        return _wrap(
            images, lambda i: i if isinstance(i, Image) else Image(i, auto_fit=self.auto_fit)
        )

    def _videos(self, videos: Iterable[Video | str]) -> list[Part]:
        return _wrap(videos, lambda v: v if isinstance(v, Video) else Video(v))


class _Started:
    """A call set up by ``_start``: what it runs, what was known or refused before it."""

    def __init__(
        self,
        call: Call,
        known: list[Vector | None],
        refused: dict[int, TongyiVisionError],
        bar: ProgressBar,
        digest: str,
    ) -> None:
        self.call, self.known, self.refused, self.bar = call, known, refused, bar
        self.digest = digest

    def workers(self, most: int) -> int:
        """How many workers the call needs: one per batch, up to ``most``."""
        return min(most, len(self.call.queue))


def _identity(part: Prepared) -> str:
    try:
        return part.identity()
    except InputError:  # the file went away: not cached, and its load reports it
        return ""


def _recorder(cache: EmbeddingCache, unique: list[Prepared], keys: list[str | None]) -> Recorder:
    """What keeps each successful request's vectors in the cache, with the tokens each part
    cost (the request's tokens shared by the parts' estimates, or evenly for media)."""

    def record(items: list[int], answer: Answer) -> list[Vector]:
        vectors = [as_float32(v) for v in answer.vectors]
        parts = [unique[i] for i in items]
        media = any(p.kind != "text" for p in parts)
        usage = answer.usage
        total = (usage.media_tokens if media else usage.text_tokens) or usage.prompt_tokens
        weights = [1 if media else max(1, p.text_tokens) for p in parts]
        share = [total * w // sum(weights) for w in weights]
        entries = [
            (key, Entry(vector, tokens, media))
            for key, vector, tokens in zip((keys[i] for i in items), vectors, share, strict=True)
            if key is not None
        ]
        cache.put_many(entries)
        return vectors

    return record


def _fan_out(*callbacks: ProgressCallback | None) -> ProgressCallback | None:
    """One progress callback that calls each given one in turn."""
    given = [c for c in callbacks if c is not None]
    if not given:
        return None

    def notify(event: ProgressEvent) -> None:
        for callback in given:
            callback(event)

    return notify


def _listed(parts: object) -> list[Part]:
    """The parts of a call as a list: any iterable (a generator too) is taken whole first."""
    if isinstance(parts, (str, bytes, Image, Video, MultiImage, Fused, Mapping)):
        raise InputError("embed takes a list of parts; wrap a single part in a list: embed([part])")
    if parts is None or not isinstance(parts, Iterable):
        raise InputError(
            f"embed takes a list of parts (texts, Image, Video, MultiImage), "
            f"not {type(parts).__name__}"
        )
    return list(parts)


def _check_callback(callback: ProgressCallback | None) -> None:
    if callback is not None and inspect.iscoroutinefunction(callback):
        # it would be called from worker code that cannot await it, and do nothing
        raise TypeError(
            "progress must be a plain function (called from the client's workers), not an async one"
        )


def _wrap(items: Iterable[Any], make: Callable[[Any], Part]) -> list[Part]:
    """Turn each item into a part; a refused one is named by its position."""
    parts = []
    for index, item in enumerate(items):
        try:
            parts.append(make(item))
        except InputError as exc:
            raise exc.at(index) from exc.__cause__
    return parts


def _full(result: EmbedResult | PartialResult) -> EmbedResult:
    if not isinstance(result, EmbedResult):
        raise TypeError("embed_texts, embed_images and embed_videos do not skip; use embed")
    return result


def _timeout(value: object) -> httpx.Timeout:
    """A timeout from seconds (a positive number, or ``None`` for none) or an ``httpx.Timeout``."""
    if isinstance(value, httpx.Timeout):
        return value
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e9
    ):
        raise ConfigurationError(
            f"timeout must be a positive number of seconds, None or an httpx.Timeout, not {value!r}"
        )
    return httpx.Timeout(value)


# A header name is a token; a value is visible ASCII, spaces and tabs (no newline, no NUL).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")


def _checked_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """A caller's headers, refused now (naming the header, never showing its value) if one
    could not be sent; an ``Authorization`` of theirs gives way to the client's own."""
    checked = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigurationError(f"default_headers: {name!r} is not a valid header name")
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            raise ConfigurationError(
                f"default_headers: the value of {name!r} has a character no HTTP header can "
                "carry (a newline, a NUL or a non-ASCII character); check where it came from"
            )
        if name.lower() != "authorization":
            checked[name] = value
    return checked


class Client(_BaseClient[httpx.Client]):
    """Embeds text, images and video; requests run concurrently on worker threads.

    >>> with Client() as client:                # key from EMPIRIOLABS_API_KEY
    ...     result = client.embed(["a red bicycle", Image("bike.jpg")])
    ...     result.vectors, result.usage.cost_usd

    Arguments (each read once, here; an argument wins over the environment):

    - ``api_key``: else ``EMPIRIOLABS_API_KEY``, or ``DASHSCOPE_API_KEY`` for the
      dashscope dialect; missing, it is a :class:`ConfigurationError`.
    - ``base_url``, ``model``, ``dialect``: else ``TONGYI_VISION_BASE_URL``,
      ``TONGYI_VISION_MODEL``, ``TONGYI_VISION_DIALECT``; else the gateway, flash, openai.
    - ``dimension``: vector size; only the dashscope dialect can change it, to a size
      the model takes (see ``docs/models.md``; checked here, before any request).
    - ``region`` (``"singapore"``, the default, or ``"beijing"``) or ``workspace``
      (``"ws-..."``, a Singapore per-workspace domain): the dashscope dialect's service
      root; keys are bound to a region. An explicit ``base_url`` wins over both.
    - ``res_level`` (image resolution tier 0-3), ``max_video_frames`` (at most 64) and
      ``fps`` (a sampling ratio in [0, 1]): native parameters sent with the media parts
      that do not set their own (dated snapshots; ``fps`` also the undated names).
    - ``instruct``: a task instruction sent with :meth:`embed_query`'s queries, never
      with documents (dated snapshots).
    - ``timeout``: seconds (or an ``httpx.Timeout``) for each attempt of each request,
      also when ``http_client`` is given.
    - ``max_retries``: retries per request, not attempts. ``max_concurrency``: requests
      in flight at once, shared by every call on this client.
    - ``rate_limit``: a :class:`RateLimit` (requests and tokens per minute of the account),
      shared by every client given the same object: requests are let out evenly within
      it, and a 429 that comes anyway pauses the whole client until its ``Retry-After``.
      Without one, nothing is paced until a 429; then the client paces itself at a rate
      it learns from the 429s (its own, shared by its threads and event loops).
    - ``max_rate_limit_wait``: seconds (default 300) a request may wait out 429s without
      using up ``max_retries`` (with ``rate_limit``, or while other requests of the call
      succeed); past it, 429s count as retries. ``max_retries`` still bounds other errors.
    - ``max_parts_per_request`` (default 20), ``max_request_bytes`` and
      ``max_request_tokens`` (estimated tokens; default 20,480): how requests are packed.
    - ``auto_fit``: re-encode images that break the limits (needs Pillow).
    - ``cache``: an :class:`EmbeddingCache`, a path (an SQLite file), a Redis URL
      (``redis://``, ``rediss://`` or ``unix://``: a :class:`RedisStore`, shared by
      processes and machines), or a store with ``mget``/``mset`` (a LangChain
      ``ByteStore``): content embedded before, by this model at this size, is served
      from it and not sent (``usage.cached``).
    - ``long_text``: a text over the 1,024-token limit is embedded in pieces whose
      vectors are averaged (``"split"``, the default), cut to its longest start within
      the limit (``"truncate"``), or refused with :class:`TextTooLongError` (``"error"``).
    - ``default_headers``: sent with every request. ``http_client``: your own
      ``httpx.Client`` (not closed by :meth:`close`).
    - ``progress``: called with a :class:`ProgressEvent` as requests finish;
      ``show_progress``: a tqdm bar.
    """

    def _connect(self, http_client: httpx.Client | None) -> None:
        self._owns_http = http_client is None
        self._http = http_client or open_sync(self.timeout, self._http_limits)
        self._http_lock = threading.Lock()
        self._sleep: Callable[[float], None] = time.sleep
        # One set of permits for every call of this client: the concurrency limit is client-wide.
        self._permits = ThreadPermits(self.max_concurrency)

    @overload
    def embed(
        self,
        parts: Iterable[Part],
        *,
        resume: PartialResult | None = None,
        progress: ProgressCallback | None = None,
        on_invalid: Literal["raise"] = "raise",
    ) -> EmbedResult: ...

    @overload
    def embed(
        self,
        parts: Iterable[Part],
        *,
        resume: PartialResult | None = None,
        progress: ProgressCallback | None = None,
        on_invalid: Literal["skip"],
    ) -> PartialResult: ...

    def embed(
        self,
        parts: Iterable[Part],
        *,
        resume: PartialResult | None = None,
        progress: ProgressCallback | None = None,
        on_invalid: OnInvalid = "raise",
    ) -> EmbedResult | PartialResult:
        """Embed each part into one vector, returned in input order.

        Parts are text (``str``), :class:`Image`, :class:`Video` and
        :class:`MultiImage`. Every part is checked before anything is sent;
        equal parts are sent once; requests run concurrently up to
        ``max_concurrency``. If a request finally fails, its :class:`APIError`
        carries ``partial``; ``embed(parts, resume=error.partial)`` then sends
        only the missing parts.

        With ``on_invalid="skip"``, a part refused by the client's checks or by
        the service for its content is left out and the call goes on; it
        returns a :class:`PartialResult` whose ``errors`` say why each refused
        part has no vector. Errors that are not about one part (the key, the
        rate limit, an outage) still raise.
        """
        return self._run(parts, resume, progress, on_invalid, None)

    def _run(
        self,
        parts: Iterable[Part],
        resume: PartialResult | None,
        progress: ProgressCallback | None,
        on_invalid: OnInvalid,
        instruct: str | None,
    ) -> EmbedResult | PartialResult:
        started = self._start(parts, resume, progress, on_invalid, instruct)
        if started.workers(1):
            self._open()
        try:
            run_on_threads(
                started.call,
                self._permits,
                self._send,
                self._sleep,
                started.workers(self.max_concurrency),
                self._pacing,
            )
        finally:
            started.bar.close()
        return self._finish(started)

    def embed_texts(self, texts: Iterable[str], **options: Any) -> EmbedResult:
        """Embed strings as text, one vector each (``options`` as for :meth:`embed`)."""
        return _full(self.embed(self._texts(texts), **options))

    def embed_query(self, text: str, *, instruct: str | None = None) -> Vector:
        """Embed one search query into one vector, with a task instruction: ``instruct``,
        else the client's (dated snapshots; documents given to :meth:`embed` never carry
        one). Queries with other instructions are other cache entries.

        >>> client.embed_query("red bicycle", instruct="Find images that match the description")
        """
        parts, chosen = self._query(text, instruct)
        return _full(self._run(parts, None, None, "raise", chosen)).vectors[0]

    def async_client(self, *, http_client: httpx.AsyncClient | None = None) -> AsyncClient:
        """An :class:`AsyncClient` with this client's settings and options (its own
        connections and permits), for code that needs both."""
        key = self._settings.api_key.get()
        return AsyncClient(key, **self._options, http_client=http_client)

    def embed_images(self, images: Iterable[Image | ImageSource], **options: Any) -> EmbedResult:
        """Embed images given as :class:`Image` or anything ``Image`` takes (paths, URLs, bytes)."""
        return _full(self.embed(self._images(images), **options))

    def embed_videos(self, videos: Iterable[Video | str], **options: Any) -> EmbedResult:
        """Embed videos given as :class:`Video` or URLs."""
        return _full(self.embed(self._videos(videos), **options))

    def _send(self, body: bytes) -> httpx.Response:
        with deadline(self._attempt_seconds):
            return post(
                self._http, self._url, content=body, headers=self._headers, timeout=self.timeout
            )

    def _open(self) -> None:
        """Reopen the connections after :meth:`close` (a client outlives a ``with`` block, as
        the async one does); an ``http_client`` passed in and closed since is an error."""
        if not self._http.is_closed:
            return
        if not self._owns_http:
            raise ConfigurationError(
                "the http_client given to this client has been closed; pass an open one, or "
                "none and let the client open its own"
            )
        with self._http_lock:
            if self._http.is_closed:
                self._http = open_sync(self.timeout, self._http_limits)

    def close(self) -> None:
        """Close the connections this client opened (not an ``http_client`` passed in); a
        later call opens new ones."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _LoopPool:
    """What an :class:`AsyncClient` keeps per event loop: connections and permits."""

    def __init__(self, http: httpx.AsyncClient, permits: AsyncPermits) -> None:
        self.http = http
        self.permits = permits
        self.closer: AsyncGenerator[None, None] | None = None


class AsyncClient(_BaseClient[httpx.AsyncClient]):
    """The asyncio twin of :class:`Client`: the same methods, awaited; requests run as
    concurrent tasks up to ``max_concurrency``.

    >>> async with AsyncClient() as client:
    ...     result = await client.embed(["a red bicycle", Image("bike.jpg")])

    httpx's async connections belong to the event loop that opened them, so the
    client keeps a connection pool (and its ``max_concurrency`` permits) per
    running loop, made on first use there and closed when that loop is shut
    down by ``asyncio.run``; one client therefore serves every loop it is used
    from, one after another or at once. An ``http_client`` passed in is used
    on whichever loop the caller awaits it from, and never closed here.
    """

    def _connect(self, http_client: httpx.AsyncClient | None) -> None:
        self._given_http = http_client
        self._sleep: Callable[[float], Any] = asyncio.sleep
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = (
            weakref.WeakKeyDictionary()
        )
        self._pools_lock = threading.Lock()

    @overload
    async def embed(
        self,
        parts: Iterable[Part],
        *,
        resume: PartialResult | None = None,
        progress: ProgressCallback | None = None,
        on_invalid: Literal["raise"] = "raise",
    ) -> EmbedResult: ...

    @overload
    async def embed(
        self,
        parts: Iterable[Part],
        *,
        resume: PartialResult | None = None,
        progress: ProgressCallback | None = None,
        on_invalid: Literal["skip"],
    ) -> PartialResult: ...

    async def embed(
        self,
        parts: Iterable[Part],
        *,
        resume: PartialResult | None = None,
        progress: ProgressCallback | None = None,
        on_invalid: OnInvalid = "raise",
    ) -> EmbedResult | PartialResult:
        """Embed each part into one vector, returned in input order; see :meth:`Client.embed`."""
        return await self._run(parts, resume, progress, on_invalid, None)

    async def _run(
        self,
        parts: Iterable[Part],
        resume: PartialResult | None,
        progress: ProgressCallback | None,
        on_invalid: OnInvalid,
        instruct: str | None,
    ) -> EmbedResult | PartialResult:
        if self.cache is None:
            started = self._start(parts, resume, progress, on_invalid, instruct)
        else:  # hashing the content and reading the cache must not block the event loop
            started = await asyncio.to_thread(
                self._start, parts, resume, progress, on_invalid, instruct
            )
        try:
            workers = started.workers(self.max_concurrency)
            if workers:
                pool = await self._pool()

                async def send(body: bytes) -> httpx.Response:
                    return await apost(
                        pool.http,
                        self._url,
                        self._attempt_seconds,
                        content=body,
                        headers=self._headers,
                        timeout=self.timeout,
                    )

                await run_on_tasks(
                    started.call, pool.permits, send, self._sleep, workers, self._pacing
                )
        finally:
            started.bar.close()
        return self._finish(started)

    async def embed_texts(self, texts: Iterable[str], **options: Any) -> EmbedResult:
        """Embed strings as text, one vector each (``options`` as for :meth:`embed`)."""
        return _full(await self.embed(self._texts(texts), **options))

    async def embed_query(self, text: str, *, instruct: str | None = None) -> Vector:
        """Embed one search query into one vector; see :meth:`Client.embed_query`."""
        parts, chosen = self._query(text, instruct)
        return _full(await self._run(parts, None, None, "raise", chosen)).vectors[0]

    async def embed_images(
        self, images: Iterable[Image | ImageSource], **options: Any
    ) -> EmbedResult:
        """Embed images given as :class:`Image` or anything ``Image`` takes (paths, URLs, bytes)."""
        return _full(await self.embed(self._images(images), **options))

    async def embed_videos(self, videos: Iterable[Video | str], **options: Any) -> EmbedResult:
        """Embed videos given as :class:`Video` or URLs."""
        return _full(await self.embed(self._videos(videos), **options))

    async def _pool(self) -> _LoopPool:
        """The running loop's connections and permits, made on first use."""
        loop = asyncio.get_running_loop()
        with self._pools_lock:
            pool = self._pools.get(loop)
            if pool is not None and not pool.http.is_closed:
                return pool
            if self._given_http is not None and self._given_http.is_closed:
                raise ConfigurationError(
                    "the http_client given to this client has been closed; pass an open one, "
                    "or none and let the client open its own"
                )
            http = self._given_http or httpx.AsyncClient(
                timeout=self.timeout, limits=self._http_limits
            )
            pool = self._pools[loop] = _LoopPool(http, AsyncPermits(self.max_concurrency))
        if self._given_http is None:
            # Started on this loop, the generator is finalised by loop.shutdown_asyncgens(),
            # which asyncio.run() calls before closing the loop: the connections close in time.
            pool.closer = _close_when_done(http)
            await pool.closer.asend(None)
        return pool

    async def aclose(self) -> None:
        """Close the connections this client opened on the running loop (never an
        ``http_client`` passed in); those of loops that are not running, with :meth:`close`."""
        loop = asyncio.get_running_loop()
        with self._pools_lock:
            pool = self._pools.get(loop)
            if pool is not None and pool.closer is not None:
                del self._pools[loop]
        if pool is not None and pool.closer is not None:
            await pool.closer.aclose()

    def close(self) -> None:
        """From sync code: close the connections opened on event loops that are not running
        (such as one a framework keeps open after running a coroutine on it)."""
        with self._pools_lock:
            idle = [(loop, pool) for loop, pool in self._pools.items() if not loop.is_running()]
            for loop, _ in idle:
                del self._pools[loop]
        for loop, pool in idle:
            # A closed loop can run nothing more: its connections went with it.
            if pool.closer is not None and not loop.is_closed():
                loop.run_until_complete(pool.closer.aclose())

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class ClientPair:
    """What an object holding a :class:`Client` (``_client``) and its async twin
    (``_async_client``) does with them: sum their usage and close them; the adapters are
    such objects. It declares no attributes, so it mixes into pydantic models."""

    if TYPE_CHECKING:
        _client: Client
        _async_client: AsyncClient

    @property
    def usage(self) -> Usage:
        """Tokens, requests and cost summed over every call this object has made."""
        return self._client.usage + self._async_client.usage

    def close(self) -> None:
        """Close the connections this object opened (not an ``http_client`` passed in), with
        those of event loops that are not running (such as the one a framework keeps after
        running a coroutine); from inside a running loop, use :meth:`aclose`."""
        self._client.close()
        self._async_client.close()

    async def aclose(self) -> None:
        """Close the sync connections and those of the running event loop."""
        self._client.close()
        await self._async_client.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def _close_when_done(http: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await http.aclose()
