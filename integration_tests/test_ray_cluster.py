"""Ray Data jobs on a local cluster (2 CPUs, on 127.0.0.1) against real emulator processes:
two actors under one shared budget, mixed texts, images and clips (as strings, bytes read by
``read_binary_files`` and pictures decoded by ``read_images``), refused rows skipped, a job
killed midway and resumed from a Redis cache, the index written by ``write_index`` and read by
``tongyi-vision search``, and ``tongyi-vision embed --ray``.

The emulator's ``/stats`` counters are the ground truth of what was sent and billed; every
vector is compared with what :class:`~tongyi_vision.Client` gives for the same input.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from integration_tests._redis import redis_url  # noqa: F401  (a fixture)
from integration_tests.test_cli import command_env, count, items
from tongyi_vision import Client, Image, Video
from tongyi_vision.engine.cache import as_float32
from tongyi_vision.index import IndexTable
from tongyi_vision.ray import SharedRateLimit
from tongyi_vision.samples import generate_sample_video, write_sample_images, write_sample_texts

if TYPE_CHECKING:
    from integration_tests.conftest import RunningEmulator

# By name, typed as Any: the Ray API is used loosely here. The `all` extra installs it.
ray: Any = importlib.import_module("ray")
pytestmark = [
    # Ray Data warns of its own deprecations (`use_push_based_shuffle`) on first use.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
    # LanceDB, once imported here, warns in each child Ray forks (they exec Ray's programs).
    pytest.mark.filterwarnings("ignore:lancedb fork support:RuntimeWarning"),
]

EMBED = (sys.executable, "-m", "tongyi_vision", "embed", "--no-progress")
RPM = 1800  # 30 a second: a short job with enough requests for a 1% share to mean something
# Bound to loopback (Ray binds every interface otherwise), no usage reports.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray of 2 CPUs for the module; yields its address for other processes."""
    saved = {name: os.environ.get(name) for name in RAY_ENV}
    os.environ.update(RAY_ENV)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=300 * 1024 * 1024,
        log_to_driver=False,
    )
    # No preserve_order here: embed_dataset keeps the input's order by itself.
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def options(server: RunningEmulator, **extra: Any) -> dict[str, Any]:
    """Client options of the actors: the emulator, its key (carried hidden to the actors)."""
    return {"api_key": server.api_key, "base_url": server.base_url, **extra}


def expected_vectors(server: RunningEmulator, parts: list[Any]) -> list[list[float]]:
    """What a plain client gives for ``parts``, as float32 (the dataset's vectors are)."""
    with Client(api_key=server.api_key, base_url=server.base_url) as client:
        return [as_float32(v) for v in client.embed(parts).vectors]


def billed_since(server: RunningEmulator, before: dict[str, int]) -> int:
    return server.stats()["billed_parts"] - before["billed_parts"]


def test_two_actors_share_one_budget_and_every_row_gets_its_own_vector(
    cluster: str, start_emulator: Callable[..., RunningEmulator], emulator: RunningEmulator
) -> None:
    from tongyi_vision.ray import embed_dataset

    texts = [f"caption {i}: a photo of thing number {i}" for i in range(120)]
    server = start_emulator("--rpm", str(RPM), "--latency", "0.02")
    ds = ray.data.from_items([{"i": i, "text": t} for i, t in enumerate(texts)])
    out = embed_dataset(
        ds,
        column="text",
        concurrency=2,
        batch_size=15,
        # 10% headroom: the windows then absorb a stall of this shared 2-core machine of up
        # to 0.1 s that would send requests held back by it to the server together.
        rate_limit=SharedRateLimit(requests_per_minute=RPM, headroom=0.1, name="two-actors"),
        **options(server, max_parts_per_request=1),  # one request per row
    )
    rows = out.take_all()
    stats = server.stats()
    assert [row["i"] for row in rows] == list(range(len(texts)))
    assert [row["vector"] for row in rows] == expected_vectors(emulator, texts)
    assert stats["succeeded"] == stats["billed_parts"] == len(texts)  # each row billed once
    assert stats["throttled"] * 100 < stats["requests"]  # under 1% refused


def test_one_named_actor_holds_the_budget_for_every_process(cluster: str) -> None:
    from tongyi_vision import ConfigurationError

    first = SharedRateLimit(requests_per_minute=60, name="one-budget").connect()
    second = SharedRateLimit(requests_per_minute=60, name="one-budget").connect()
    slots = [first.reserve(1), second.reserve(1), first.reserve(1)]
    owners = (first, second, first)
    waits = [limit.remaining(slot) for limit, slot in zip(owners, slots, strict=True)]
    assert waits[0] == 0 and 0.9 < waits[1] < waits[2] < 2.1  # a slot a second, for both
    with pytest.raises(ConfigurationError, match=r"'one-budget'.*requests_per_minute=60"):
        SharedRateLimit(requests_per_minute=120, name="one-budget").connect()


