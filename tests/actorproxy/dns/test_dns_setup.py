"""`actorproxy dns setup`: the generated resolver files per platform, written under a temporary root."""

from __future__ import annotations

from pathlib import Path

import pytest

from actorproxy.cli import main
from actorproxy.dns import resolver_setup


def test_linux_gets_a_systemd_resolved_drop_in_routing_only_the_zones() -> None:
    setup = resolver_setup("linux", host="127.0.0.1", port=5353, zones=["test", "localdev"])
    [file] = setup.files
    assert file.path == "/etc/systemd/resolved.conf.d/actorproxy.conf"
    lines = file.text.splitlines()
    assert "[Resolve]" in lines and "DNS=127.0.0.1:5353" in lines and "Domains=~test ~localdev" in lines
    assert setup.commands == ("systemctl restart systemd-resolved",)
    ipv6 = resolver_setup("linux", host="::", port=53, zones=["test"])
    assert "DNS=[::1]:53" in ipv6.files[0].text.splitlines()


def test_macos_gets_one_resolver_file_per_zone_with_the_port() -> None:
    setup = resolver_setup("macos", host="0.0.0.0", port=5353, zones=["test", "dev.internal"])
    assert [file.path for file in setup.files] == ["/etc/resolver/test", "/etc/resolver/dev.internal"]
    body = [line for line in setup.files[0].text.splitlines() if not line.startswith("#")]
    assert body == ["nameserver 127.0.0.1", "port 5353"]


def test_windows_gets_an_nrpt_script_and_a_warning_about_the_port() -> None:
    setup = resolver_setup("windows", host="127.0.0.1", port=5353, zones=["test"])
    [file] = setup.files
    assert 'Add-DnsClientNrptRule -Namespace ".test" -NameServers "127.0.0.1"' in file.text
    assert any("port 53 only" in note for note in setup.notes)
    assert not any(
        "port 53" in note
        for note in resolver_setup("windows", host="127.0.0.1", port=53, zones=["test"]).notes
    )


def test_bad_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="no zone"):
        resolver_setup("linux", host="127.0.0.1", port=53, zones=[])
    with pytest.raises(ValueError, match="unknown platform"):
        resolver_setup("beos", host="127.0.0.1", port=53, zones=["test"])  # type: ignore[arg-type]


def test_apply_writes_the_files_under_the_root(tmp_path: Path) -> None:
    setup = resolver_setup("macos", host="127.0.0.1", port=5353, zones=["test"])
    written = setup.write(tmp_path)
    assert written == [tmp_path / "etc/resolver/test"]
    assert written[0].read_text() == setup.files[0].text
    assert written[0].stat().st_mode & 0o777 == 0o644
    assert [p.name for p in (tmp_path / "etc/resolver").iterdir()] == ["test"]  # no temporary left behind


def test_the_command_prints_or_applies_from_the_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "sites.yaml"
    conf.write_text("dns: {listen: '127.0.0.1:5454', zones: [test, box]}\n")
    assert main(["dns", "setup", "-c", str(conf), "--platform", "linux"]) == 0
    printed = capsys.readouterr().out
    assert "DNS=127.0.0.1:5454" in printed and "Domains=~test ~box" in printed
    root = tmp_path / "root"
    assert main(["dns", "setup", "-c", str(conf), "--platform", "linux", "--apply", "--root", str(root)]) == 0
    drop_in = root / "etc/systemd/resolved.conf.d/actorproxy.conf"
    assert "DNS=127.0.0.1:5454" in drop_in.read_text()
    assert "then run: systemctl restart systemd-resolved" in capsys.readouterr().out
    (tmp_path / "blocked").write_text("a file where a directory is needed")
    status = main(["dns", "setup", "--platform", "macos", "--apply", "--root", str(tmp_path / "blocked")])
    assert status == 1 and "cannot write" in capsys.readouterr().err
