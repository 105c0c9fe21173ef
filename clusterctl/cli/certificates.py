"""What ``up`` checks of its TLS certificate and key before it starts anything.

A certificate mistake found after Ray and the agent started is a traceback and a half-started
cluster; one found by the agent is worse: a certificate file without its chain was written as
the cluster's ``ca_file`` and handed to the agent, which then queued samples forever. So at
start: the key matches the certificate; the certificate is valid now (expired or not yet
valid: refused, naming the date; under 14 days left: a warning); and the file holds its chain
up to a certificate the clients will trust (its own root, or the ``ca_file`` given).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from clusterctl.parsing import BadInput

WARN_BEFORE = timedelta(days=14)


@dataclass(frozen=True)
class Checked:
    expires: datetime
    warnings: tuple[str, ...]


def _certificates(path: str, flag: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise BadInput(flag, f"{path} holds no PEM certificate ({e})") from None


def _public(key: object) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check(cert_path: str, key_path: str, ca_file: str | None, now: datetime) -> Checked:
    """Raises :class:`BadInput` naming ``--tls-cert``, ``--tls-key`` or ``ca_file``."""
    chain = _certificates(cert_path, "--tls-cert")
    leaf = chain[0]
    try:
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise BadInput("--tls-key", f"{key_path} holds no unencrypted PEM private key "
                       f"({e})") from None
    if _public(key.public_key()) != _public(leaf.public_key()):
        raise BadInput("--tls-key", f"{key_path} is not the key of the certificate in "
                       f"{cert_path} ({leaf.subject.rfc4514_string()})")
    if leaf.not_valid_after_utc <= now:
        raise BadInput("--tls-cert", f"{cert_path} expired on "
                       f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: renew it")
    if leaf.not_valid_before_utc > now:
        raise BadInput("--tls-cert", f"{cert_path} is not valid until "
                       f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (is this clock "
                       "right?)")
    for cert, issuer in itertools.pairwise(chain):
        if not _issued_by(cert, issuer):
            raise BadInput("--tls-cert", f"in {cert_path}, {cert.subject.rfc4514_string()} "
                           f"is not issued by the certificate after it "
                           f"({issuer.subject.rfc4514_string()}): put the chain in order")
    top = chain[-1]
    anchors = _certificates(ca_file, "ca_file") if ca_file else []
    if not _issued_by(top, top) and not any(_issued_by(top, a) for a in anchors):
        where = "nor in ca_file" if ca_file else "and no ca_file is set"
        raise BadInput("--tls-cert", f"{cert_path} lacks the certificate of its issuer "
                       f"({top.issuer.rfc4514_string()[:60]}), {where}: clients and agents "
                       "could not verify it; append the chain up to the CA, or set ca_file "
                       "to the CA's certificate")
    left = leaf.not_valid_after_utc - now
    warnings = (f"the TLS certificate {cert_path} expires in {left.days} day(s), on "
                f"{leaf.not_valid_after_utc:%Y-%m-%d}: renew it",) if left < WARN_BEFORE else ()
    return Checked(leaf.not_valid_after_utc, warnings)
