"""Every default of the server and its services, defined once: the configuration records and the code that
runs without a configuration (a service built in Python, a test) read them from here."""

from __future__ import annotations

__all__ = ["DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT", "DEFAULT_GRACE_PERIOD"]

# Pingora's EXIT_TIMEOUT (the grace period), and the runtime shutdown timeout it uses when unset.
DEFAULT_GRACE_PERIOD = 300.0
DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT = 5.0
