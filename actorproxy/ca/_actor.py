"""`CertificateActor`: prepares the sites' certificates off the event loop and renews them in time.

Rules:
- On start, and on every `PrepareCertificates`, it prepares the certificates of the current site names (a
  worker thread reads or issues them; see `SiteCertificates`), so a handshake for a known site never waits
  for a disk or a signature.
- Every `renew_check_interval` seconds it prepares again, which issues anew every certificate with less
  than `renewal_period` left, including those issued during handshakes.
- A failure (a disk that cannot be written) crashes the actor, for its supervisor to restart; the
  handshakes keep the certificates already in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import attrs
import trio

from actors import Actor
from supervisors import ChildSpec, Supervisor

from ._certificates import SiteCertificates

__all__ = [
    "CertificateActor",
    "CertificateService",
    "GetCertificateStatistics",
    "PrepareCertificates",
    "RenewCertificates",
]


@attrs.frozen
class PrepareCertificates:
    """The site names changed: prepare their certificates now."""


@attrs.frozen
class RenewCertificates:
    """Time to renew what is due (the actor's periodic timer)."""


@attrs.frozen
class GetCertificateStatistics:
    """Ask for the certificates' statistics, with the rounds of preparation done."""


class CertificateActor(Actor):
    """Keeps `certificates` ready for `names()` (see the module rules).

    Args:
        certificates: the certificates of the TLS listener.
        names: the current site names (wildcards are skipped: their names are issued on first use).
        renew_check_interval: seconds between renewal rounds.
    """

    def __init__(
        self, certificates: SiteCertificates, names: Callable[[], Iterable[str]], renew_check_interval: float
    ) -> None:
        self.certificates = certificates
        self.names = names
        self.renew_check_interval = renew_check_interval
        #: Rounds of preparation done by this incarnation.
        self.rounds = 0

    async def on_start(self) -> None:
        await self._prepare()
        self.timers.start_periodic("renew", RenewCertificates(), self.renew_check_interval)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, (PrepareCertificates, RenewCertificates)):
            await self._prepare()
            return None
        if isinstance(message, GetCertificateStatistics):
            return attrs.evolve(self.certificates.statistics(), rounds=self.rounds)
        return await super().receive(message)

    async def _prepare(self) -> None:
        names = [name for name in self.names() if not name.startswith("*.")]
        entries = await trio.to_thread.run_sync(partial(self.certificates.prepare, names))
        self.certificates.install(entries)
        self.rounds += 1


class CertificateService:
    """The certificate actor as a service of `Server` (ready once the known names' certificates are)."""

    def __init__(
        self,
        certificates: SiteCertificates,
        names: Callable[[], Iterable[str]],
        *,
        renew_check_interval: float,
        name: str = "certificates",
    ) -> None:
        self.certificates = certificates
        self.names = names
        self.renew_check_interval = renew_check_interval
        self.name = name

    def actor_spec(self) -> ChildSpec:
        """The bare actor, registered as `<name>/actor` so the sites can tell it the names changed."""
        return ChildSpec(
            id="actor",
            name=f"{self.name}/actor",
            start=partial(CertificateActor, self.certificates, self.names, self.renew_check_interval),
        )

    def child_spec(self) -> ChildSpec:
        """The service's subtree: a supervisor restarting the actor when it crashes."""
        spec = self.actor_spec()
        return ChildSpec(id=self.name, start=lambda: Supervisor([spec], intensity=10, period=60))
