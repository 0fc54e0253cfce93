"""What a bad configuration raises, and the warning for a key that is probably a typo.

Rules:
- Every problem names its key path (`services[0].listeners[1].address`) and the reason; the path is empty only
  for a problem with the file as a whole. A value set by an environment variable says so.
- All the problems found in one pass are reported together, in the order of the file's fields.
- A problem never shows a secret's value: reasons are redacted (`actorproxy.settings.redact`) when the error
  is made, so a bad value next to a secret, or a secret in the wrong place, prints as `••••`.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from actorproxy.settings import redact
from actors import ActorProxyError

__all__ = ["ConfigError", "ConfigWarning", "Problem"]


@attrs.frozen
class Problem:
    """One thing wrong with a configuration: where (a key path) and why."""

    #: The key path, as `services[0].routes[2].upstream`; empty for the file as a whole.
    path: str
    #: Why the value is refused, e.g. `expected an int >= 1, got 'four'`.
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class ConfigError(ActorProxyError, ValueError):
    """The configuration cannot be used: a YAML syntax error, a wrong value, a broken cross reference.

    Args:
        problems: what is wrong, each with its key path.
        source: the file (or other origin) the configuration came from, if any.
    """

    def __init__(self, problems: Iterable[Problem], source: str | None = None) -> None:
        self.problems = tuple(Problem(problem.path, redact(problem.reason)) for problem in problems)
        self.source = source
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.source}: " if self.source else ""
        if len(self.problems) == 1:
            return f"{where}{self.problems[0]}"
        lines = "".join(f"\n  {problem}" for problem in self.problems)
        return f"{where}{len(self.problems)} problems in the configuration:{lines}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.problems, self.source))


class ConfigWarning(UserWarning):
    """A top-level key is unknown and close to a known one: probably a typo (it is kept in `extra`)."""
