"""Video parts: strategies, frame sampling, clips, media fragments and typed errors.

Videos are generated with PyAV into a temporary folder once per session.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._video_media import (
    BLUE,
    RED,
    anamorphic,
    audio_only,
    garbage_after_header,
    near,
    pixel,
    sample,
    truncated,
)
from tongyi_vision import (
    Client,
    CorruptMediaError,
    EmptyInputError,
    InputError,
    MediaNotFoundError,
    MediaTooLargeError,
    MissingDependencyError,
    UnsupportedMediaError,
    Video,
    clip_bounds,
    iter_clips,
    media_part,
    probe_video,
)
from tongyi_vision.media.decoding import sample_frames
from tongyi_vision.media.sources import parse_time_fragment
from tongyi_vision.wire.limits import MAX_IMAGE_BYTES, MAX_VIDEO_BYTES

KEY = "sk-test-video"


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("video")


@pytest.fixture(scope="session")
def video(media: Path) -> Path:
    """25 s, 320x240, 5 fps: red 0-10 s, checkerboard 10-20 s, blue 20-25 s."""
    return sample(media)


@pytest.fixture(scope="session")
def hd_video(media: Path) -> Path:
    return sample(media, "hd.mp4", seconds=2.0, size=(1600, 900), fps=5)


def jpegs(content: dict[str, Any]) -> list[bytes]:
    uris = content["multi_images"]
    assert all(u.startswith("data:image/jpeg;base64,") for u in uris)
    return [base64.b64decode(u.split(",", 1)[1]) for u in uris]


# --- probing and clips ---


def test_probe_reads_duration_size_and_container(video: Path) -> None:
    info = probe_video(video)
    assert info.duration == pytest.approx(25.0, abs=0.01)
    assert (info.width, info.height) == (320, 240)
    assert info.fps == pytest.approx(5.0)
    assert (info.format, info.mime_type) == ("mp4", "video/mp4")


def test_clip_bounds_of_a_25_second_video() -> None:
    assert clip_bounds(25.0, 10.0) == [(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)]
    assert clip_bounds(30.0, 10.0) == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]
    assert clip_bounds(7.5, 2.5) == [(0.0, 2.5), (2.5, 5.0), (5.0, 7.5)]
    assert clip_bounds(4.0, 10.0) == [(0.0, 4.0)]


def test_a_tail_under_a_second_joins_the_clip_before_it() -> None:
    assert clip_bounds(20.4, 10.0) == [(0.0, 10.0), (10.0, 20.4)]
    assert clip_bounds(21.0, 10.0) == [(0.0, 10.0), (10.0, 20.0), (20.0, 21.0)]


@pytest.mark.parametrize("seconds", [0, -1.0, float("nan"), float("inf")])
def test_clip_length_must_be_positive(seconds: float) -> None:
    with pytest.raises(InputError, match="clip_seconds"):
        clip_bounds(25.0, seconds)


def test_iter_clips_yields_ranges_uris_and_parts(video: Path) -> None:
    clips = list(iter_clips(video, clip_seconds=10.0))
    assert [(c.index, c.start_seconds, c.end_seconds) for c in clips] == [
        (0, 0.0, 10.0),
        (1, 10.0, 20.0),
        (2, 20.0, 25.0),
    ]
    assert all(c.duration == pytest.approx(25.0, abs=0.01) for c in clips)
    assert all(c.mime_type == "video/mp4" for c in clips)
    assert clips[1].uri == video.resolve().as_uri() + "#t=10,20"
    part = clips[1].part()
    assert (part.start, part.end, part.resolved_strategy()) == (10.0, 20.0, "frames")
    # The URI and the part stand for the same thing: a call sends it once.
    from_uri = media_part(clips[1].uri)
    assert isinstance(from_uri, Video)
    assert from_uri.prepare().key == part.prepare().key


# --- frame sampling ---


def test_eight_frames_spread_over_the_whole_video(video: Path) -> None:
    frames = sample_frames(video)
    times = [f.time for f in frames]
    assert len(frames) == 8
    assert times == sorted(times)
    # One frame from each eighth of the 25 s.
    for i, time in enumerate(times):
        assert i * 25 / 8 <= time <= (i + 1) * 25 / 8


def test_frames_of_a_clip_stay_inside_it_and_show_it(video: Path) -> None:
    frames = sample_frames(video, start=20.0, end=25.0, count=8)
    assert len(frames) == 8
    assert all(20.0 <= f.time <= 25.0 for f in frames)
    assert frames[0].time < 21.0 and frames[-1].time > 24.0
    assert all(near(pixel(f.jpeg), BLUE) for f in frames)
    red = sample_frames(video, start=0.0, end=10.0, count=3)
    assert [round(f.time, 1) for f in red] == [1.6, 5.0, 8.4]
    assert all(near(pixel(f.jpeg), RED) for f in red)


def test_a_clip_shorter_than_its_samples_gives_each_frame_once(video: Path) -> None:
    # 0.6 s at 5 fps holds three frames; eight samples must not repeat them.
    frames = sample_frames(video, start=10.0, end=10.6, count=8)
    times = [f.time for f in frames]
    assert len(times) == len(set(times)) == 3


def test_frames_are_scaled_to_1024_pixels_and_within_the_image_limit(hd_video: Path) -> None:
    from PIL import Image as PILImage

    frames = sample_frames(hd_video, count=4)
    for frame in frames:
        assert len(frame.jpeg) <= MAX_IMAGE_BYTES
        with PILImage.open(io.BytesIO(frame.jpeg)) as image:
            assert image.format == "JPEG"
            assert image.size == (1024, 576) == (frame.width, frame.height)


def test_anamorphic_frames_are_shown_at_their_display_shape(tmp_path: Path) -> None:
    wide = anamorphic(tmp_path / "wide.mp4")
    (frame,) = sample_frames(wide, count=1)
    assert (frame.width, frame.height) == (640, 240)


def test_sampling_is_deterministic(video: Path) -> None:
    first = [f.jpeg for f in sample_frames(video, start=10, end=20)]
    again = [f.jpeg for f in sample_frames(video, start=10, end=20)]
    assert first == again


def test_a_range_outside_the_video_is_refused(video: Path) -> None:
    with pytest.raises(InputError, match="outside the video"):
        sample_frames(video, start=30.0, end=40.0)


# --- the Video part ---


def test_local_file_defaults_to_frames_as_one_multi_images_group(video: Path) -> None:
    part = Video(video)
    assert part.resolved_strategy() == "frames"
    prepared = part.prepare()
    assert (prepared.kind, prepared.images) == ("multi_images", 8)
    content = prepared.load()
    assert list(content) == ["multi_images"]
    assert len(jpegs(content)) == 8


def test_frames_count_against_the_request_image_limit(video: Path) -> None:
    prepared = Video(video, frames=3).prepare()
    assert prepared.images == 3
    assert len(jpegs(prepared.load())) == 3


def test_file_uri_with_a_media_fragment_selects_the_range(video: Path) -> None:
    uri = video.resolve().as_uri() + "#t=20,25"
    part = Video(uri)
    assert (part.start, part.end) == (20.0, 25.0)
    assert all(near(pixel(j), BLUE) for j in jpegs(part.prepare().load()))
    # Explicit arguments win over the fragment.
    assert Video(uri, start=0.0, end=10.0).start == 0.0


def test_media_part_keeps_the_fragment(video: Path) -> None:
    part = media_part(video.resolve().as_uri() + "#t=10,20")
    assert isinstance(part, Video)
    assert (part.source, part.start, part.end) == (video.resolve(), 10.0, 20.0)
    whole = media_part(video.resolve().as_uri())
    assert isinstance(whole, Video)
    assert (whole.start, whole.end) == (None, None)


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("t=10,20", (10.0, 20.0)),
        ("t=npt:2.5,7.5", (2.5, 7.5)),
        ("t=10", (10.0, None)),
        ("t=,20", (None, 20.0)),
        ("t=00:01:30,00:02:00", (90.0, 120.0)),
        ("xywh=0,0,10,10&t=1,2", (1.0, 2.0)),
        ("", (None, None)),
        ("page=2", (None, None)),
    ],
)
def test_time_fragments(fragment: str, expected: tuple[float | None, float | None]) -> None:
    assert parse_time_fragment(fragment) == expected


@pytest.mark.parametrize("fragment", ["t=abc,20", "t=-5,10", "t=1:99:00x"])
def test_invalid_time_fragments_are_refused(fragment: str) -> None:
    with pytest.raises(InputError, match="media fragment"):
        parse_time_fragment(fragment)


def test_bytes_default_to_frames(video: Path) -> None:
    part = Video(video.read_bytes(), start=10, end=20, frames=2)
    assert part.resolved_strategy() == "frames"
    assert len(jpegs(part.prepare().load())) == 2


def test_data_uri_strategy_sends_the_file(video: Path) -> None:
    data = video.read_bytes()
    for part in (Video(video, strategy="data_uri"), Video(data, strategy="data_uri")):
        prepared = part.prepare()
        assert (prepared.kind, prepared.images) == ("video", 0)
        uri = prepared.load()["video"]
        assert uri.startswith("data:video/mp4;base64,")
        assert base64.b64decode(uri.split(",", 1)[1]) == data


def test_data_uri_over_10_mb_is_refused_before_sending(tmp_path: Path, video: Path) -> None:
    big = tmp_path / "big.mp4"
    with big.open("wb") as handle:
        handle.write(video.read_bytes()[:64])
        handle.truncate(MAX_VIDEO_BYTES + 1)
    with pytest.raises(MediaTooLargeError, match="10 MB"):
        Video(big, strategy="data_uri").prepare()
    # By frames the size limit does not apply (it is the service's, for whole videos): this
    # file, only a header and zeros, is refused for not decoding, not for its size.
    with pytest.raises(CorruptMediaError):
        Video(big).prepare()
    uri = "data:video/mp4;base64," + "A" * (MAX_VIDEO_BYTES * 4 // 3 + 8)
    with pytest.raises(MediaTooLargeError):
        Video(uri).prepare()


def test_a_given_data_uri_can_also_be_sampled(video: Path) -> None:
    uri = "data:video/mp4;base64," + base64.b64encode(video.read_bytes()).decode()
    assert Video(uri).prepare().load() == {"video": uri}
    assert len(jpegs(Video(uri, strategy="frames", frames=2).prepare().load())) == 2


def test_url_is_sent_as_it_is() -> None:
    url = "https://example.com/clip.mp4"
    assert Video(url).prepare().load() == {"video": url}


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("https://example.com/a.mp4", {"strategy": "frames"}, "does not apply to a URL"),
        ("https://example.com/a.mp4", {"start": 1.0}, "time range needs strategy='frames'"),
        ("clip.mp4", {"strategy": "url"}, "does not apply to a local file"),
        ("clip.mp4", {"strategy": "data_uri", "end": 5.0}, "time range"),
    ],
)
def test_strategy_must_fit_the_source(
    source: str, options: dict[str, Any], message: str, tmp_path: Path, video: Path
) -> None:
    if not source.startswith("http"):
        source = str(video)
    with pytest.raises(InputError, match=message):
        Video(source, **options).prepare()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"frames": 0}, "between 1 and 8"),
        ({"frames": 9}, "between 1 and 8"),
        ({"start": 10.0, "end": 5.0}, "must be after start"),
        ({"start": -1.0}, "start must be"),
        ({"strategy": "stream"}, "strategy must be one of"),
    ],
)
def test_invalid_options_are_refused_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Video("clip.mp4", **options)


def test_equal_videos_compare_and_hash_equal(video: Path) -> None:
    assert Video(video, start=1.0) == Video(video, start=1.0)
    assert hash(Video(video, start=1.0)) == hash(Video(video, start=1.0))
    assert Video(video, start=1.0) != Video(video, start=2.0)
    assert "start=1.0" in repr(Video(video, start=1.0))


# --- typed errors ---


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFoundError):
        Video(tmp_path / "nope.mp4").prepare()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(EmptyInputError):
        Video(empty).prepare()


def test_unknown_container_is_unsupported_before_decoding(tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video at all, whatever the name says")
    with pytest.raises(UnsupportedMediaError, match="not a video container"):
        Video(notes).prepare()
    with pytest.raises(UnsupportedMediaError):
        list(iter_clips(notes))


def test_a_corrupt_file_is_refused_before_any_request(tmp_path: Path, video: Path) -> None:
    broken = garbage_after_header(video, tmp_path / "broken.mp4")
    # The header looks right; one frame is decoded while the call is checked.
    with pytest.raises(CorruptMediaError, match="corrupt or truncated"):
        Video(broken).prepare()
    with pytest.raises(CorruptMediaError):
        probe_video(broken)


def test_truncated_mp4_is_corrupt(tmp_path: Path, video: Path) -> None:
    # PyAV writes the MP4 index at the end: half a file has none.
    cut = truncated(video, tmp_path / "cut.mp4")
    with pytest.raises(CorruptMediaError):
        list(iter_clips(cut))


def test_truncated_matroska_keeps_the_clips_it_still_holds(tmp_path: Path, media: Path) -> None:
    whole = sample(media, "whole.mkv")
    cut = truncated(whole, tmp_path / "cut.mkv", fraction=0.3)
    clips = list(iter_clips(cut))
    assert len(clips) == 3  # the header still says 25 s
    assert len(jpegs(clips[0].part().prepare().load())) >= 1
    # The lost clip is refused while the call is checked, before anything is sent.
    with pytest.raises(CorruptMediaError, match="no frame between 20 s and 25 s"):
        clips[2].part().prepare()


def test_a_file_without_video_stream_is_unsupported(tmp_path: Path) -> None:
    sound = audio_only(tmp_path / "sound.mkv")
    with pytest.raises(UnsupportedMediaError, match="no video stream"):
        probe_video(sound)
    with pytest.raises(UnsupportedMediaError, match="no video stream"):
        Video(sound).prepare().load()


def test_missing_video_extra_is_named(monkeypatch: pytest.MonkeyPatch, video: Path) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(MissingDependencyError, match=r"tongyi-vision\[video\]") as caught:
        Video(video).prepare()
    assert caught.value.extra == "video"
    # The data URI strategy needs no decoder.
    Video(video, strategy="data_uri").prepare()


def test_importing_the_package_loads_neither_pyav_nor_pillow() -> None:
    code = "import sys, tongyi_vision; print(sorted(m for m in ('av', 'PIL') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
    # The adapters' video modules do not load PyAV either (LlamaIndex itself loads Pillow).
    code = (
        "import sys, tongyi_vision.langchain, tongyi_vision.llama_index; print('av' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


# --- through the client ---


def test_client_sends_a_clip_as_one_multi_images_content(video: Path) -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        contents = body["input"]["contents"]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(i + 1)] * 768}
            for i in range(len(contents))
        ]
        usage = {"prompt_tokens": 1, "total_tokens": 1}
        return httpx.Response(200, json={"object": "list", "data": data, "usage": usage})

    clips = list(iter_clips(video, clip_seconds=10.0))
    with Client(api_key=KEY, http_client=httpx.Client(transport=httpx.MockTransport(handler))) as c:
        result = c.embed([clip.part() for clip in clips])
    assert len(result.vectors) == 3
    # Eight frames fill a request's image allowance: one clip per request.
    assert len(bodies) == 3
    sent = [body["input"]["contents"] for body in bodies]
    assert all(len(contents) == 1 and len(contents[0]["multi_images"]) == 8 for contents in sent)
    colours = sorted(near(pixel(jpegs(contents[0])[0]), BLUE) for contents in sent)
    assert colours == [False, False, True]


def test_a_seek_that_overshoots_falls_back_to_reading_from_the_start(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tongyi_vision.media import decoding as _clips

    original = _clips._Opened.frames
    seeks: list[float | None] = []

    def overshooting(self: Any, seek_to: float | None) -> Any:
        seeks.append(seek_to)
        frames = original(self, seek_to)
        if seek_to is None:
            return frames
        # Like a file without an index: the seek lands well past where it was asked to.
        return (f for f in frames if f.time > seek_to + 8.0)

    monkeypatch.setattr(_clips._Opened, "frames", overshooting)
    frames = sample_frames(video, start=10.0, end=12.0, count=4)
    assert [round(f.time, 1) for f in frames] == [10.2, 10.8, 11.2, 11.8]
    assert seeks[0] is not None and seeks[-1] is None


def test_a_truncated_file_is_not_read_again_from_the_start(
    tmp_path: Path, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tongyi_vision.media import decoding as _clips

    cut = truncated(sample(media, "whole-again.mkv"), tmp_path / "cut.mkv", fraction=0.3)
    opened: list[object] = []
    original = _clips._Opened.__init__

    def counting(self: Any, *args: Any) -> None:
        opened.append(self)
        original(self, *args)

    monkeypatch.setattr(_clips._Opened, "__init__", counting)
    with pytest.raises(CorruptMediaError):
        sample_frames(cut, start=20.0, end=25.0)
    assert len(opened) == 1