def test_a_failed_batch_raises_the_clients_own_error(
    cluster: str, emulator: RunningEmulator
) -> None:
    from tongyi_vision import AuthenticationError
    from tongyi_vision.ray import embed_dataset

    ds = ray.data.from_items([{"text": "a red bicycle"}])
    wrong = {**options(emulator), "api_key": "not-the-key"}
    with pytest.raises(AuthenticationError) as raised:
        embed_dataset(ds, column="text", concurrency=1, **wrong).take_all()
    assert "not-the-key" not in str(raised.value)


@pytest.fixture
def media(tmp_path: Path, make_image: Callable[..., bytes]) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "red.png").write_bytes(make_image(1, fmt="PNG"))
    (folder / "blue.jpg").write_bytes(make_image(2))
    (folder / "big.webp").write_bytes(make_image(3, (400, 300), fmt="WEBP"))  # re-encoded
    return folder


def test_mixed_texts_images_and_clips_as_strings(
    cluster: str,
    start_emulator: Callable[..., RunningEmulator],
    emulator: RunningEmulator,
    media: Path,
) -> None:
    from tongyi_vision.ray import embed_dataset

    video = generate_sample_video(media / "talk.mp4", seconds=4, size=(96, 64), fps=4)
    url = emulator.media_url + "red.jpg"
    values = [
        "a red bicycle",
        str(media / "red.png"),
        (media / "blue.jpg").as_uri(),
        str(media / "big.webp"),
        f"{video}#t=0,2",
        url,
        "see blue.jpg for the door",  # text that mentions a file
    ]
    parts = [
        values[0],
        Image(media / "red.png"),
        Image(media / "blue.jpg"),
        Image(media / "big.webp"),
        Video(str(video), start=0, end=2),
        Image(url),
        values[6],
    ]
    server = start_emulator(media_dir=emulator.media_dir)
    out = embed_dataset(
        ray.data.from_items([{"item": v} for v in values]), column="item", **options(server)
    )
    vectors = [row["vector"] for row in out.take_all()]
    assert billed_since(server, {"billed_parts": 0}) == len(values)
    assert vectors == expected_vectors(emulator, parts)


def test_files_read_by_ray_as_bytes_and_pictures_and_a_refused_row_skipped(
    cluster: str,
    start_emulator: Callable[..., RunningEmulator],
    emulator: RunningEmulator,
    media: Path,
    make_image: Callable[..., bytes],
) -> None:
    import numpy as np
    from PIL import Image as PILImage

    from tongyi_vision.ray import embed_dataset

    (media / "broken.jpg").write_bytes(make_image(4)[:400])  # a JPEG cut short
    server = start_emulator()
    read = ray.data.read_binary_files(str(media), include_paths=True)
    rows = embed_dataset(read, column="bytes", on_error="skip", **options(server)).take_all()
    by_path = {Path(row["path"]).name: row for row in rows}
    assert sorted(by_path) == ["big.webp", "blue.jpg", "broken.jpg", "red.png"]
    broken = by_path.pop("broken.jpg")
    assert broken["vector"] is None and broken["error"].startswith("CorruptMediaError")
    names = sorted(by_path)
    expected = expected_vectors(emulator, [Image((media / n).read_bytes()) for n in names])
    assert [by_path[n]["vector"] for n in names] == expected
    assert all(by_path[n]["error"] is None for n in names)
    assert billed_since(server, {"billed_parts": 0}) == 3  # the refused row was never sent

    pictures = [media / "red.png", media / "blue.jpg"]
    decoded = ray.data.read_images([str(p) for p in pictures], include_paths=True)
    out = embed_dataset(decoded, column="image", **options(server)).take_all()
    arrays = [np.asarray(PILImage.open(p).convert("RGB")) for p in pictures]
    by_name = {Path(row["path"]).name: row["vector"] for row in out}
    expected = expected_vectors(emulator, [Image(PILImage.fromarray(a)) for a in arrays])
    assert [by_name[p.name] for p in pictures] == expected


KILLED_JOB = """
import sys
import ray
from tongyi_vision.ray import SharedRateLimit, embed_dataset

address, base_url, api_key, cache = sys.argv[1:5]
texts = [f"row {i}: a photo of thing {i}" for i in range(int(sys.argv[5]))]
ray.init(address=address, log_to_driver=False)
ray.data.DataContext.get_current().enable_progress_bars = False
ds = ray.data.from_items([{"text": t} for t in texts])
out = embed_dataset(
    ds, column="text", concurrency=2, batch_size=4, api_key=api_key, base_url=base_url,
    cache=cache, max_parts_per_request=1,
    rate_limit=SharedRateLimit(requests_per_minute=1200, name="killed-job"),
)
out.take_all()
print("finished", flush=True)
"""


def _settled(server: RunningEmulator, redis: Any, quiet: float = 1.5) -> tuple[int, int]:
    """The emulator's billed parts and the cache's entries, once neither has moved for
    ``quiet`` seconds (the killed job's workers are gone)."""
    last = (-1, -1)
    since = time.monotonic()
    deadline = since + 60
    while time.monotonic() < deadline:
        now = (server.stats()["billed_parts"], int(redis.dbsize()))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
        time.sleep(0.1)
    raise AssertionError(f"the killed job kept going: billed, cached = {last}")


