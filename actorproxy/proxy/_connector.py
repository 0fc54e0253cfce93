"""Open a connection to an `HttpPeer`: TCP or Unix socket, socket options, then TLS.

Rules:
- This is the I/O boundary for establishing upstream connections. Every OSError, ssl error and timeout is
  translated once, here, into an `Error` with source UPSTREAM, the peer's address in the context and the
  foreign exception as the cause. `trio.Cancelled` from outside always propagates, and a half-open
  connection is closed on every way out.
- `connection_timeout` bounds the TCP (or Unix socket) connect; `total_connection_timeout` bounds the connect
  plus the TLS handshake. A timeout is CONNECT_TIMEDOUT while connecting, TLS_HANDSHAKE_TIMEDOUT during the
  handshake.
- The TLS handshake is done here, eagerly, so a bad certificate is a connect error (`fail_to_connect`, nothing
  sent yet), never a read error in the middle of a request.
- Certificate names: with `verify_hostname` OpenSSL checks the SNI (or, with no SNI, the host) during the
  handshake. With `alternative_cn` as well, that built-in check is off and, after the handshake, the
  certificate must name the SNI/host or `alternative_cn` (DNS/IP subjectAltName entries; the subject CN when
  the certificate has no DNS names, and always for `alternative_cn`). Without `verify_cert` nothing is
  checked, as in OpenSSL/BoringSSL where the name check is part of chain verification.
- SSLContexts are built once per (verify_cert, built-in name check, ca, client_cert) and cached: building one
  loads the CA store, which costs milliseconds. A changed CA or client-cert file is not re-read.
- Connect errors are not retryable by default: Pingora leaves that to `fail_to_connect`.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import math
import socket
import ssl
from typing import Any

import trio

from actorproxy.http import Error, ErrorSource, ErrorType

from ._peer import HttpPeer, PeerOptions, parse_bind_to
from ._sockets import SocketStream, from_trio_stream

__all__ = ["connect_peer", "tls_context"]

# Distinct (verify, ca, client cert) combinations in one proxy are few; the bound stops per-request `ca`
# data from growing the cache without limit.
TLS_CONTEXT_CACHE_SIZE = 64

_NO_ROUTE_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})
_UPSTREAM = ErrorSource.UPSTREAM


async def connect_peer(peer: HttpPeer) -> trio.abc.Stream:
    """Connect to `peer` and, for https, finish the TLS handshake.

    Returns:
        A `SocketStream` (TCP or Unix socket; it checkpoints only when it waits, see `_sockets`),
        or a `trio.SSLStream` over one for https.

    Raises:
        Error: source UPSTREAM; CONNECT_REFUSED, CONNECT_TIMEDOUT, CONNECT_NO_ROUTE, CONNECT_ERROR,
            BIND_ERROR, TLS_HANDSHAKE_TIMEDOUT, TLS_HANDSHAKE_FAILURE or INVALID_CERT. A TLS setting that
            cannot work (a CA file that does not load, no name to verify) is TLS_HANDSHAKE_FAILURE with source
            INTERNAL.
    """
    options = peer.options
    start = trio.current_time()
    total_deadline = math.inf
    if options.total_connection_timeout is not None:
        total_deadline = start + options.total_connection_timeout
    connect_deadline = total_deadline
    if options.connection_timeout is not None:
        connect_deadline = min(total_deadline, start + options.connection_timeout)

    stream: SocketStream | None = None
    with trio.CancelScope(deadline=connect_deadline):
        stream = await _open_transport(peer)
    if stream is None:
        # Only our own deadline gets here: an outer cancellation propagates through the scope.
        which = _timeout_name(options, connect_deadline, start)
        raise Error.explain(
            ErrorType.CONNECT_TIMEDOUT,
            f"connecting to {peer.label()}: not connected within {which}",
            _UPSTREAM,
        )
    if not peer.tls:
        return stream
    try:
        return await _start_tls(peer, stream, total_deadline)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


def _timeout_name(options: PeerOptions, deadline: float, start: float) -> str:
    if options.connection_timeout is not None and deadline == start + options.connection_timeout:
        return f"connection_timeout {options.connection_timeout:g} s"
    return f"total_connection_timeout {options.total_connection_timeout:g} s"


# -- transport ---------------------------------------------------------------------------------------------


async def _open_transport(peer: HttpPeer) -> SocketStream:
    address = peer.address
    if isinstance(address, str):
        try:
            return from_trio_stream(await trio.open_unix_socket(address))
        except OSError as exc:
            error = _connect_error(peer, exc)
            raise error from error.__cause__
    host, port = address
    options = peer.options
    try:
        if options.bind_to is None:
            stream = await trio.open_tcp_stream(host, port)
        else:
            stream = await _open_tcp_bound(peer, host, port, options.bind_to)
    except OSError as exc:
        error = _connect_error(peer, exc)
        raise error from error.__cause__
    ours = from_trio_stream(stream)
    try:
        _configure_tcp(ours, options)
    except OSError as exc:
        ours.close_nowait()
        raise Error.because(
            ErrorType.CONNECT_ERROR, f"setting socket options for {peer.label()}", exc, _UPSTREAM
        ) from exc
    return ours


async def _open_tcp_bound(peer: HttpPeer, host: str, port: int, bind_to: str) -> trio.SocketStream:
    """Connect from `bind_to`, trying each resolved address in turn (no happy eyeballs: one family only)."""
    bind_host, bind_port = parse_bind_to(bind_to)
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    targets = await trio.socket.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    last_error: OSError | None = None
    for target_family, kind, proto, _, sockaddr in targets:
        sock = trio.socket.socket(target_family, kind, proto)
        try:
            no_port = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", None)
            if bind_port == 0 and no_port is not None:
                # Let connect() pick the local port per destination instead of reserving one at bind time
                # (same reasoning as trio.open_tcp_stream's local_address).
                sock.setsockopt(socket.IPPROTO_IP, no_port, 1)
            try:
                await sock.bind((bind_host, bind_port))
            except OSError as exc:
                raise Error.because(
                    ErrorType.BIND_ERROR,
                    f"binding to {bind_to} to connect to {peer.label()}",
                    exc,
                    _UPSTREAM,
                ) from exc
            await sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return trio.SocketStream(sock)
    assert last_error is not None  # getaddrinfo raises rather than return nothing
    raise last_error


def _configure_tcp(stream: SocketStream, options: PeerOptions) -> None:
    # trio already sets TCP_NODELAY; set it again so a pooled connection never waits on Nagle whatever
    # trio's default becomes.
    stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
    keepalive = options.tcp_keepalive
    if keepalive is None:
        return
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
    # Linux calls the idle time TCP_KEEPIDLE, macOS TCP_KEEPALIVE; the kernel counts whole seconds.
    idle_option = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    for option, value in (
        (idle_option, math.ceil(keepalive.idle)),
        (getattr(socket, "TCP_KEEPINTVL", None), math.ceil(keepalive.interval)),
        (getattr(socket, "TCP_KEEPCNT", None), keepalive.count),
    ):
        if option is not None:
            stream.setsockopt(socket.IPPROTO_TCP, option, value)


def _classify(exc: OSError) -> ErrorType:
    if isinstance(exc, ConnectionRefusedError):
        return ErrorType.CONNECT_REFUSED
    if isinstance(exc, TimeoutError):  # the kernel gave up retrying the SYN
        return ErrorType.CONNECT_TIMEDOUT
    if exc.errno in _NO_ROUTE_ERRNOS:
        return ErrorType.CONNECT_NO_ROUTE
    return ErrorType.CONNECT_ERROR


def _connect_error(peer: HttpPeer, exc: OSError) -> Error:
    cause: OSError = exc
    etype = _classify(exc)
    group = exc.__cause__
    if isinstance(group, BaseExceptionGroup):
        # trio.open_tcp_stream reports "all attempts failed" with each attempt's error in a group.
        attempts = [error for error in group.exceptions if isinstance(error, OSError)]
        kinds = {_classify(error) for error in attempts}
        etype = kinds.pop() if len(kinds) == 1 else ErrorType.CONNECT_ERROR
        if len(attempts) == 1:
            cause = attempts[0]
    return Error.because(etype, f"connecting to {peer.label()}", cause, _UPSTREAM)


# -- TLS ---------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=TLS_CONTEXT_CACHE_SIZE)
def tls_context(
    verify_cert: bool,
    check_hostname: bool,
    ca: str | bytes | None = None,
    client_cert: tuple[str, str] | None = None,
    alpn: tuple[str, ...] = ("http/1.1",),
) -> ssl.SSLContext:
    """The cached client SSLContext for these settings.

    Args:
        verify_cert: require a certificate chaining to `ca` (or the system's CAs).
        check_hostname: let OpenSSL check the server name during the handshake (needs `verify_cert`).
        ca: a CA bundle path, PEM text or DER bytes; None for the system's store.
        client_cert: (certificate chain path, private key path) to present for mTLS.
        alpn: the protocols offered (the peer's `ALPN`), preferred first.

    Raises:
        OSError: a file could not be read.
        ssl.SSLError: a file's content is not a usable certificate or key.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # TLS >= 1.2, secure ciphers, CERT_REQUIRED
    if verify_cert:
        if ca is None:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        elif isinstance(ca, bytes):
            if ca.lstrip().startswith(b"-----BEGIN"):
                context.load_verify_locations(cadata=ca.decode("ascii"))
            else:
                context.load_verify_locations(cadata=ca)
        elif ca.lstrip().startswith("-----BEGIN"):
            context.load_verify_locations(cadata=ca)
        else:
            context.load_verify_locations(cafile=ca)
        context.check_hostname = check_hostname
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        context.load_cert_chain(*client_cert)
    context.set_alpn_protocols(list(alpn))
    return context


async def _start_tls(peer: HttpPeer, stream: SocketStream, deadline: float) -> trio.SSLStream[Any]:
    options = peer.options
    label = peer.label()
    verify = options.verify_cert
    server_name = peer.sni or (peer.host if options.verify_hostname else None) or None
    alternative_cn = options.alternative_cn if verify and options.verify_hostname else None
    builtin_check = verify and options.verify_hostname and alternative_cn is None
    if builtin_check and server_name is None:
        raise Error.explain(
            ErrorType.TLS_HANDSHAKE_FAILURE,
            f"connecting to {label}: verify_hostname needs an sni (or alternative_cn) for a Unix socket peer",
            ErrorSource.INTERNAL,
        )
    try:
        context = tls_context(verify, builtin_check, options.ca, options.client_cert, options.alpn.protocols)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise Error.because(
            ErrorType.TLS_HANDSHAKE_FAILURE,
            f"building the TLS context for {label}"
            f" (ca={_short(options.ca)}, client_cert={options.client_cert})",
            exc,
            ErrorSource.INTERNAL,
        ) from exc
    try:
        # https_compatible: HTTP servers often close without close_notify, and message framing, not TLS,
        # says where a response ends (RFC 9112 section 9.8), so a missing close_notify is a plain EOF.
        ssl_stream = trio.SSLStream(stream, context, server_hostname=server_name, https_compatible=True)
    except ValueError as exc:  # IDNA-invalid server name
        raise Error.because(
            ErrorType.TLS_HANDSHAKE_FAILURE,
            f"connecting to {label}: bad sni {server_name!r}",
            exc,
            ErrorSource.INTERNAL,
        ) from exc
    with trio.CancelScope(deadline=deadline) as scope:
        try:
            await ssl_stream.do_handshake()
        except trio.BrokenResourceError as exc:
            error = _tls_error(label, exc)
            raise error from error.__cause__
    if scope.cancelled_caught:
        raise Error.explain(
            ErrorType.TLS_HANDSHAKE_TIMEDOUT,
            f"TLS handshake with {label}: not done within total_connection_timeout "
            f"{options.total_connection_timeout:g} s",
            _UPSTREAM,
        )
    if alternative_cn is not None and not _certificate_accepts(
        ssl_stream.getpeercert(), server_name, alternative_cn
    ):
        wanted = (
            f"neither {server_name!r} nor {alternative_cn!r}" if server_name else f"not {alternative_cn!r}"
        )
        raise Error.explain(
            ErrorType.INVALID_CERT, f"TLS handshake with {label}: the certificate names {wanted}", _UPSTREAM
        )
    return ssl_stream


def _short(value: str | bytes | None) -> str:
    if isinstance(value, str) and not value.lstrip().startswith("-----BEGIN"):
        return repr(value)
    return "None" if value is None else f"<{len(value)} bytes of certificate data>"


def _tls_error(label: str, exc: trio.BrokenResourceError) -> Error:
    cause = exc.__cause__ or exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        etype = ErrorType.INVALID_CERT
    else:
        # Includes the peer closing or resetting mid-handshake (not an SSLError, same meaning to a proxy).
        etype = ErrorType.TLS_HANDSHAKE_FAILURE
    return Error.because(etype, f"TLS handshake with {label}", cause, _UPSTREAM)


# -- certificate names (RFC 6125) --------------------------------------------------------------------------


def _certificate_accepts(cert: dict[str, Any] | None, server_name: str | None, alternative_cn: str) -> bool:
    """Whether `cert` names `server_name` (RFC 6125) or `alternative_cn` (as a DNS SAN or the subject CN)."""
    if not cert:
        return False
    dns: list[str] = []
    ips: list[str] = []
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "DNS":
            dns.append(value)
        elif kind == "IP Address":
            ips.append(value)
    common_names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    # RFC 6125 6.4.4: the CN only counts when there are no DNS names; Pingora's alternative_cn is a CN.
    checks = [(alternative_cn, dns + common_names)]
    if server_name:
        checks.insert(0, (server_name, dns if dns else common_names))
    for name, patterns in checks:
        ip = _ip(name)
        if ip is not None:
            if any(_ip(entry) == ip for entry in ips):
                return True
        elif any(_dns_matches(pattern, name) for pattern in patterns):
            return True
    return False


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _dns_matches(pattern: str, name: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    name = name.lower().rstrip(".")
    if not pattern.startswith("*."):
        return pattern == name
    # RFC 6125 6.4.3: a wildcard is the whole leftmost label, matches exactly one label, and never stands for
    # a label right under a public suffix we cannot know: require at least two labels after it.
    suffix = pattern[1:]
    if suffix.count(".") < 2:
        return False
    head, dot, rest = name.partition(".")
    return bool(head) and bool(dot) and f".{rest}" == suffix
