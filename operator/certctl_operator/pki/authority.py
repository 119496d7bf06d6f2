"""The signing authority: a CA certificate, its private key and its issuers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from .encoding import certificate_to_pem
from .keys import KeyEncoding, PrivateKey, SignatureHash, private_key_to_pem, signature_hash


@dataclass(frozen=True)
class SigningAuthority:
    """A CA able to sign certificates, CRLs and OCSP responses.

    ``chain`` lists the CA certificate's own issuers, nearest first (it may
    end with a root). Constructing this class performs no checks; use
    :func:`certctl_operator.pki.ca.load_signing_authority` for key pairs that
    come from outside.
    """

    certificate: x509.Certificate
    private_key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def subject(self) -> x509.Name:
        return self.certificate.subject

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def certificate_pem(self) -> str:
        return certificate_to_pem(self.certificate)

    @property
    def chain_pems(self) -> tuple[str, ...]:
        """The CA certificate followed by its issuers, as PEM."""
        return (self.certificate_pem, *(certificate_to_pem(c) for c in self.chain))

    @property
    def hash_algorithm(self) -> SignatureHash:
        return signature_hash(self.private_key)

    @property
    def can_sign_crl(self) -> bool:
        """False when the CA certificate has a keyUsage without cRLSign."""
        try:
            usage = self.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            return True
        return usage.crl_sign

    def authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        """AKI for what this CA signs: from its SKI extension, else from its public key."""
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    def private_key_pem(self, encoding: KeyEncoding = KeyEncoding.PKCS1) -> str:
        return private_key_to_pem(self.private_key, encoding)
