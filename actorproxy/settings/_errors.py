"""What the settings file, its keys and its encryption raise."""

from __future__ import annotations

from actors import ActorProxyError

__all__ = ["DecryptError", "SettingsError"]


class SettingsError(ActorProxyError, ValueError):
    """The settings file, a key or a key file cannot be used; the message says which and why."""


class DecryptError(SettingsError):
    """An encrypted payload cannot be decrypted: not a payload, changed, or encrypted with another key."""
