"""Video decoding: decode, sample and JPEG-encode time per minute of 720p video, and peak
memory against the video's length.

    python benchmarks/video_decode.py            # 1, 2 and 4 minutes of 720p (about 2 minutes)
    python benchmarks/video_decode.py --quick    # 10 and 20 seconds; a smoke run
    python benchmarks/video_decode.py --write    # also rewrite this section of docs/benchmarks.md

What is timed is what an embed call does for each clip of a video: open the
file, seek to the clip, decode up to its end, keep 8 frames spread over it and
JPEG-encode each (long side 1024 px). Each video length is measured in a fresh
process, so its peak resident memory (``ru_maxrss``) belongs to that length
alone. The videos are generated here: 1280x720, 25 fps, H.264 (``ultrafast``,
no B-frames), a smooth random texture panning across the frame, so every frame
moves and the decoder has real work. The longest is written once; the shorter
ones are its first minutes, copied packet by packet. Needs the ``video`` extra
and numpy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from _common import write_section

SECTION = "video-decoding"
HEADING = "Video decoding"
WIDTH, HEIGHT, FPS = 1280, 720, 25
CLIP_SECONDS = 10.0


# --- the videos --------------------------------------------------------------------------------


def write_video(path: Path, seconds: float) -> None:
    """A panning smooth-noise texture, tinted per 10 s segment, as H.264 in MP4."""
    import av
    import numpy as np

    rng = np.random.default_rng(7)
    # Low-frequency noise: random values on a coarse grid, scaled up smoothly.
    from PIL import Image

    coarse = rng.integers(0, 256, size=(HEIGHT // 40 + 2, (WIDTH * 2) // 40 + 2), dtype=np.uint8)
    texture = np.asarray(
        Image.fromarray(coarse).resize((WIDTH * 2 + 80, HEIGHT + 80), Image.Resampling.BICUBIC),
        dtype=np.uint8,
    )
    tints = [(90, 160), (160, 90), (120, 120), (170, 140), (100, 100), (140, 170)]
    half_w, half_h = WIDTH // 2, HEIGHT // 2
    frames = round(seconds * FPS)
    with av.open(str(path), "w") as output:
        stream: Any = output.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "threads": "2"}
        for index in range(frames):
            # Pan 4 px per frame, wrapping: real motion in every frame.
            offset = (index * 4) % WIDTH
            luma = texture[:HEIGHT, offset : offset + WIDTH]
            u_value, v_value = tints[int(index / FPS // CLIP_SECONDS) % len(tints)]
            chroma_u = np.full((half_h, half_w), u_value, dtype=np.uint8)
            chroma_v = np.full((half_h, half_w), v_value, dtype=np.uint8)
            planar = np.concatenate(
                [luma, chroma_u.reshape(-1, WIDTH), chroma_v.reshape(-1, WIDTH)]
            )
            frame = av.VideoFrame.from_ndarray(planar, format="yuv420p")
            frame.pts = index
            frame.time_base = Fraction(1, FPS)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)


def cut_video(source: Path, target: Path, seconds: float) -> None:
    """The first ``seconds`` of ``source``, packets copied without re-encoding."""
    import av

    with av.open(str(source)) as given, av.open(str(target), "w") as output:
        video = given.streams.video[0]
        stream: Any = output.add_stream_from_template(video)
        for packet in given.demux(video):
            if packet.dts is None:
                continue
            if packet.pts is not None and packet.pts * video.time_base >= seconds:
                break
            packet.stream = stream
            output.mux(packet)


# --- one measurement, in its own process -------------------------------------------------------


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def measure(path: Path) -> dict[str, Any]:
    """Sample every clip of ``path`` the way an embed call does; time decoding and encoding."""
    import av  # noqa: F401 - imported before the baseline, as a running application has it
    import PIL.Image  # noqa: F401

    from tongyi_vision.media import decoding as _clips
    from tongyi_vision.media.clips import iter_clips

    encode_seconds = 0.0
    original = _clips._encode_frame

    def timed_encode(*args: Any) -> Any:
        nonlocal encode_seconds
        started = time.perf_counter()
        try:
            return original(*args)
        finally:
            encode_seconds += time.perf_counter() - started

    _clips._encode_frame = timed_encode  # type: ignore[assignment]
    baseline = peak_rss_mib()
    started = time.perf_counter()
    clips = list(iter_clips(path, CLIP_SECONDS))
    probe_seconds = time.perf_counter() - started
    frames = 0
    body_bytes = 0
    started = time.perf_counter()
    for clip in clips:
        sampled = _clips.sample_frames(
            clip.source, start=clip.start_seconds, end=clip.end_seconds, count=clip.frames
        )
        frames += len(sampled)
        body_bytes += sum(len(f.jpeg) for f in sampled)
    clips_seconds = time.perf_counter() - started
    encode_in_clips = encode_seconds
    started = time.perf_counter()
    whole = _clips.sample_frames(path, count=8)
    whole_seconds = time.perf_counter() - started
    return {
        "video_seconds": clips[-1].duration if clips else 0.0,
        "clips": len(clips),
        "frames": frames,
        "probe_seconds": probe_seconds,
        "clips_seconds": clips_seconds,
        "encode_seconds": encode_in_clips,
        "whole_video_seconds": whole_seconds,
        "whole_video_frames": len(whole),
        "jpeg_kib_per_clip": body_bytes / 1024 / max(1, len(clips)),
        "baseline_rss_mib": baseline,
        "peak_rss_mib": peak_rss_mib(),
    }


# --- the report --------------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| video | clips | decode + sample + encode, all clips | per minute of video "
        "| of which JPEG encoding | 8 frames over the whole video | JPEG per clip "
        "| peak RSS (baseline after imports) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        minutes = row["video_seconds"] / 60
        lines.append(
            f"| {row['video_seconds']:.0f} s | {row['clips']} | {row['clips_seconds']:.1f} s "
            f"| {row['clips_seconds'] / minutes:.1f} s "
            f"| {row['encode_seconds'] / minutes:.2f} s "
            f"| {row['whole_video_seconds']:.2f} s | {row['jpeg_kib_per_clip']:.0f} KiB "
            f"| {row['peak_rss_mib']:.0f} MiB ({row['baseline_rss_mib']:.0f} MiB) |"
        )
    return "\n".join(lines)


def report(rows: list[dict[str, Any]], command: str, generate_seconds: float) -> str:
    import av

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    growth = rows[-1]["peak_rss_mib"] - rows[0]["peak_rss_mib"]
    span = rows[-1]["video_seconds"] / rows[0]["video_seconds"]
    return "\n".join(
        [
            f"## {HEADING}",
            "",
            "```",
            command,
            "```",
            "",
            f"- {now}; {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, PyAV {av.__version__} "
            f"(FFmpeg {av.ffmpeg_version_info}); decoder threads: auto",
            f"- input: {WIDTH}x{HEIGHT}, {FPS} fps, H.264, a panning texture (generated in "
            f"{generate_seconds:.0f} s); clips of {CLIP_SECONDS:.0f} s, 8 frames each, JPEG "
            "quality 85, long side 1024 px",
            "- each row is a fresh process: its peak RSS is that video's alone; load average "
            f"at the end of the run: {os.getloadavg()[0]:.1f} (other work on the machine slows "
            "every figure alike)",
            "",
            table(rows),
            "",
            f"- memory: {span:.0f}x the video length changes peak RSS by {growth:+.0f} MiB; "
            "decoding streams (one clip at a time, only the kept frames converted), so the "
            "peak is the decoder's working set plus 8 JPEGs, whatever the length",
            "- time grows with length, roughly linearly: every frame of a clip is decoded to "
            "reach the 8 kept ones (H.264 frames depend on the ones before); sampling 8 frames "
            "over a whole video instead seeks from keyframe to keyframe and decodes a small part",
            "- synthetic footage, encoded for speed: camera video with more detail, B-frames and "
            "CABAC decodes slower, so read the decode share as a floor; the figures compare "
            "lengths within one run on a shared machine and are not asserted anywhere",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 and 20 s videos; a smoke run")
    parser.add_argument("--write", action="store_true", help="rewrite this section of the doc")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    lengths = [10.0, 20.0] if args.quick else [60.0, 120.0, 240.0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tongyi-video-bench-") as scratch:
        folder = Path(scratch)
        longest = folder / f"{lengths[-1]:.0f}s.mp4"
        started = time.perf_counter()
        write_video(longest, lengths[-1])
        generate_seconds = time.perf_counter() - started
        for seconds in lengths[:-1]:
            cut_video(longest, folder / f"{seconds:.0f}s.mp4", seconds)
        for seconds in lengths:
            path = folder / f"{seconds:.0f}s.mp4"
            done = subprocess.run(
                [sys.executable, __file__, "--measure", str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(done.stdout)
            rows.append(row)
            print(
                f"{seconds:.0f} s: {row['clips']} clips in {row['clips_seconds']:.1f} s, "
                f"peak RSS {row['peak_rss_mib']:.0f} MiB",
                file=sys.stderr,
                flush=True,
            )
    command = "python benchmarks/video_decode.py" + (" --quick" if args.quick else "")
    body = report(rows, command, generate_seconds)
    print(body)
    if args.write and not args.quick:
        write_section(SECTION, "benchmarks/video_decode.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
