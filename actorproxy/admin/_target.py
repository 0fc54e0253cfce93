"""What the admin service needs from the server it watches: a small protocol, so `admin` sits below
`server` (the `Server` passes itself in; a test may pass anything of this shape)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from actorproxy.config import ServerConf
from actorproxy.lb import LoadBalancer
from actors import ActorSystem

__all__ = ["AdminTarget", "ReloadResult"]


class ReloadResult(Protocol):
    """What one reload hook did (`actorproxy.server.ReloadOutcome`)."""

    @property
    def hook(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def message(self) -> str: ...
    @property
    def details(self) -> Mapping[str, Any]: ...


class AdminTarget(Protocol):
    """The server as the admin service sees it (`actorproxy.server.Server`)."""

    @property
    def services(self) -> Sequence[object]:
        """The services in the order they were added."""
        ...

    @property
    def system(self) -> ActorSystem | None:
        """The actor system while serving; None before."""
        ...

    @property
    def configuration(self) -> ServerConf:
        """The configuration the server started with."""
        ...

    @property
    def worker(self) -> int | None:
        """Which worker process this is (`threads` > 1); None in a single process."""
        ...

    def clusters(self) -> Mapping[str, LoadBalancer]:
        """Every upstream cluster by name."""
        ...

    async def reload(self) -> Sequence[ReloadResult]:
        """Run the reload hooks (what SIGHUP does) and say what each did."""
        ...
