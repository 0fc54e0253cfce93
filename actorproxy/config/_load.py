"""`load_conf`: the server's configuration, from its file and the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ._server import ServerConf

__all__ = ["load_conf"]


def load_conf(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] = os.environ
) -> ServerConf:
    """The server's configuration: the YAML file at `path` (none: the defaults), then the environment.

    Args:
        path: the configuration file (the server's `-c`); None for the defaults alone.
        env: where `ACTORPROXY__...` overrides are read from; pass `{}` for none.

    Raises:
        ConfigError: the file cannot be read, is not valid YAML (file, line and column), or a value from the
            file or the environment is wrong (every problem, with its key path).
    """
    if path is None:
        return ServerConf.from_mapping({}, env=env)
    return ServerConf.load_yaml(path, env=env)
