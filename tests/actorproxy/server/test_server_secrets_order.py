"""Secrets are read before the server gives up its privileges, and a reload after that still has the key.

Without root the switch cannot happen for real, so the order is observed: the key file is read when the
configuration is loaded (`Server.from_args`), before `run_forever` calls `drop_privileges`; then the key file
becomes unreadable, as a root-only file is once the server runs as `user`, and the reload's load still
resolves the secret.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from actorproxy.config import _references, load_conf
from actorproxy.server import Server, _server
from actorproxy.settings import Keyring, SettingsFile, _keys, generate_key, write_key_file

YAML = """
user: "{uid}"
services:
  - name: edge
    listeners: [{{address: "127.0.0.1:0"}}]
    routes:
      - upstream: app
        request_headers:
          set: {{Authorization: "${{secret:UPSTREAM_TOKEN}}"}}
upstreams:
  - name: app
    discovery: {{static: ["127.0.0.1:9"]}}
"""


class _Stop(Exception):
    pass


def test_the_key_file_is_read_before_privileges_drop_and_remembered_for_reloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key()
    write_key_file(tmp_path / "actorproxy.key", Keyring(key))
    SettingsFile.read(tmp_path / "actorproxy.env").with_value(
        "UPSTREAM_TOKEN", "tok-pr1v-0rder", Keyring(key).encrypter()
    ).save()
    path = tmp_path / "proxy.yaml"
    path.write_text(YAML.format(uid=0))
    monkeypatch.delenv("ACTORPROXY_KEY", raising=False)
    events: list[str] = []
    read_key_file = _references.read_key_file

    def reading(where: str) -> Keyring:
        events.append("key file read")
        return read_key_file(where)

    def dropping(user: str | None, group: str | None) -> None:
        events.append(f"privileges dropped to user {user}")
        raise _Stop

    monkeypatch.setattr(_references, "read_key_file", reading)
    monkeypatch.setattr(_server, "drop_privileges", dropping)
    monkeypatch.setattr(Server, "bind_listeners", lambda self: {})
    server = Server.from_args(["-c", str(path)])
    with pytest.raises(_Stop):
        server.run_forever()
    assert events == ["key file read", "privileges dropped to user 0"]
    auth = server.configuration.services[0].routes[0].request_headers.set["Authorization"]
    assert auth == "tok-pr1v-0rder"

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_keys, "open", denied, raising=False)
    reloaded = load_conf(path)  # what the reload hook runs
    assert reloaded.services[0].routes[0].request_headers.set["Authorization"] == "tok-pr1v-0rder"
