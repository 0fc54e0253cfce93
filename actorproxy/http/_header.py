"""HTTP message heads: `Headers`, `RequestHeader`, `ResponseHeader` (Pingora's names and methods).

Rules:
- Header names keep the case they were given (read from the wire or set by the user) and are written back
  with it; lookups ignore case. Pingora keeps case the same way (its `CaseMap`): some peers depend on it.
- Names and values are `str`, decoded from the wire as latin-1, so `raw()` gives back the exact bytes.
- Nothing is validated here: h11 validates names and values when a head is written, so a bad header fails
  at the write (as `Error(INVALID_HTTP_HEADER)`), not at `insert_header`. That keeps the hot path cheap.
- Fields a codec parsed are valid to write as they are (their grammar, on the way in, is stricter than
  h11's rules for writing them), so a parsed `Headers` is marked `_trusted` and the codecs write it
  without checking each field again (that check cost about 20,000 instructions for a nine-field response
  head). Removing fields keeps the mark; any field added or set through the public methods clears it, and
  the proxy's own additions (Via) keep it only through `_add_trusted` / `set_valid`, which callers use
  for values they know to be valid. Headers written many times (a cached response's) are checked once,
  by `trust_if_writable` (`h1/_rules.py`), against a rule stricter than both codecs' own.
- `Headers` is a list of pairs plus a parallel list of their names lowercased, kept in step with every
  change, so each operation is O(number of fields) and none rebuilds the index it just used. A codec hands
  over the names it lowercased once while parsing (`_from_parsed`); headers built otherwise lowercase them
  when built. The proxy's own lookups (`_has`, `_values`) take a name already in lowercase, so a
  name is never lowercased twice; the public ones take any case.
- The heads are plain mutable objects with `__slots__`: a request filter edits them in place.
"""

from __future__ import annotations

import http
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet

__all__ = ["Headers", "RequestHeader", "ResponseHeader"]

HeaderValue = str | bytes | int
"""What `insert_header` / `append_header` accept: `str`, latin-1 `bytes`, or an integer (Pingora parity)."""


def _text(value: HeaderValue) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


