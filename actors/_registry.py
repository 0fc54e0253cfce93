"""Names of live actors, unique within one actor system."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import NameTaken

if TYPE_CHECKING:
    from ._context import ActorContext
    from ._ref import ActorRef

__all__ = ["Registry"]


class Registry:
    """name → running actor; a name is taken at spawn and freed when that incarnation exits."""

    __slots__ = ("_names",)

    def __init__(self) -> None:
        self._names: dict[str, ActorContext] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def __len__(self) -> int:
        return len(self._names)

    def register(self, name: str, context: ActorContext) -> None:
        """Raises NameTaken if a live actor holds `name`."""
        if name in self._names:
            raise NameTaken(name)
        self._names[name] = context

    def release(self, name: str, context: ActorContext) -> None:
        """Free `name` if `context` holds it (a newer holder keeps it)."""
        if self._names.get(name) is context:
            del self._names[name]

    def whereis(self, name: str) -> ActorRef | None:
        """The ref registered as `name`, or None."""
        context = self._names.get(name)
        return context.ref if context is not None else None

    def names(self) -> list[str]:
        return sorted(self._names)
