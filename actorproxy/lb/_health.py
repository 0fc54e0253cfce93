"""Health checks: probes that say whether a backend is up, and the bookkeeping that turns probes into health.

Pingora's `health_check` module, names kept; no actors here (a future `HealthCheckerActor` calls these).

Rules:
- A check is one probe of one backend: `await check.check(backend)` returns when the backend is healthy and
  raises when it is not (any `Exception`; `trio.Cancelled` always propagates and is never a verdict).
- `HealthTracker` is pure and synchronous: it never probes, it records verdicts. A backend flips only after
  exactly N consecutive opposite verdicts (`consecutive_success` to become healthy, `consecutive_failure` to
  become unhealthy); a verdict that agrees with the current health resets the streak (Pingora's
  `observe_health`). Backends start healthy, as in Pingora, unless told otherwise.
- `run_checks` probes first and records after, in the order the backends were given, so a parallel round
  and a sequential round over the same outcomes make the same flips in the same order.
- A check that keeps a connection (`HttpHealthCheck(reuse_connection=True)`) keeps at most one per backend
  and drops it on any error; `aclose()` releases what it keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

import attrs
import trio

from actorproxy.config import DEFAULT_HEALTH_CHECK_CONNECT_TIMEOUT, DEFAULT_HEALTH_CHECK_READ_TIMEOUT
from actorproxy.http import (
    ClientSide,
    Codec,
    Error,
    ErrorSource,
    ErrorType,
    RequestHeader,
    ResponseHeader,
    select_codec,
)
from actorproxy.proxy import HttpPeer, PeerOptions, connect_peer

from ._backend import Backend

__all__ = [
    "HealthCheck",
    "HealthTracker",
    "HttpHealthCheck",
    "TcpHealthCheck",
    "run_checks",
]

logger = logging.getLogger("actorproxy.health")


HealthChanged = Callable[[Backend, bool], object]


class HealthCheck(Protocol):
    """One way of probing a backend (Pingora's `HealthCheck` trait).

    Attributes:
        consecutive_success: verdicts in a row needed to turn an unhealthy backend healthy.
        consecutive_failure: verdicts in a row needed to turn a healthy backend unhealthy.
        health_changed: called with (backend, healthy) each time a backend flips; None for nothing.
    """

    consecutive_success: int
    consecutive_failure: int
    health_changed: HealthChanged | None

    async def check(self, backend: Backend) -> None:
        """Return if `backend` is healthy; raise (any `Exception`) if it is not."""
        ...


def _check_threshold(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"{attribute.name}: must be an int >= 1, got {value!r}")


def _check_timeout(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:  # also rejects NaN
        raise ValueError(f"{attribute.name}: must be > 0 seconds, got {value!r}")


def _peer(
    address: object, tls: bool, sni: str, template: PeerOptions | None, connect_timeout: float
) -> HttpPeer:
    # The timeout bounds the TLS handshake too: a backend that accepts and never handshakes is not healthy.
    options = attrs.evolve(
        template or PeerOptions(),
        connection_timeout=connect_timeout,
        total_connection_timeout=connect_timeout,
    )
    return HttpPeer(address, tls, sni, options)


# -- TCP -----------------------------------------------------------------------------------------------------


@attrs.define(kw_only=True)
class TcpHealthCheck:
    """Healthy when a connection opens within `connect_timeout` (Pingora's `TcpHealthCheck`).

    The connection is TCP or a Unix socket, as the backend's address says, with a TLS handshake on top when
    `tls`; it is closed at once.

    Args:
        consecutive_success: see `HealthCheck`.
        consecutive_failure: see `HealthCheck`.
        connect_timeout: seconds to connect; with `tls`, also bounds the handshake (Pingora's 1 s).
        tls: finish a TLS handshake too.
        sni: the TLS server name.
        peer_options: a template for the other connection settings (CA, verify_cert, bind_to...);
            its connection timeouts are replaced by `connect_timeout`.
        health_changed: see `HealthCheck`.
    """

    consecutive_success: int = attrs.field(default=1, validator=_check_threshold)
    consecutive_failure: int = attrs.field(default=1, validator=_check_threshold)
    connect_timeout: float = attrs.field(
        default=DEFAULT_HEALTH_CHECK_CONNECT_TIMEOUT, validator=_check_timeout
    )
    tls: bool = False
    sni: str = ""
    peer_options: PeerOptions | None = None
    health_changed: HealthChanged | None = None

    async def check(self, backend: Backend) -> None:
        """Open and close one connection to `backend`.

        Raises:
            Error: the connect failures of `connect_peer` (CONNECT_REFUSED, CONNECT_TIMEDOUT, TLS errors...).
        """
        peer = _peer(backend, self.tls, self.sni, self.peer_options, self.connect_timeout)
        stream = await connect_peer(peer)
        # Nothing was said on this connection: a TLS close_notify would only add a round trip.
        await trio.aclose_forcefully(stream)


# -- HTTP ----------------------------------------------------------------------------------------------------


@attrs.define(kw_only=True)
class HttpHealthCheck:
    """Healthy when `GET path` answers as expected within the timeouts (Pingora's `HttpHealthCheck`).

    Args:
        host: the Host header, and the TLS server name when `tls` and no `sni` is given.
        tls: speak https.
        sni: the TLS server name; defaults to `host`.
        path: the request target.
        expected_status: the status a healthy backend answers; ignored when a `validator` is given.
        validator: called with the response head; raises to fail the check (replaces the status check).
        read_timeout: seconds each read of the response may wait (and each write of the request).
        connect_timeout: seconds to connect (and, with `tls`, to finish the handshake).
        reuse_connection: keep the connection for the next check of the same backend (Pingora's
            `reuse_connection`); a connection is dropped after any error.
        port_override: probe this port instead of the backend's (TCP backends only).
        peer_options: a template for the other connection settings; its timeouts are replaced.
        codec: the HTTP/1 codec; the default one when omitted.
        consecutive_success: see `HealthCheck`.
        consecutive_failure: see `HealthCheck`.
        health_changed: see `HealthCheck`.

    The response body is read to its end and ignored (bounded by `read_timeout` per read, not in total).
    """

    host: str = attrs.field(kw_only=False)
    tls: bool = False
    sni: str = ""
    path: str = "/"
    expected_status: int = 200
    validator: Callable[[ResponseHeader], object] | None = None
    read_timeout: float = attrs.field(default=DEFAULT_HEALTH_CHECK_READ_TIMEOUT, validator=_check_timeout)
    connect_timeout: float = attrs.field(
        default=DEFAULT_HEALTH_CHECK_CONNECT_TIMEOUT, validator=_check_timeout
    )
    reuse_connection: bool = False
    port_override: int | None = attrs.field(default=None)
    peer_options: PeerOptions | None = None
    codec: Codec = attrs.field(factory=select_codec, repr=False)
    consecutive_success: int = attrs.field(default=1, validator=_check_threshold)
    consecutive_failure: int = attrs.field(default=1, validator=_check_threshold)
    health_changed: HealthChanged | None = None
    _idle: dict[Backend, ClientSide] = attrs.field(init=False, factory=dict, repr=False)

    @port_override.validator
    def _check_port(self, attribute: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and (type(value) is not int or not 0 < value < 65536):
            raise ValueError(f"port_override: must be a port 1..65535 or None, got {value!r}")

    async def check(self, backend: Backend) -> None:
        """Send `GET path` to `backend` and judge the response.

        Raises:
            Error: a connect, write, read or protocol failure; or, without a validator, a status other than
                `expected_status` (`ErrorType.custom("unexpected status")`, source UPSTREAM).
            Exception: whatever the validator raises.
        """
        conn = self._idle.pop(backend, None)
        if conn is None:
            conn = await self._connect(backend)
        try:
            request = RequestHeader.build("GET", self.path, [("Host", self.host)])
            await conn.write_request(request, end=True)
            response = await conn.read_response()
            while await conn.read_body() is not None:
                pass
            self._judge(backend, response)
        except BaseException:
            await conn.abort()
            raise
        if self.reuse_connection and conn.start_next_cycle():
            self._idle[backend] = conn
        else:
            await conn.abort()

    async def aclose(self) -> None:
        """Close the connections kept for reuse."""
        idle, self._idle = self._idle, {}
        for conn in idle.values():
            await conn.abort()

    async def _connect(self, backend: Backend) -> ClientSide:
        address: object = backend.addr
        if self.port_override is not None:
            if isinstance(backend.addr, str):
                raise Error.explain(
                    ErrorType.CONNECT_ERROR,
                    f"health check of unix:{backend.addr}: port_override needs a TCP backend",
                    ErrorSource.INTERNAL,
                )
            address = (backend.addr[0], self.port_override)
        peer = _peer(address, self.tls, self.sni or self.host, self.peer_options, self.connect_timeout)
        stream = await connect_peer(peer)
        return self.codec.client(stream, read_timeout=self.read_timeout, write_timeout=self.read_timeout)

    def _judge(self, backend: Backend, response: ResponseHeader) -> None:
        if self.validator is not None:
            self.validator(response)
        elif response.status != self.expected_status:
            raise Error.explain(
                ErrorType.custom("unexpected status"),
                f"health check GET {self.path} of {backend.addr!r}: status {response.status},"
                f" expected {self.expected_status}",
                ErrorSource.UPSTREAM,
            )


# -- bookkeeping ---------------------------------------------------------------------------------------------


@attrs.define
class _Health:
    healthy: bool
    streak: int = 0  # consecutive verdicts that disagree with `healthy`


class HealthTracker:
    """The health of each backend, from the verdicts recorded so far (Pingora's `Health`, per backend).

    Args:
        consecutive_success: verdicts in a row that turn an unhealthy backend healthy.
        consecutive_failure: verdicts in a row that turn a healthy backend unhealthy.
        health_changed: called with (backend, healthy) on each flip; its exceptions propagate.
        initially_healthy: the health of a backend before any verdict (Pingora: healthy).
    """

    def __init__(
        self,
        *,
        consecutive_success: int = 1,
        consecutive_failure: int = 1,
        health_changed: HealthChanged | None = None,
        initially_healthy: bool = True,
    ) -> None:
        for name, value in (
            ("consecutive_success", consecutive_success),
            ("consecutive_failure", consecutive_failure),
        ):
            if type(value) is not int or value < 1:
                raise ValueError(f"{name}: must be an int >= 1, got {value!r}")
        self.consecutive_success = consecutive_success
        self.consecutive_failure = consecutive_failure
        self.health_changed = health_changed
        self.initially_healthy = initially_healthy
        self._health: dict[Backend, _Health] = {}

    @classmethod
    def for_check(cls, check: HealthCheck, *, initially_healthy: bool = True) -> HealthTracker:
        """A tracker with `check`'s thresholds and callback."""
        return cls(
            consecutive_success=check.consecutive_success,
            consecutive_failure=check.consecutive_failure,
            health_changed=check.health_changed,
            initially_healthy=initially_healthy,
        )

    def record(self, backend: Backend, ok: bool) -> bool | None:
        """Record one verdict; return the new health if `backend` flipped, else None."""
        health = self._health.get(backend)
        if health is None:
            health = self._health[backend] = _Health(self.initially_healthy)
        if health.healthy == ok:
            health.streak = 0
            return None
        health.streak += 1
        if health.streak < (self.consecutive_success if ok else self.consecutive_failure):
            return None
        health.healthy = ok
        health.streak = 0
        if self.health_changed is not None:
            self.health_changed(backend, ok)
        return ok

    def healthy(self, backend: Backend) -> bool:
        """The health of `backend`; `initially_healthy` for one never recorded."""
        health = self._health.get(backend)
        return self.initially_healthy if health is None else health.healthy

    def forget(self, backends: Iterable[Backend]) -> None:
        """Drop what is known about `backends` (removed by discovery)."""
        for backend in backends:
            self._health.pop(backend, None)

    def retain(self, backends: Iterable[Backend]) -> None:
        """Drop what is known about every backend not in `backends` (the set discovery now returns)."""
        keep = set(backends)
        self.forget([backend for backend in self._health if backend not in keep])

    def __repr__(self) -> str:
        down = sum(not health.healthy for health in self._health.values())
        return f"<HealthTracker backends={len(self._health)} unhealthy={down}>"


async def run_checks(
    check: HealthCheck,
    backends: Iterable[Backend],
    tracker: HealthTracker,
    *,
    parallel: bool = False,
    verdicts: dict[Backend, bool] | None = None,
) -> dict[Backend, bool]:
    """Probe every backend once and record the verdicts (Pingora's `run_health_check`).

    With `parallel`, the probes run at once in a nursery opened for this round only and closed before the
    verdicts are recorded (the round is the unit of structured concurrency here, as a request is for the
    engine's body pumps); the caller's supervisor owns the loop that repeats rounds.

    Args:
        verdicts: filled with every probed backend's verdict of this round (True: passed), when given.

    Returns:
        The backends that flipped, with their new health, in the order given.

    Raises:
        Whatever `tracker.health_changed` raises; a check's own exception is its verdict, never raised.
    """
    order = list(dict.fromkeys(backends))
    errors: dict[Backend, Exception | None] = {}

    async def probe(backend: Backend) -> None:
        try:
            await check.check(backend)
        except Exception as exc:
            errors[backend] = exc
        else:
            errors[backend] = None

    if parallel:
        async with trio.open_nursery() as nursery:
            for backend in order:
                nursery.start_soon(probe, backend)
    else:
        for backend in order:
            await probe(backend)

    flips: dict[Backend, bool] = {}
    if verdicts is not None:
        verdicts.update((backend, error is None) for backend, error in errors.items())
    for backend in order:
        error = errors[backend]
        flipped = tracker.record(backend, error is None)
        if flipped is None:
            continue
        flips[backend] = flipped
        if flipped:
            logger.info("%r becomes healthy", backend)
        else:
            logger.warning("%r becomes unhealthy: %s", backend, error)
    return flips