class Headers:
    """An ordered multi-map of header fields: names keep their case, lookups ignore it.

    Iterating gives `(name, value)` pairs in wire order, repeated names included.
    """

    __slots__ = ("_lower", "_pairs", "_trusted")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs: list[tuple[str, str]] = list(pairs)
        # Lowercase names, parallel to `_pairs`.
        self._lower: list[str] = [name.lower() for name, _ in self._pairs]
        # Every field is valid to write as it is (see the module rules).
        self._trusted = False

    @classmethod
    def _from_parsed(cls, pairs: list[tuple[str, str]], lower: list[str]) -> Headers:
        """Headers a codec parsed, with their names already lowercased (`lower`, parallel to `pairs`). The
        lists become the headers' own: the codec changes them no more."""
        new = cls.__new__(cls)
        new._pairs = pairs
        new._lower = lower
        new._trusted = True
        return new

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Headers from wire bytes (h11's `raw_items()`), decoded as latin-1."""
        return cls([(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw])

    def raw(self) -> list[tuple[bytes, bytes]]:
        """The fields as latin-1 bytes, for h11.

        Raises:
            UnicodeEncodeError: a name or value holds a character outside latin-1.
        """
        return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in self._pairs]

    def _names(self) -> list[str]:
        """The lowercase names, parallel to the pairs (the list itself, not a copy)."""
        return self._lower

    # -- lookups by a name already in lowercase: the proxy's own, which never lowercase twice --------------

    def _has(self, lower: str) -> bool:
        """Whether a field called `lower` (lowercase) is here."""
        return lower in self._lower

    def _has_any(self, lowers: AbstractSet[str]) -> bool:
        """Whether a field called any of `lowers` (lowercase) is here."""
        return not lowers.isdisjoint(self._lower)

    def _values(self, lower: str) -> list[str]:
        """The values of the fields called `lower` (lowercase), in order."""
        names = self._lower
        if lower not in names:
            return []
        pairs = self._pairs
        return [pairs[i][1] for i, name in enumerate(names) if name == lower]

    def _fields(self) -> tuple[list[tuple[str, str]], list[str], bool]:
        """Copies of the pairs and of their lowercase names, and whether they are `_trusted`, for a codec
        to write."""
        return list(self._pairs), list(self._lower), self._trusted

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first field called `name` (any case), or `default`."""
        names = self._lower
        key = name.lower()
        if key not in names:
            return default
        return self._pairs[names.index(key)][1]

    def get_all(self, name: str) -> list[str]:
        """The values of every field called `name`, in order."""
        key = name.lower()
        return [pair[1] for pair, lower in zip(self._pairs, self._lower, strict=True) if lower == key]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name.lower() in self._lower

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._pairs == other._pairs

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"

    def items(self) -> list[tuple[str, str]]:
        """A copy of the `(name, value)` pairs."""
        return list(self._pairs)

    def copy(self) -> Headers:
        """An independent copy."""
        new = Headers.__new__(Headers)
        new._pairs = list(self._pairs)
        new._lower = list(self._lower)
        new._trusted = self._trusted
        return new

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any others of the same name."""
        self._trusted = False
        self._add_trusted(name, value)

    def _add_trusted(self, name: str, value: str) -> None:
        """`add` a field the caller knows to be valid to write: it keeps the `_trusted` mark."""
        self._pairs.append((name, value))
        self._lower.append(name.lower())

    def set(self, name: str, value: str) -> None:
        """Replace every field called `name` by one, where the first of them was (else append it)."""
        self._trusted = False
        self.set_valid(name, value)

    def set_valid(self, name: str, value: str) -> None:
        """`set` a field the caller has checked: `name` a token (RFC 9110 §5.1), `value` visible ASCII
        with no leading or trailing space. A parsed head stays trusted (written without a check)."""
        names = self._lower
        key = name.lower()
        if key not in names:
            self._pairs.append((name, value))
            names.append(key)
            return
        first = names.index(key)
        self._pairs[first] = (name, value)
        if names.count(key) > 1:
            keep = [i for i, lower in enumerate(names) if lower != key or i == first]
            self._pairs = [self._pairs[i] for i in keep]
            self._lower = [names[i] for i in keep]

    def remove_all(self, names: AbstractSet[str]) -> bool:
        """Remove every field whose lowercase name is in `names`, in one pass; return whether any was."""
        lower = self._lower
        if names.isdisjoint(lower):
            return False
        found = set(lower).intersection(names)
        pairs = self._pairs
        # Usually one field goes (a response's `Connection`): found and deleted in place, no list rebuilt.
        for name in found:
            while name in lower:
                index = lower.index(name)
                del pairs[index]
                del lower[index]
        return True

    def remove(self, name: str) -> bool:
        """Remove every field called `name`; return whether there was one."""
        names = self._lower
        key = name.lower()
        if key not in names:
            return False
        self._pairs = [pair for pair, lower in zip(self._pairs, names, strict=True) if lower != key]
        self._lower = [lower for lower in names if lower != key]
        return True


class RequestHeader:
    """A request head: method, request target as sent, version and headers (a `Headers` given is used as is).

    Attributes:
        method: the method, e.g. ``"GET"``.
        uri: the request target exactly as sent: ``"/a?b=1"``, ``"http://host/a"``, ``"host:443"`` or ``"*"``.
        version: ``"1.1"`` or ``"1.0"``.
        headers: the header fields.
    """

    __slots__ = ("headers", "method", "uri", "version")

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        version: str = "1.1",
    ) -> None:
        self.method = method
        self.uri = uri
        self.version = version
        self.headers = headers if type(headers) is Headers else _headers(headers)

    @classmethod
    def build(
        cls,
        method: str,
        uri: str,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        version: str = "1.1",
    ) -> RequestHeader:
        """A new request head (Pingora's `RequestHeader::build`)."""
        return cls(method, uri, headers, version)

    @property
    def path(self) -> str:
        """The path of the target without the query: ``"/a"`` for ``"/a?b=1"`` or ``"http://h/a?b=1"``.

        An authority-form target (CONNECT) has the empty path; the asterisk-form's is ``"*"``.
        """
        uri = self.uri
        if not uri.startswith("/"):
            scheme_end = uri.find("://")
            if scheme_end < 0:
                return "*" if uri == "*" else ""
            authority_start = scheme_end + 3
            starts = [i for i in (uri.find("/", authority_start), uri.find("?", authority_start)) if i >= 0]
            if not starts:
                return "/"
            uri = uri[min(starts) :]
            if uri.startswith("?"):
                return "/"
        end = uri.find("?")
        return uri if end < 0 else uri[:end]

    @property
    def query(self) -> str | None:
        """The query of the target, without the ``?``; None when it has none."""
        start = self.uri.find("?")
        return None if start < 0 else self.uri[start + 1 :]

    def set_uri(self, uri: str) -> None:
        """Change the request target."""
        self.uri = uri

    def set_method(self, method: str) -> None:
        """Change the method."""
        self.method = method

    def insert_header(self, name: str, value: HeaderValue) -> None:
        """Set `name` to `value`, replacing any fields of that name."""
        self.headers.set(name, _text(value))

    def append_header(self, name: str, value: HeaderValue) -> None:
        """Add a field, keeping any others of that name."""
        self.headers.add(name, _text(value))

    def remove_header(self, name: str) -> bool:
        """Remove every field called `name`; return whether there was one."""
        return self.headers.remove(name)

    def copy(self) -> RequestHeader:
        """An independent copy (the upstream request usually starts as one of the downstream's)."""
        new = RequestHeader.__new__(RequestHeader)
        new.method = self.method
        new.uri = self.uri
        new.version = self.version
        new.headers = self.headers.copy()
        return new

    def __repr__(self) -> str:
        return f"RequestHeader({self.method!r}, {self.uri!r}, {self.headers!r}, version={self.version!r})"


