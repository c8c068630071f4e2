"""The Redis channel layer with a pool that waits for a free connection instead of failing.

channels_redis 4.3 builds ``redis.asyncio.ConnectionPool`` itself (no setting picks another
pool class), and redis-py 8's pool raises ``MaxConnectionsError`` once ``max_connections`` are
in use: a burst of WebSocket connects (a ``group_add`` each) crashed consumers and daphne
answered 403. Here a burst queues for a connection (up to ``pool_timeout`` seconds) instead.
"""

from __future__ import annotations

from typing import Any

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool


class BlockingRedisChannelLayer(RedisChannelLayer):  # type: ignore[misc]
    def create_pool(self, index: int) -> BlockingConnectionPool:
        host: dict[str, Any] = dict(self.hosts[index])
        address = str(host.pop("address"))
        timeout = float(host.pop("pool_timeout", 20))
        return BlockingConnectionPool.from_url(address, timeout=timeout, **host)
