"""The operator's HTTP endpoints: health, metrics, and the PKI (CRL, OCSP)."""