class ResponseHeader:
    """A response head: status, reason phrase, version and headers (a `Headers` given is used as is).

    Attributes:
        status: the status code.
        reason: the reason phrase; defaults to the standard one for the status (empty when unknown).
        version: ``"1.1"`` or ``"1.0"`` as received; responses are always written as HTTP/1.1.
        headers: the header fields.
    """

    __slots__ = ("headers", "reason", "status", "version")

    def __init__(
        self,
        status: int,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        *,
        reason: str | None = None,
        version: str = "1.1",
    ) -> None:
        self.status = status
        self.reason = _reason(status) if reason is None else reason
        self.version = version
        self.headers = headers if type(headers) is Headers else _headers(headers)

    @classmethod
    def build(cls, status: int, headers: Headers | Iterable[tuple[str, str]] | None = None) -> ResponseHeader:
        """A new response head with the standard reason phrase (Pingora's `ResponseHeader::build`)."""
        return cls(status, headers)

    def set_status(self, status: int) -> None:
        """Change the status, and the reason phrase to the standard one for it."""
        self.status = status
        self.reason = _reason(status)

    def insert_header(self, name: str, value: HeaderValue) -> None:
        """Set `name` to `value`, replacing any fields of that name."""
        self.headers.set(name, _text(value))

    def append_header(self, name: str, value: HeaderValue) -> None:
        """Add a field, keeping any others of that name."""
        self.headers.add(name, _text(value))

    def remove_header(self, name: str) -> bool:
        """Remove every field called `name`; return whether there was one."""
        return self.headers.remove(name)

    def copy(self) -> ResponseHeader:
        """An independent copy."""
        return ResponseHeader(self.status, self.headers.copy(), reason=self.reason, version=self.version)

    def __repr__(self) -> str:
        fields = f"{self.status}, {self.headers!r}, reason={self.reason!r}, version={self.version!r}"
        return f"ResponseHeader({fields})"


def _headers(headers: Headers | Iterable[tuple[str, str]] | None) -> Headers:
    if headers is None:
        return Headers()
    if isinstance(headers, Headers):
        return headers
    return Headers(headers)


# The standard reason phrases (RFC 9110 §15 and the registry, as the standard library knows them).
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}


def _reason(status: int) -> str:
    return _REASONS.get(status, "")
