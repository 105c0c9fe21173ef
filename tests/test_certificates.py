"""#31 item 11: TLS mistakes found when ``up`` starts, before anything runs, each named for
what it is (certificates made with trustme); and a CLI told that a certificate expired,
rather than that its CA is not trusted (against a real HTTPS server)."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import trustme
from harness import clusterctl_argv

from clusterctl.cli import certificates
from clusterctl.cli.client import ApiError, Client
from clusterctl.parsing import BadInput

NOW = datetime.now(timezone.utc)


def _write(path: Path, *blobs: trustme.Blob) -> str:
    with open(path, "wb") as f:
        for blob in blobs:
            f.write(blob.bytes())
    return str(path)


def _files(tmp_path: Path, ca: trustme.CA, **dates: datetime) -> tuple[str, str, str]:
    """(certificate with its chain, key, CA) for 127.0.0.1."""
    leaf = ca.issue_cert("127.0.0.1", **dates)
    return (_write(tmp_path / "cert.pem", *leaf.cert_chain_pems),
            _write(tmp_path / "key.pem", leaf.private_key_pem),
            _write(tmp_path / "ca.pem", ca.cert_pem))


def test_a_sound_certificate_passes_and_one_near_its_end_is_warned_of(tmp_path: Path) -> None:
    cert, key, ca = _files(tmp_path, trustme.CA())
    assert certificates.check(cert, key, ca, NOW).warnings == ()
    cert, key, ca = _files(tmp_path, trustme.CA(), not_after=NOW + timedelta(days=5))
    [warning] = certificates.check(cert, key, ca, NOW).warnings
    assert "expires in 4 day(s)" in warning or "expires in 5 day(s)" in warning, warning


@pytest.mark.parametrize(("dates", "says"), [
    ({"not_before": NOW - timedelta(days=30), "not_after": NOW - timedelta(days=1)},
     "expired on"),
    ({"not_before": NOW + timedelta(days=2), "not_after": NOW + timedelta(days=90)},
     "is not valid until"),
])
def test_an_expired_or_future_certificate_is_refused_naming_its_date(
        tmp_path: Path, dates: dict[str, datetime], says: str) -> None:
    cert, key, ca = _files(tmp_path, trustme.CA(), **dates)
    with pytest.raises(BadInput, match=says) as e:
        certificates.check(cert, key, ca, NOW)
    assert e.value.field == "--tls-cert"


def test_a_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert, _, ca_file = _files(tmp_path, ca)
    other = _write(tmp_path / "other.key", ca.issue_cert("127.0.0.1").private_key_pem)
    with pytest.raises(BadInput, match="is not the key of the certificate") as e:
        certificates.check(cert, other, ca_file, NOW)
    assert e.value.field == "--tls-key"


def test_a_certificate_without_its_chain_is_refused_unless_ca_file_completes_it(
        tmp_path: Path) -> None:
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("127.0.0.1")
    key = _write(tmp_path / "key.pem", leaf.private_key_pem)
    alone = _write(tmp_path / "alone.pem", leaf.cert_chain_pems[0])
    root_file = _write(tmp_path / "root.pem", root.cert_pem)
    with pytest.raises(BadInput, match="lacks the certificate of its issuer"):
        certificates.check(alone, key, None, NOW)  # it would become the agents' ca_file
    with pytest.raises(BadInput, match="nor in ca_file"):
        certificates.check(alone, key, root_file, NOW)  # the intermediate is missing
    chained = _write(tmp_path / "chain.pem", *leaf.cert_chain_pems)  # leaf + intermediate
    assert certificates.check(chained, key, root_file, NOW).warnings == ()
    whole = _write(tmp_path / "whole.pem", *leaf.cert_chain_pems, root.cert_pem)
    assert certificates.check(whole, key, None, NOW).warnings == ()
    skipping = _write(tmp_path / "skipping.pem", leaf.cert_chain_pems[0], root.cert_pem)
    with pytest.raises(BadInput, match="is not issued by the certificate after it"):
        certificates.check(skipping, key, root_file, NOW)


def test_up_with_an_expired_certificate_starts_nothing(tmp_path: Path) -> None:
    cert, key, ca = _files(tmp_path, trustme.CA(), not_before=NOW - timedelta(days=9),
                           not_after=NOW - timedelta(days=2))
    data = tmp_path / "data"
    r = subprocess.run([*clusterctl_argv(), "up", "--data-dir", str(data), "--tls-cert", cert,
                        "--tls-key", key, "--simulate-gpus", "1"], capture_output=True,
                       text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CLUSTERCTL_CONFIG":
                            str(tmp_path / "config.toml"), "CLUSTERCTL_CA_FILE": ca})
    assert r.returncode == 2 and r.stderr.startswith("error: --tls-cert:"), r.stderr
    assert "expired on" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not data.exists()  # no database, no Ray, no agent


@pytest.fixture
def expired_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real HTTPS server whose certificate expired yesterday; (URL, its CA file)."""
    cert, key, ca = _files(tmp_path, trustme.CA(), not_before=NOW - timedelta(days=9),
                           not_after=NOW - timedelta(days=1))
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", ca
    server.shutdown()


def test_the_cli_says_a_certificate_expired_not_that_its_ca_is_untrusted(
        expired_server: tuple[str, str]) -> None:
    url, ca = expired_server
    client = Client(url, "token", ca_file=ca, wait_for_s=0)
    with pytest.raises(ApiError) as e:
        client.request("GET", "/v1/whoami")
    assert "has a certificate that has expired (its CA is not the problem)" in str(e.value)
