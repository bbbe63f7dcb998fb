"""Django's Redis cache, with one Redis client per connection pool instead of one per call.

Django's `RedisCacheClient.get_client` makes a new `redis.Redis` object for every cache
operation; each one builds redis-py's table of response callbacks (about 160 entries), which
costs more than a small GET on a local Redis. A `redis.Redis` object is safe to share between
threads (each command takes a connection from the pool), so one per pool is kept and reused.
Set as the cache BACKEND when `REDIS_URL` is set (portal/settings.py).
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class ReusedClientRedisCacheClient(RedisCacheClient):
    """`RedisCacheClient` keeping one client per connection pool."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = super().get_client(key, write=write)
        return client


class PortalRedisCache(RedisCache):
    """Django's `RedisCache` with `ReusedClientRedisCacheClient`."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient
