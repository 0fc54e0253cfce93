"""`actorproxy store`'s refusals, in this process: a file without a usable `store` section exits 1 naming
the key path, a usage error exits 2. (The verbs run in real processes in tests/e2e/test_store_cli.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from actorproxy.cli import main


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        ("threads: 1\n", "store: no store section in the file"),
        ("store: {backend: memory}\n", "store.backend: memory lives inside the server's processes"),
        ("store: {backend: sqlite}\n", "store.path: required with backend sqlite"),
        ("store: {backend: redis}\n", "store.backend: redis needs the top-level redis section"),
        ("store: {backend: sqlit, path: x.db}\n", "did you mean 'sqlite'?"),
        (
            "store: {backend: sqlite, path: /x.db, chunk_size: 10}\n",
            "store.chunk_size: expected an int >= 1024",
        ),
    ],
)
def test_a_file_without_a_usable_store_is_refused_with_the_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], yaml: str, expected: str
) -> None:
    conf = tmp_path / "server.yaml"
    conf.write_text(yaml)
    assert main(["store", "-c", str(conf), "stats"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert expected in err and str(conf) in err


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "garbage.db").write_bytes(b"garbage" * 1000)
    conf = tmp_path / "server.yaml"
    conf.write_text(f"store: {{backend: sqlite, path: {tmp_path / 'garbage.db'}}}\n")
    assert main(["store", "stats", "-c", str(conf)]) == 1  # -c after the verb works too
    assert "garbage.db" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args", [["frobnicate"], ["get"], ["put", "k"], ["flush", "--nope"]], ids=["verb", "get", "put", "flag"]
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    conf = tmp_path / "server.yaml"
    conf.write_text(f"store: {{backend: sqlite, path: {tmp_path / 'store.db'}}}\n")
    with pytest.raises(SystemExit) as exited:
        main(["store", "-c", str(conf), *args])
    assert exited.value.code == 2


def test_no_configuration_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["store", "stats"])
    assert exited.value.code == 2
    assert "-c FILE" in capsys.readouterr().err


def test_a_put_of_json_that_does_not_parse_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "server.yaml"
    conf.write_text(f"store: {{backend: sqlite, path: {tmp_path / 'store.db'}}}\n")
    assert main(["store", "-c", str(conf), "put", "k", "{not json", "--json"]) == 1
    assert "VALUE: not JSON" in capsys.readouterr().err
