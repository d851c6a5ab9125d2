"""The callable class behind ``embed_dataset``, driven with batches of the three formats
``map_batches`` hands it, its client wired to the scripted fake service (no Ray runs, no
socket opens): vectors in row order as ``fixed_size_list<float32>``, refused rows skipped
with the reason in ``error`` or failing the batch, the usage of each call, and the checks
``embed_dataset`` makes on the driver before any actor starts."""

from __future__ import annotations

import importlib
import inspect
import json
import pickle
from typing import Any

import httpx
import numpy as np
import pytest

from tests._core_fakes import KEY, FakeService, png_bytes, text_vector
from tongyi_vision import ConfigurationError, CorruptMediaError, InputError, RateLimit
from tongyi_vision.ray import TongyiVisionEmbedder
from tongyi_vision.ray._batches import vector_array, with_columns
from tongyi_vision.ray._embedder import (
    HiddenKey,
    _pool_size,
    actor_cpus,
    check_client_options,
    describe_error,
)

# By name: pyarrow and pandas ship no type hints.
pa: Any = importlib.import_module("pyarrow")
pd: Any = importlib.import_module("pandas")


TEXTS = ["a red bicycle", "a blue door", "a green field"]


def embedder(service: FakeService, **options: Any) -> TongyiVisionEmbedder:
    http = httpx.Client(transport=httpx.MockTransport(service))
    options.setdefault("column", "item")
    return TongyiVisionEmbedder(api_key=KEY, http_client=http, **options)


def as_float32(vector: list[float]) -> list[float]:
    return [float(x) for x in np.asarray(vector, dtype=np.float32)]


def test_a_numpy_batch_comes_back_with_its_vectors_in_row_order(service: FakeService) -> None:
    batch = {"item": np.array(TEXTS, dtype=object), "n": np.arange(3)}
    out = embedder(service)(batch)
    assert set(out) == {"item", "n", "vector"}
    assert out["n"] is batch["n"]  # the other columns pass through untouched
    vectors = out["vector"]
    assert vectors.type == pa.list_(pa.float32(), 768)
    assert vectors.to_pylist() == [as_float32(text_vector(t)) for t in TEXTS]


def test_pyarrow_and_pandas_batches_come_back_in_their_own_format(service: FakeService) -> None:
    table = pa.table({"item": TEXTS})
    out = embedder(service)(table)
    assert isinstance(out, pa.Table) and out.column_names == ["item", "vector"]
    assert out.column("vector").type == pa.list_(pa.float32(), 768)
    frame = pd.DataFrame({"item": TEXTS})
    done = embedder(service)(frame)
    assert isinstance(done, pd.DataFrame)
    assert pa.Table.from_pandas(done).column("vector").type == pa.list_(pa.float32(), 768)
    assert list(done["vector"][1]) == as_float32(text_vector(TEXTS[1]))


def test_skip_gives_refused_rows_a_null_vector_and_the_reason(service: FakeService) -> None:
    corrupt = png_bytes()[:40]  # a PNG cut short: refused by the client's checks
    batch = {"item": np.array([TEXTS[0], corrupt, None, png_bytes()], dtype=object)}
    out = embedder(service, on_error="skip")(batch)
    vectors = out["vector"].to_pylist()
    errors = out["error"].to_pylist()
    assert vectors[0] == as_float32(text_vector(TEXTS[0]))
    assert vectors[1] is None and vectors[2] is None and vectors[3] is not None
    assert errors[0] is None and errors[3] is None
    assert errors[1].startswith("CorruptMediaError: <40 bytes>:")
    assert errors[2].startswith("EmptyInputError:") and "no value" in errors[2]
    assert len(service.succeeded()) == 2  # only the good rows were sent


def test_raise_fails_the_batch_at_the_first_refused_row_without_a_call_position(
    service: FakeService,
) -> None:
    batch = {"item": np.array([TEXTS[0], png_bytes()[:40]], dtype=object)}
    with pytest.raises(CorruptMediaError) as raised:
        embedder(service)(batch)
    assert raised.value.part_index is None and not str(raised.value).startswith("part ")
    with pytest.raises(InputError, match=r"no column 'missing'.*'item'"):
        embedder(service, column="missing")(batch)


def test_a_kind_column_says_how_each_row_is_read(service: FakeService, tmp_path: Any) -> None:
    looks_like_a_path = str(tmp_path / "photo.png")  # a text that names a missing file
    batch = {
        "item": np.array([looks_like_a_path, png_bytes()], dtype=object),
        "kind": np.array(["text", "image"], dtype=object),
    }
    out = embedder(service, kind_column="kind")(batch)
    assert out["vector"].to_pylist()[0] == as_float32(text_vector(looks_like_a_path))
    assert out["vector"].null_count == 0
    bad = {"item": np.array(["x"], dtype=object), "kind": np.array(["audio"], dtype=object)}
    with pytest.raises(InputError, match="the row's kind"):
        embedder(service, kind_column="kind")(bad)


