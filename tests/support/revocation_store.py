"""An issuer's revocation list and issued serials as they are stored, read and written from outside.

The list is the issuer's status (the journal, ``revokedCertificates``) plus
its revocation-list ConfigMaps ``<issuer>-revoked-00`` ... ``-15`` (the
archive); the issued serials are in ``<issuer>-issued-NN``. The format is
spelled out here again, from docs/revocation.md, rather than imported from the
operator: these helpers read what an administrator reads with kubectl, and
write archives in bulk for the scale tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certctl_operator.pki import (
    CertificateRequest,
    KeyAlgorithm,
    KeySpec,
    SigningAuthority,
    create_self_signed_ca,
    generate_private_key,
    issue_certificate,
    load_signing_authority,
)
from tests.support.pki_cluster import get

SHARD_COUNT = 16
REVOKED_KEY = "revoked.v1"
ISSUED_KEY = "issued.v1"
REASON_CODES = {
    "unspecified": 0,
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "privilegeWithdrawn": 9,
}


@dataclass(frozen=True)
class Listed:
    """One entry of an archive."""

    serial: str
    revoked_at: datetime
    reason: str
    not_after: datetime | None
    crl_number: int | None


def even_hex(serial: int) -> str:
    digits = f"{serial:x}"
    return digits if len(digits) % 2 == 0 else "0" + digits


def shard_of(serial: str) -> int:
    return int.from_bytes(hashlib.sha256(bytes.fromhex(serial)).digest()[:4], "big") % SHARD_COUNT


def shard_name(issuer: str, store: str, index: int) -> str:
    return f"{issuer}-{'revoked' if store == REVOKED_KEY else 'issued'}-{index:02d}"


def _epoch(value: datetime | None) -> str:
    return "-" if value is None else str(int(value.timestamp()))


def _time(text: str) -> datetime | None:
    return None if text == "-" else datetime.fromtimestamp(int(text), UTC)


def encode(entries: Iterable[Listed]) -> str:
    return "".join(
        f"{e.serial},{_epoch(e.revoked_at)},{REASON_CODES[e.reason]},{_epoch(e.not_after)},"
        f"{'-' if e.crl_number is None else e.crl_number}\n"
        for e in entries
    )


def decode(text: str) -> dict[str, Listed]:
    names = {code: name for name, code in REASON_CODES.items()}
    entries = {}
    for line in text.splitlines():
        serial, revoked_at, code, not_after, number = line.split(",")
        revoked = _time(revoked_at)
        assert revoked is not None, line
        entries[serial] = Listed(
            serial, revoked, names[int(code)], _time(not_after), None if number == "-" else int(number)
        )
    return entries


def shard_texts(kube: Any, namespace: str, issuer: str, store: str) -> dict[str, str]:
    """ConfigMap name -> the stored text, for the shards of ``store`` that exist."""
    core = client.CoreV1Api(kube)
    texts = {}
    for index in range(SHARD_COUNT):
        name = shard_name(issuer, store, index)
        try:
            configmap = core.read_namespaced_config_map(name, namespace)
        except ApiException as error:
            if error.status == 404:
                continue
            raise
        texts[name] = (configmap.data or {}).get(store, "")
    return texts


def archived(kube: Any, namespace: str, issuer: str) -> dict[str, Listed]:
    """The archive: every entry in the issuer's revocation-list ConfigMaps, by serial."""
    entries: dict[str, Listed] = {}
    for text in shard_texts(kube, namespace, issuer, REVOKED_KEY).values():
        entries.update(decode(text))
    return entries


def journal(kube: Any, namespace: str, issuer: str) -> list[dict[str, Any]]:
    """The journal: ``status.revokedCertificates`` of the issuer."""
    status = get(kube, namespace, "issuers", issuer).get("status") or {}
    return list(status.get("revokedCertificates") or [])


def listed_serials(kube: Any, namespace: str, issuer: str) -> dict[str, int | None]:
    """serial -> CRL number that first listed it, over journal and archive.

    Reads the journal before the archive, as the operator does: an entry on
    its way from one to the other is in at least one of the two places.
    """
    found = {e["serialNumber"]: e.get("crlNumber") for e in journal(kube, namespace, issuer)}
    for serial, entry in archived(kube, namespace, issuer).items():
        found.setdefault(serial, entry.crl_number)
    return found


def is_listed(kube: Any, namespace: str, issuer: str, serial: str) -> bool:
    """Whether ``serial`` is on the list: in the journal, else in the one shard it hashes to."""
    if any(e["serialNumber"] == serial for e in journal(kube, namespace, issuer)):
        return True
    name = shard_name(issuer, REVOKED_KEY, shard_of(serial))
    try:
        configmap = client.CoreV1Api(kube).read_namespaced_config_map(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return serial in decode((configmap.data or {}).get(REVOKED_KEY, ""))


def issued_serials(kube: Any, namespace: str, issuer: str) -> dict[str, datetime | None]:
    """The issuer's issued-serials store: serial -> notAfter."""
    serials: dict[str, datetime | None] = {}
    for text in shard_texts(kube, namespace, issuer, ISSUED_KEY).values():
        for line in text.splitlines():
            serial, not_after = line.split(",")
            serials[serial] = _time(not_after)
    return serials


def write_archive(
    kube: Any, namespace: str, issuer_body: Mapping[str, Any], entries: Iterable[Listed]
) -> int:
    """Create the issuer's revocation-list ConfigMaps holding ``entries``; returns how many were made."""
    metadata = issuer_body["metadata"]
    by_shard: dict[int, list[Listed]] = {}
    for entry in entries:
        by_shard.setdefault(shard_of(entry.serial), []).append(entry)
    core = client.CoreV1Api(kube)
    for index, shard in sorted(by_shard.items()):
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(
                    name=shard_name(metadata["name"], REVOKED_KEY, index),
                    owner_references=[
                        client.V1OwnerReference(
                            api_version="certctl.io/v1alpha1",
                            kind="Issuer",
                            name=metadata["name"],
                            uid=metadata["uid"],
                        )
                    ],
                ),
                data={REVOKED_KEY: encode(shard)},
            ),
        )
    return len(by_shard)


# --------------------------------------------------------------------------- a CA the test holds the key of


@dataclass(frozen=True)
class HeldCA:
    """A CA key pair stored as an issuer's Secret, kept by the test to sign certificates itself."""

    certificate_pem: str
    authority: SigningAuthority

    def sign(self, common_name: str, lifetime: timedelta = timedelta(days=1)) -> x509.Certificate:
        """A leaf certificate this CA signed without the operator: no ManagedCertificate knows it."""
        now = datetime.now(UTC)
        request = CertificateRequest(
            common_name=common_name, dns_names=(f"{common_name}.example.test",), duration=lifetime
        )
        key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
        return issue_certificate(request, key, self.authority, now).certificate


def make_held_ca(kube: Any, namespace: str, secret: str, common_name: str) -> HeldCA:
    now = datetime.now(UTC)
    ca = create_self_signed_ca(
        common_name, KeySpec(KeyAlgorithm.ECDSA, 256), timedelta(days=30), now - timedelta(hours=1)
    )
    client.CoreV1Api(kube).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=secret),
            type="kubernetes.io/tls",
            string_data={"tls.crt": ca.certificate_pem, "tls.key": ca.private_key_pem},
        ),
    )
    return HeldCA(ca.certificate_pem, load_signing_authority(ca.certificate_pem, ca.private_key_pem, now))
