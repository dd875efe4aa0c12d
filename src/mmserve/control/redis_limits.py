"""Rate-limit windows in Redis: every gateway admits against the same per-key counts.

One Lua script per step keeps it atomic (two gateways admitting the last request of a
window at once: exactly one wins) and uses Redis's clock, so that gateways whose clocks
differ still share one window. Requests are a sorted set of admission times; tokens a
sorted set of ``"<n>:<nonce>"`` members scored by charge time. Both expire with the window.

If Redis cannot be reached, admission fails open (the request is served, a warning logged):
limits protect capacity and budgets, and a Redis outage should not take every gateway down.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

from mmserve.control.ratelimit import WINDOW_S, Limits, WindowState, headers, refuse
from mmserve.control.redis_state import RedisState

log = logging.getLogger("mmserve.ratelimit")

# KEYS: requests zset, tokens zset. ARGV: rpm (-1: none), tpm (-1: none), window ms, nonce.
# Returns {verdict (0 ok, 1 requests, 2 tokens), requests, requests reset ms, tokens, tokens reset ms, retry ms}.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, tpm, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local edge = now - window
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', edge)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', edge)
local count = redis.call('ZCARD', KEYS[1])
local charged = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local sum = 0
for i = 1, #charged, 2 do sum = sum + tonumber(string.match(charged[i], '^(%d+):')) end
local function reset(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first == 0 then return 0 end
  return tonumber(first[2]) + window - now
end
if rpm >= 0 and count >= rpm then
  local retry = window
  if count > 0 then retry = reset(KEYS[1]) end
  return {1, count, reset(KEYS[1]), sum, reset(KEYS[2]), retry}
end
if tpm >= 0 and sum >= tpm then
  local excess, retry = sum - tpm + 1, window
  for i = 1, #charged, 2 do
    excess = excess - tonumber(string.match(charged[i], '^(%d+):'))
    if excess <= 0 then retry = tonumber(charged[i + 1]) + window - now; break end
  end
  return {2, count, reset(KEYS[1]), sum, reset(KEYS[2]), retry}
end
redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return {0, count + 1, reset(KEYS[1]), sum, reset(KEYS[2]), 0}
"""

# KEYS: tokens zset. ARGV: tokens, window ms, nonce.
CHARGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1] .. ':' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

WARN_EVERY_S = 10.0


class RedisRateLimiter:
    def __init__(self, state: RedisState) -> None:
        self.state = state
        self._admit: Any = state.client.register_script(ADMIT)
        self._charge: Any = state.client.register_script(CHARGE)
        self._pending: set[asyncio.Task[None]] = set()
        self._warned = 0.0

    def _keys(self, key_id: str) -> list[str]:
        return [self.state.key("rl", key_id, "req"), self.state.key("rl", key_id, "tok")]

    async def admit(self, key_id: str, limits: Limits) -> dict[str, str]:
        if limits.requests_per_min is None and limits.tokens_per_min is None:
            return {}
        rpm = -1 if limits.requests_per_min is None else limits.requests_per_min
        tpm = -1 if limits.tokens_per_min is None else limits.tokens_per_min
        args = [rpm, tpm, int(WINDOW_S * 1000), secrets.token_hex(6)]
        try:
            verdict, requests, req_reset, tokens, tok_reset, retry = await self._admit(self._keys(key_id), args)
        except Exception as e:  # fail open: see the module's docstring
            self._warn(f"rate limiting is off while Redis is unreachable ({type(e).__name__}: {e})")
            return {}
        state = WindowState(int(requests), int(req_reset) / 1000, int(tokens), int(tok_reset) / 1000)
        if verdict == 1:
            raise refuse("requests", int(retry) / 1000, limits, state)
        if verdict == 2:
            raise refuse("tokens", int(retry) / 1000, limits, state)
        return headers(limits, state)

    def charge(self, key_id: str, tokens: int) -> None:
        """Charged in the background: the request that used the tokens is already answered."""
        if tokens <= 0:
            return
        task = asyncio.get_running_loop().create_task(self._charge_now(key_id, tokens))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _charge_now(self, key_id: str, tokens: int) -> None:
        try:
            await self._charge([self._keys(key_id)[1]], [tokens, int(WINDOW_S * 1000), secrets.token_hex(6)])
        except Exception as e:
            self._warn(f"could not charge {tokens} tokens to {key_id} in Redis ({type(e).__name__}: {e})")

    async def drain(self) -> None:
        """Wait for charges still in flight (at shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_S:
            self._warned = now
            log.warning(message)