def test_a_kind_that_is_not_one_is_refused_when_the_embedder_is_made(
    service: FakeService,
) -> None:
    with pytest.raises(ConfigurationError, match="kind must be"):
        embedder(service, kind="audio")
    with pytest.raises(ConfigurationError, match="on_error must be"):
        embedder(service, on_error="ignore")


def test_the_usage_column_holds_each_calls_usage_once(service: FakeService) -> None:
    out = embedder(service, usage_column="usage")({"item": np.array(TEXTS, dtype=object)})
    records = out["usage"].to_pylist()
    assert records[1:] == [None, None]
    usage = json.loads(records[0])
    assert usage["requests"] == 1 and usage["total_tokens"] == 30


def test_vector_array_is_fixed_size_float32_with_nulls_where_rows_have_none() -> None:
    array = vector_array([[1.0, 2.0], None, [3.0, 4.0]], None)
    assert array.type == pa.list_(pa.float32(), 2)
    assert array.to_pylist() == [[1.0, 2.0], None, [3.0, 4.0]]
    assert vector_array([None, None], 768).type == pa.list_(pa.float32(), 768)
    assert vector_array([None], None).type == pa.list_(pa.float32())  # no size to tell
    with pytest.raises(ValueError, match="3 numbers, not 2"):
        vector_array([[1.0, 2.0], [1.0, 2.0, 3.0]], 2)


def test_with_columns_replaces_a_column_of_the_same_name() -> None:
    table = pa.table({"item": ["a"], "vector": [[0.0]]})
    replaced = with_columns(table, {"vector": vector_array([[1.0, 2.0]], 2)})
    assert replaced.column_names == ["item", "vector"]
    assert replaced.column("vector").to_pylist() == [[1.0, 2.0]]


def test_options_are_checked_on_the_driver_before_any_actor_starts() -> None:
    check_client_options({"model": "tongyi-embedding-vision-flash", "max_concurrency": 4})
    check_client_options({"cache": "redis://cache.invalid:6379/0"})  # opened on the workers
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        check_client_options({"max_concurrency": 0})
    with pytest.raises(ConfigurationError, match="unexpected keyword argument 'colour'"):
        check_client_options({"colour": "red"})
    with pytest.raises(ConfigurationError, match="rate_limit"):
        check_client_options({"rate_limit": 600})
    check_client_options({"rate_limit": RateLimit(requests_per_minute=600)})


def test_pool_sizes_and_the_cpus_each_actor_holds() -> None:
    assert _pool_size(3) == {"size": 3}
    assert _pool_size((1, 4)) == {"min_size": 1, "max_size": 4}
    for bad in (0, True, (3, 1), (1, 2, 3), "2"):
        with pytest.raises(ConfigurationError, match="concurrency"):
            _pool_size(bad)

    class Cluster:
        def __init__(self, cpus: float) -> None:
            self.cpus = cpus

        def cluster_resources(self) -> dict[str, float]:
            return {"CPU": self.cpus}

    assert actor_cpus(Cluster(16), {"size": 4}, None) == 1.0
    assert actor_cpus(Cluster(2), {"size": 2}, None) == 0.5  # one CPU left for the reads
    assert actor_cpus(Cluster(1), {"size": 2}, None) == 0.1
    assert actor_cpus(Cluster(2), {"min_size": 1, "max_size": 4}, None) == 0.25
    assert actor_cpus(Cluster(2), {"size": 2}, 2) == 2.0
    with pytest.raises(ConfigurationError, match="num_cpus"):
        actor_cpus(Cluster(2), {"size": 2}, -1)


def test_a_key_on_its_way_to_the_actors_is_never_shown() -> None:
    key = HiddenKey(KEY)
    assert KEY not in repr(key) and KEY not in str({"api_key": key})
    assert pickle.loads(pickle.dumps(key)).get() == KEY  # the actors need it
    service = FakeService()
    http = httpx.Client(transport=httpx.MockTransport(service))
    made = TongyiVisionEmbedder(column="item", api_key=key, http_client=http)
    made({"item": np.array(["x"], dtype=object)})
    assert service.seen[0].request.headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(made)


def test_describe_error_names_the_type_the_part_and_the_reason() -> None:
    error = CorruptMediaError("cannot be decoded", part="'a.png'").at(3)
    assert describe_error(error) == "CorruptMediaError: 'a.png': cannot be decoded"
    assert describe_error(ValueError("odd")) == "ValueError: odd"


def test_ray_names_show_where_users_import_them_from() -> None:
    import tongyi_vision.ray as package

    for name in package.__all__:
        value = getattr(package, name)
        if isinstance(value, type) or inspect.isfunction(value):
            assert value.__module__ == "tongyi_vision.ray", name
            assert inspect.getdoc(value), name
