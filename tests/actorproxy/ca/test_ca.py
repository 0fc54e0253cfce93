"""The local CA: the root's files and constraints, site certificates that verify (in-memory TLS
handshakes through the SNI callback), the disk cache, renewal, refused names, trust setups and commands."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
import trio
from cryptography import x509

from actorproxy.ca import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    CaError,
    CertificateService,
    GetCertificateStatistics,
    LocalCA,
    PrepareCertificates,
    SiteCertificates,
    trust_setup,
)
from actorproxy.cli import main
from actors import open_actor_system

DAY = 86400.0


@pytest.fixture(scope="module")
def saved_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    ca = LocalCA.create(["test"])
    ca.save(tmp_path_factory.mktemp("ca"))
    return ca


def certificates(ca: LocalCA, directory: Path, **kwargs: object) -> SiteCertificates:
    return SiteCertificates(
        ca,
        directory,
        validity_period=kwargs.pop("validity_period", 90 * DAY),  # type: ignore[arg-type]
        renewal_period=30 * DAY,
        **kwargs,  # type: ignore[arg-type]
    )


def handshake(ca: LocalCA, certs: SiteCertificates, server_name: str) -> x509.Certificate:
    """A TLS handshake in memory: a client trusting only `ca` asks for `server_name`; returns the leaf."""
    cert, key = certs.default_files()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server_context.sni_callback = certs.sni_callback
    client_context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(to_client, to_server, server_hostname=server_name)
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    done: set[int] = set()
    for _ in range(10):
        for index, side in enumerate((client, server)):
            if index in done:
                continue
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                continue
            done.add(index)
        s_in.write(to_server.read())
        to_client.write(s_out.read())
        if len(done) == 2:
            break
    der = client.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_the_root_is_saved_with_a_private_key_file_and_loads_back(saved_ca: LocalCA) -> None:
    assert saved_ca.path is not None
    assert (saved_ca.path / CA_KEY_FILE).stat().st_mode & 0o777 == 0o600
    loaded = LocalCA.load(saved_ca.path)
    assert loaded.fingerprint == saved_ca.fingerprint
    constraints = loaded.cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    permitted = constraints.value.permitted_subtrees or []
    assert {n.value for n in permitted if isinstance(n, x509.DNSName)} == {"test", "localhost"}
    basic = loaded.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca and basic.path_length == 0


def test_loading_refuses_missing_files_and_a_key_of_another_ca(saved_ca: LocalCA, tmp_path: Path) -> None:
    with pytest.raises(CaError, match="actorproxy ca init"):
        LocalCA.load(tmp_path)
    other = LocalCA.create()
    other.save(tmp_path)
    assert saved_ca.path is not None
    (tmp_path / CA_CERT_FILE).write_bytes((saved_ca.path / CA_CERT_FILE).read_bytes())
    with pytest.raises(CaError, match="is not the key"):
        LocalCA.load(tmp_path)


def test_a_site_certificate_verifies_against_the_ca_by_sni(saved_ca: LocalCA, tmp_path: Path) -> None:
    certs = certificates(saved_ca, tmp_path)
    leaf = handshake(saved_ca, certs, "app.test")
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["app.test"]
    assert (tmp_path / "app.test-key.pem").stat().st_mode & 0o777 == 0o600
    assert certs.statistics().issued == 2  # localhost (the default) and app.test


def test_a_name_outside_the_ca_zones_fails_to_verify(saved_ca: LocalCA, tmp_path: Path) -> None:
    # The name constraints hold even if a certificate is issued for a name outside the zones.
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(saved_ca, certificates(saved_ca, tmp_path), "example.com")


def test_refused_names_get_the_default_certificate(saved_ca: LocalCA, tmp_path: Path) -> None:
    certs = certificates(saved_ca, tmp_path, accept=lambda name: name == "app.test")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"localhost|match"):
        handshake(saved_ca, certs, "other.test")
    assert certs.statistics().refused == 1 and "other.test" not in certs.names()


def test_certificates_are_kept_on_disk_and_renewed_before_they_expire(
    saved_ca: LocalCA, tmp_path: Path
) -> None:
    first = certificates(saved_ca, tmp_path)
    first.install(first.prepare(["app.test", "b.test"]))
    assert first.statistics().issued == 3
    expires = first.not_after("app.test")
    assert expires is not None
    second = certificates(saved_ca, tmp_path)
    second.install(second.prepare(["app.test"]))
    assert second.statistics().issued == 0 and second.statistics().loaded == 2
    assert second.not_after("app.test") == expires
    # 61 days later, 29 are left: less than the renewal period, so it is issued anew.
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=61)
    renewed = second.prepare(["app.test"], now=later)
    assert set(renewed) == {"app.test", "localhost"}
    second.install(renewed)
    new_expiry = second.not_after("app.test")
    assert new_expiry is not None and new_expiry > expires
    assert second.context_for("app.test", now=later) is not None and second.statistics().issued == 2


def test_trust_setups(saved_ca: LocalCA, tmp_path: Path) -> None:
    linux = trust_setup(saved_ca, "linux")
    [file] = linux.files
    assert file.path.startswith("/usr/local/share/ca-certificates/actorproxy-") and file.path.endswith(".crt")
    assert file.text.encode() == saved_ca.cert_pem
    assert linux.commands == ("update-ca-certificates",)
    assert any("Firefox" in note for note in linux.notes)
    assert "security add-trusted-cert" in trust_setup(saved_ca, "macos").commands[0]
    assert "certutil -addstore" in trust_setup(saved_ca, "windows").commands[0]
    written = linux.write(tmp_path)
    assert written[0].read_bytes() == saved_ca.cert_pem


def test_the_ca_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ca"
    assert main(["ca", "init", "--path", str(path), "--zone", "test", "--zone", "box"]) == 0
    assert "actorproxy ca trust" in capsys.readouterr().out
    assert (path / CA_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert main(["ca", "init", "--path", str(path)]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["ca", "trust", "--path", str(path), "--platform", "linux"]) == 0
    assert "update-ca-certificates" in capsys.readouterr().out
    root = tmp_path / "root"
    assert (
        main(["ca", "trust", "--path", str(path), "--platform", "linux", "--apply", "--root", str(root)]) == 0
    )
    out = capsys.readouterr().out
    assert "then run: update-ca-certificates" in out
    assert len(list((root / "usr/local/share/ca-certificates").glob("actorproxy-*.crt"))) == 1
    assert main(["ca", "trust", "--path", str(tmp_path / "none")]) == 1
    assert "actorproxy ca init" in capsys.readouterr().err


async def test_the_certificate_actor_prepares_the_names_and_renews_on_its_interval(
    saved_ca: LocalCA, tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    # A clock that moves only when the test jumps it: preparing runs in a worker thread, which autojump
    # would take for idleness.
    certs = certificates(saved_ca, tmp_path)
    names = ["app.test", "*.wild.test"]
    service = CertificateService(certs, lambda: names, renew_check_interval=3600)
    async with open_actor_system("ca-test") as system:
        await system.spawn(service.child_spec().start, name=service.name)
        assert certs.names() == ["app.test", "localhost"]  # ready means prepared; wildcards wait for SNI
        actor = system.whereis("certificates/actor")
        assert actor is not None
        names.append("new.test")
        await actor.ask(PrepareCertificates())
        assert "new.test" in certs.names()
        names.append("later.test")
        mock_clock.jump(3601)
        await trio.testing.wait_all_tasks_blocked()
        statistics = await actor.ask(GetCertificateStatistics())
        assert statistics.rounds == 3 and "later.test" in certs.names()
