"""The shared cache on a real Redis (the production setting, `REDIS_URL`): Django's cache
API through `portal.cache.PortalRedisCache`, with one Redis client reused per pool."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest
from django.core.cache.backends.redis import RedisCacheClient

from portal.cache import PortalRedisCache

# Database 15 of the machine's Redis (CI has one on 127.0.0.1:6379); REDIS_TEST_URL to move it.
REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def cache():
    parts = urlsplit(REDIS_URL)
    try:
        socket.create_connection((parts.hostname, parts.port or 6379), timeout=2).close()
    except OSError as error:
        pytest.fail(
            f"Redis is not running at {REDIS_URL} ({error}); start it "
            "(`redis-server --daemonize yes`) or point REDIS_TEST_URL at one."
        )
    backend = PortalRedisCache(REDIS_URL, {"KEY_PREFIX": "portal-test-cache"})
    backend.clear()
    yield backend
    backend.clear()


def test_the_cache_api_works_on_redis(cache):
    assert cache.get("missing") is None
    cache.set("rows", {"html": "<tr></tr>", "n": 3}, 30)
    assert cache.get("rows") == {"html": "<tr></tr>", "n": 3}
    assert cache.add("rows", "other") is False
    assert cache.add("counter", 1) is True
    assert cache.incr("counter") == 2
    assert cache.get_many(["rows", "missing"]) == {"rows": {"html": "<tr></tr>", "n": 3}}
    cache.delete("rows")
    assert cache.get("rows") is None


def test_one_client_is_made_per_pool_and_reused(cache, monkeypatch):
    made = []
    original = RedisCacheClient.get_client

    def counting(self, key=None, *, write=False):
        made.append(write)
        return original(self, key, write=write)

    monkeypatch.setattr(RedisCacheClient, "get_client", counting)
    cache = PortalRedisCache(REDIS_URL, {"KEY_PREFIX": "portal-test-cache"})  # a new one
    for n in range(20):
        cache.set(f"k{n}", n)
        assert cache.get(f"k{n}") == n
    # Django's client would make 40 clients; one pool (one server) here: one client.
    assert len(made) == 1
