"""polysecret: one Secrets Store CSI Driver provider for AWS, Azure and Vault."""

__version__ = "0.1.0"
PROVIDER_NAME = "polysecret"
API_VERSION = "v1alpha1"
