"""The sandbox's Vault: a real OpenBao server, initialised, unsealed and configured the way Bank-Vaults does."""
