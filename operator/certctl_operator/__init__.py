"""certctl-operator: TLS certificates issued, renewed, revoked and announced inside Kubernetes."""

__version__ = "0.1.0"

API_GROUP = "certctl.io"
API_VERSION = "v1alpha1"
