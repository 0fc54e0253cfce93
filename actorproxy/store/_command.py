"""`actorproxy store`: read and change the store of a server's configuration from the command line.

    actorproxy store -c FILE get KEY                       the value (bytes as stored, others as JSON);
                                                           a streamed body's bytes
    actorproxy store -c FILE put KEY VALUE [--ttl S] [--json]   VALUE as bytes (or parsed JSON; - : stdin)
    actorproxy store -c FILE forget KEY
    actorproxy store -c FILE flush [--prefix P]
    actorproxy store -c FILE stats

The file is read as the server reads it (`ACTORPROXY__...` overrides included), and the store it names is
opened in this process: the sqlite file (beside a running server; WAL lets both use it) or the Redis
server. A memory store lives inside the server's processes and cannot be reached from here.

Exit status: 0 done; 1 a key with no entry, a configuration without a usable `store` section (the message
names the key path) or a store that failed; 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import trio

from actorproxy.config import ConfigError, ServerConf, load_conf

from ._errors import EntryKindError, StoreError
from ._store import Store

__all__ = ["store_command"]

PROG = "actorproxy store"
_MISSING: Any = object()


def _parser() -> argparse.ArgumentParser:
    conf = argparse.ArgumentParser(add_help=False)
    conf.add_argument("-c", "--conf", default=argparse.SUPPRESS, help="the server's configuration file")
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[conf], description="Read and change the store of a server's configuration."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{get,put,forget,flush,stats}")
    get = verbs.add_parser("get", parents=[conf], help="print the value (or body) under KEY")
    get.add_argument("key")
    put = verbs.add_parser("put", parents=[conf], help="store VALUE under KEY")
    put.add_argument("key")
    put.add_argument("value", help="the value; - reads it from standard input")
    put.add_argument("--ttl", type=float, default=None, help="seconds until it expires (default: never)")
    put.add_argument("--json", action="store_true", help="VALUE is JSON, stored as data, not bytes")
    forget = verbs.add_parser("forget", parents=[conf], help="remove KEY")
    forget.add_argument("key")
    flush = verbs.add_parser("flush", parents=[conf], help="remove every entry (or those under --prefix)")
    flush.add_argument("--prefix", default="", help="remove only the keys starting with this")
    verbs.add_parser("stats", parents=[conf], help="entries, bytes and evictions")
    return parser


def _fail(message: object) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 1


def store_command(argv: Sequence[str]) -> int:
    """Run `actorproxy store ARGS`; return the exit status."""
    parser = _parser()
    options = parser.parse_args(argv)
    path = getattr(options, "conf", None)
    if path is None:
        parser.error("give the server's configuration file with -c FILE")
    try:
        conf = load_conf(path)
        store = _store_of(conf, path)
    except ConfigError as exc:
        return _fail(exc if exc.source else ConfigError(exc.problems, path))
    except StoreError as exc:
        return _fail(exc)
    if options.verb == "put":
        try:
            value = _value(options.value, as_json=options.json)
        except ValueError as exc:
            return _fail(f"VALUE: not JSON: {exc}")
        options.value = value
    try:
        return trio.run(_run, store, options)
    except StoreError as exc:
        return _fail(exc)


def _store_of(conf: ServerConf, path: str) -> Store:
    section = conf.store
    if section is None:
        raise StoreError(f"{path}: store: no store section in the file")
    if section.backend == "memory":
        raise StoreError(
            f"{path}: store.backend: memory lives inside the server's processes; the command line cannot"
            " reach it"
        )
    return Store.from_conf(section, redis=conf.redis)


def _value(text: str, *, as_json: bool) -> Any:
    data = sys.stdin.buffer.read() if text == "-" else text.encode()
    return json.loads(data) if as_json else data


async def _run(store: Store, options: argparse.Namespace) -> int:
    async with store:
        match options.verb:
            case "get":
                return await _get(store, options.key)
            case "put":
                await store.put(options.key, options.value, options.ttl)
                print(f"stored {options.key}")
            case "forget":
                if not await store.forget(options.key):
                    return _fail(f"no entry {options.key!r}")
                print(f"forgot {options.key}")
            case "flush":
                removed = await store.prefixed(options.prefix).flush()
                print(f"flushed {removed} entries")
            case "stats":
                stats = await store.statistics()
                print(f"backend: {stats.backend}")
                for name in ("entries", "size", "evictions"):
                    value = getattr(stats, name)
                    print(f"{name}: {'unknown' if value is None else value}")
    return 0


async def _get(store: Store, key: str) -> int:
    out = sys.stdout.buffer
    try:
        value = await store.get(key, _MISSING)
    except EntryKindError:
        reader = await store.open_reader(key)
        if reader is None:  # removed between the two reads
            return _fail(f"no entry {key!r}")
        async for chunk in reader:
            out.write(chunk)
        out.flush()
        return 0
    if value is _MISSING:
        return _fail(f"no entry {key!r}")
    out.write(value if isinstance(value, bytes) else json.dumps(value).encode() + b"\n")
    out.flush()
    return 0
