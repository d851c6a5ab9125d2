"""The rate limit reaches the client from every surface: both adapters (kept out of their
serialized form, shared by their copies, as the cache is) and the CLI's --rpm and --tpm."""

from __future__ import annotations

import copy
import json

import pytest

from tongyi_vision import ConfigurationError, RateLimit
from tongyi_vision.cli import app, common

KEY = "sk-test-rate-limit-surfaces"


def test_langchain_embeddings_hand_their_limit_to_the_client_and_share_it() -> None:
    from tongyi_vision.langchain import TongyiVisionEmbeddings

    limit = RateLimit(requests_per_minute=120, tokens_per_minute=50_000)
    embeddings = TongyiVisionEmbeddings(api_key=KEY, rate_limit=limit, max_rate_limit_wait=42)
    assert embeddings._client.rate_limit is limit
    assert embeddings._async_client.rate_limit is limit
    assert embeddings._client._policy.max_rate_limit_wait == 42
    twin = copy.deepcopy(embeddings)
    assert twin.rate_limit is limit and twin._client.rate_limit is limit  # one budget
    dumped = embeddings.model_dump()
    assert "rate_limit" not in dumped and dumped["max_rate_limit_wait"] == 42
    with pytest.raises(ConfigurationError, match=r"rate_limit must be a tongyi_vision\.RateLimit"):
        TongyiVisionEmbeddings(api_key=KEY, rate_limit=600)


def test_llama_index_embedding_hands_its_limit_to_the_client_and_shares_it() -> None:
    from tongyi_vision.llama_index import TongyiVisionEmbedding

    limit = RateLimit(requests_per_minute=90)
    embedding = TongyiVisionEmbedding(api_key=KEY, rate_limit=limit)
    assert embedding.client.rate_limit is limit
    twin = copy.deepcopy(embedding)
    assert twin.rate_limit is limit and twin.client.rate_limit is limit
    serialized = embedding.to_dict()
    assert "rate_limit" not in serialized and KEY not in json.dumps(serialized)


def test_the_cli_builds_one_limit_from_rpm_and_tpm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", KEY)
    parser = app.build_parser()
    args = parser.parse_args(["embed", "photos", "--out", "x.index", "--rpm", "300"])
    limit = common.rate_limit_of(args)
    assert isinstance(limit, RateLimit)
    assert (limit.requests_per_minute, limit.tokens_per_minute) == (300, None)
    with common.make_client(args) as client:
        assert isinstance(client.rate_limit, RateLimit)
        assert client.rate_limit.requests_per_minute == 300
    both = parser.parse_args(["search", "x.index", "q", "--rpm", "60", "--tpm", "90000"])
    limit = common.rate_limit_of(both)
    assert limit is not None and limit.tokens_per_minute == 90000
    none = parser.parse_args(["search", "x.index", "q"])
    assert common.rate_limit_of(none) is None