def test_a_job_killed_midway_and_run_again_pays_only_for_the_missing_rows(
    cluster: str,
    start_emulator: Callable[..., RunningEmulator],
    emulator: RunningEmulator,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    import redis as redis_py

    from tongyi_vision.ray import embed_dataset

    total = 60
    texts = [f"row {i}: a photo of thing {i}" for i in range(total)]
    server = start_emulator("--rpm", "1200")  # 20 a second: about 3 s for the whole job
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(KILLED_JOB))
    log = (tmp_path / "job.log").open("w")
    args = [cluster, server.base_url, server.api_key, redis_url, str(total)]
    job = subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **RAY_ENV},
    )
    redis = redis_py.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 60
        while redis.dbsize() < 15 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.poll() is None, (tmp_path / "job.log").read_text()
        job.send_signal(signal.SIGKILL)  # the driver, midway: its actors go with it
        job.wait(10)
        billed, cached = _settled(server, redis)
        assert 15 <= cached < total and billed >= cached
        ds = ray.data.from_items([{"text": t} for t in texts])
        out = embed_dataset(
            ds,
            column="text",
            concurrency=2,
            batch_size=4,
            cache=redis_url,
            rate_limit=SharedRateLimit(requests_per_minute=1200, name="killed-job"),
            **options(server, max_parts_per_request=1),
        )
        vectors = [row["vector"] for row in out.take_all()]
    finally:
        if job.poll() is None:
            job.kill()
        log.close()
        redis.close()
    assert vectors == expected_vectors(emulator, texts)
    assert server.stats()["billed_parts"] - billed == total - cached  # only what was missing


def test_write_index_then_search_it_and_write_again(
    cluster: str, emulator: RunningEmulator, tmp_path: Path
) -> None:
    from tongyi_vision.ray import embed_dataset, write_index

    images = write_sample_images(tmp_path / "images", size=96)
    texts = ["A red bicycle leans against a wall.", "Waves roll onto a sandy beach."]
    rows = [{"id": str(p), "kind": "image", "item": str(p)} for p in images]
    rows += [{"id": f"note-{i}", "kind": "text", "item": t} for i, t in enumerate(texts)]
    embedded = embed_dataset(
        ray.data.from_items(rows), column="item", kind_column="kind", **options(emulator)
    ).materialize()  # embedded once, written twice below
    index = tmp_path / "cluster.index"
    first = write_index(embedded, index, content_column="item", metadata_columns=("kind",))
    assert (first.written, first.skipped, first.total) == (len(rows), 0, len(rows))
    table = IndexTable.open(index)
    assert (table.info.model, table.info.dimension) == ("tongyi-embedding-vision-flash", 768)
    red = next(p for p in images if p.name == "red-circle.png")
    row = {r.id: r for r in items(index)}[str(red)]
    assert (row.kind, row.content, row.source) == ("image", red.as_uri(), str(red))

    found = subprocess.run(
        [sys.executable, "-m", "tongyi_vision", "search", str(index), texts[1], "--json"],
        env=command_env(emulator),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["id"] == "note-1"

    again = write_index(embedded, index, content_column="item")  # the same ids: replaced
    assert (again.written, again.total) == (len(rows), len(rows))
    renamed = embedded.map(lambda r: {**r, "id": r["id"] + "-copy"}, num_cpus=0)
    more = write_index(renamed.limit(2), index, content_column="item")
    assert (more.written, more.total) == (2, len(rows) + 2)


def test_cli_embed_on_ray_matches_a_local_run_and_a_rerun_sends_nothing(
    cluster: str, emulator: RunningEmulator, tmp_path: Path
) -> None:
    folder = tmp_path / "media"
    write_sample_images(folder / "images", size=96)
    write_sample_texts(folder / "texts")
    generate_sample_video(folder / "videos" / "talk.mp4", seconds=6, size=(96, 64), fps=4)
    env = command_env(emulator, **RAY_ENV)

    def embed(index: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*EMBED, str(folder), "--out", str(index), "--clip-seconds", "3", *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    local = embed(tmp_path / "local.index")
    assert local.returncode == 0, local.stderr
    before = emulator.stats()
    on_ray = embed(tmp_path / "ray.index", "--ray", cluster)
    assert on_ray.returncode == 0, on_ray.stderr
    total = count(tmp_path / "ray.index")
    assert "embedded 14 items (6 text, 6 image, 2 video)" in on_ray.stdout
    assert billed_since(emulator, before) == total == 14
    assert "usage: " in on_ray.stdout and "0 requests" not in on_ray.stdout
    assert {r.id: r.vector for r in items(tmp_path / "ray.index")} == {
        r.id: r.vector for r in items(tmp_path / "local.index")
    }

    before = emulator.stats()
    rerun = embed(tmp_path / "ray.index", "--ray", cluster)
    assert rerun.returncode == 0, rerun.stderr
    assert "embedded 0 items" in rerun.stdout and "already in" in rerun.stdout
    stats = emulator.stats()
    assert (stats["requests"], stats["billed_parts"]) == (
        before["requests"],
        before["billed_parts"],
    )
