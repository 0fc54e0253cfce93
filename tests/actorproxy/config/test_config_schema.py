"""The JSON Schema and the key reference are generated from the classes, and the saved copies are current."""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from actorproxy import config
from actorproxy.config import ServerConf, json_schema
from actorproxy.config.__main__ import main
from actorproxy.config._reference import reference_markdown

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_FILE = ROOT / "docs" / "config.schema.json"
DOC_FILE = ROOT / "docs" / "configuration.md"
BEGIN, END = "<!-- BEGIN GENERATED REFERENCE -->\n", "<!-- END GENERATED REFERENCE -->"


def test_the_saved_schema_is_the_generated_one() -> None:
    saved = json.loads(SCHEMA_FILE.read_text())
    assert saved == json_schema(), "regenerate: python -m actorproxy.config schema > docs/config.schema.json"


def test_the_reference_in_the_docs_is_the_generated_one() -> None:
    text = DOC_FILE.read_text()
    generated = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    assert generated == reference_markdown(), (
        "regenerate the block with: python -m actorproxy.config reference"
    )


def test_the_schema_follows_the_classes() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == {field.name for field in attrs.fields(ServerConf)} - {"extra"}
    assert schema["additionalProperties"] is True  # user-defined keys
    threads = schema["properties"]["threads"]
    assert (threads["type"], threads["minimum"], threads["default"]) == ("integer", 1, 1)
    upstream = schema["$defs"]["UpstreamConf"]
    assert upstream["required"] == ["name", "discovery"] and upstream["additionalProperties"] is False
    assert upstream["properties"]["algorithm"]["enum"][:2] == ["round_robin", "random"]
    backend = schema["$defs"]["DiscoveryConf"]["properties"]["static"]["anyOf"][0]["items"]
    assert backend["anyOf"][1] == {"$ref": "#/$defs/StaticBackendConf"}  # a bare "host:port" or a mapping
    permissions = schema["$defs"]["ListenerConf"]["properties"]["permissions"]["anyOf"][0]
    assert permissions["anyOf"][1]["pattern"] == "^0o?[0-7]{1,4}$"
    assert [branch["required"] for branch in schema["$defs"]["HealthCheckConf"]["oneOf"]] == [
        ["tcp"],
        ["http"],
    ]


def test_every_field_of_every_record_is_documented() -> None:
    records = [getattr(config, name) for name in config.__all__ if name.endswith("Conf")]
    records += [config.HttpLimits, config.Forwarding]  # the service's `limits:` and `forwarding:` sections
    assert len(records) >= 18
    for record in records:
        assert record.__doc__, record
        for field in attrs.fields(record):
            assert field.metadata.get("doc"), f"{record.__name__}.{field.name}"
    reference = reference_markdown()
    for record in records:
        for field in attrs.fields(record):
            assert field.name == "extra" or f"| `{field.name}` |" in reference


def test_the_command_line(tmp_path: Path, capsys: object) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("threads: 3\n")
    assert main(["check", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("threads: 0\n")
    assert main(["check", str(bad)]) == 1
    assert main(["schema"]) == 0
    assert main(["nonsense"]) == 2
    out, err = capsys.readouterr()  # type: ignore[attr-defined]
    assert "threads: 3\n" in out and '"$schema"' in out
    assert f"{bad}: threads: expected an int >= 1, got 0" in err and "usage:" in err
