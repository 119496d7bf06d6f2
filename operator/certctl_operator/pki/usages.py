"""Certificate usages, named the cert-manager way.

Names map either to a keyUsage bit or to an extendedKeyUsage purpose. Matching
is case-insensitive and ignores surrounding spaces; ``signing`` is an alias of
``digital signature`` and ``s/mime`` an alias of ``email protection``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from .errors import InvalidRequestError

#: Canonical key usage name -> :class:`x509.KeyUsage` constructor argument.
KEY_USAGES: Mapping[str, str] = MappingProxyType(
    {
        "digital signature": "digital_signature",
        "content commitment": "content_commitment",
        "key encipherment": "key_encipherment",
        "data encipherment": "data_encipherment",
        "key agreement": "key_agreement",
        "cert sign": "key_cert_sign",
        "crl sign": "crl_sign",
        "encipher only": "encipher_only",
        "decipher only": "decipher_only",
    }
)

#: Canonical extended key usage name -> purpose OID.
EXTENDED_KEY_USAGES: Mapping[str, ObjectIdentifier] = MappingProxyType(
    {
        "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
        "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
        "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
        "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
        "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
        "ipsec end system": ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
        "ipsec tunnel": ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
        "ipsec user": ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
        "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
        "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
        "microsoft sgc": ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
        "netscape sgc": ObjectIdentifier("2.16.840.1.113730.4.1"),
    }
)

ALIASES: Mapping[str, str] = MappingProxyType({"signing": "digital signature", "s/mime": "email protection"})

_ORDER = {name: index for index, name in enumerate([*KEY_USAGES, *EXTENDED_KEY_USAGES])}
_EKU_NAMES = {oid: name for name, oid in EXTENDED_KEY_USAGES.items()}


def known_usage_names() -> list[str]:
    return [*KEY_USAGES, *EXTENDED_KEY_USAGES, *ALIASES]


def canonical_usage(name: str) -> str:
    """Canonical spelling of one usage name; raise InvalidRequestError if unknown."""
    key = " ".join(name.strip().lower().split())
    key = ALIASES.get(key, key)
    if key in KEY_USAGES or key in EXTENDED_KEY_USAGES:
        return key
    raise InvalidRequestError(f"unknown usage {name!r}; known usages: {', '.join(known_usage_names())}")


def normalize_usages(names: Iterable[str]) -> tuple[str, ...]:
    """Canonical names, de-duplicated, key usages first then extended ones (stable order)."""
    unique = {canonical_usage(name) for name in names}
    return tuple(sorted(unique, key=lambda n: _ORDER[n]))


def build_key_usage(usages: Iterable[str]) -> x509.KeyUsage:
    """KeyUsage extension value for the key usage names found in ``usages``."""
    flags = dict.fromkeys(KEY_USAGES.values(), False)
    for name in usages:
        attribute = KEY_USAGES.get(name)
        if attribute is not None:
            flags[attribute] = True
    if (flags["encipher_only"] or flags["decipher_only"]) and not flags["key_agreement"]:
        raise InvalidRequestError('"encipher only" and "decipher only" require "key agreement"')
    return x509.KeyUsage(**flags)


def build_extended_key_usage(usages: Iterable[str]) -> x509.ExtendedKeyUsage | None:
    """ExtendedKeyUsage extension value, or None when no extended usage is named."""
    oids = [EXTENDED_KEY_USAGES[name] for name in usages if name in EXTENDED_KEY_USAGES]
    return x509.ExtendedKeyUsage(oids) if oids else None


def usages_from_extensions(
    key_usage: x509.KeyUsage | None, extended: x509.ExtendedKeyUsage | None
) -> tuple[str, ...]:
    """Canonical usage names present in a certificate; unknown purposes appear as dotted OIDs."""
    names: list[str] = []
    if key_usage is not None:
        for name, attribute in KEY_USAGES.items():
            if attribute in ("encipher_only", "decipher_only") and not key_usage.key_agreement:
                continue
            if getattr(key_usage, attribute):
                names.append(name)
    if extended is not None:
        names.extend(_EKU_NAMES.get(oid, oid.dotted_string) for oid in extended)
    return tuple(names)
