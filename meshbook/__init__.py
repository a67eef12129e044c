"""meshbook: executable runbooks for the Bank-Vaults secret webhook on Istio."""

__version__ = "0.1.0"
