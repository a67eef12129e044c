"""The scenario's toggles: the five parameters the panel lets a person flip, read from and written to params."""

from __future__ import annotations

from dataclasses import dataclass, fields

from meshbook.params import FailurePolicy, RunbookParams, SidecarMode


@dataclass(frozen=True)
class Toggles:
    """What the panel's controls show; each field names the parameter it stands for."""

    sidecar_mode: SidecarMode = SidecarMode.CLASSIC
    """istio.sidecar_mode"""
    webhook_permissive: bool = True
    """bank_vaults.webhook_permissive"""
    vault_permissive: bool = True
    """vault.permissive"""
    failure_policy: FailurePolicy = FailurePolicy.IGNORE
    """bank_vaults.pods_failure_policy"""
    istio_enabled: bool = True
    """vault.istio_enabled"""

    @classmethod
    def of(cls, params: RunbookParams) -> Toggles:
        """The toggles as the parameters set them."""
        return cls(
            sidecar_mode=params.istio.sidecar_mode,
            webhook_permissive=params.bank_vaults.webhook_permissive,
            vault_permissive=params.vault.permissive,
            failure_policy=params.bank_vaults.pods_failure_policy,
            istio_enabled=params.vault.istio_enabled,
        )

    def apply_to(self, params: RunbookParams) -> RunbookParams:
        """`params` with these toggles (a new frozen object; everything else unchanged)."""
        istio = params.istio.model_copy(update={"sidecar_mode": self.sidecar_mode})
        bank_vaults = params.bank_vaults.model_copy(
            update={"webhook_permissive": self.webhook_permissive, "pods_failure_policy": self.failure_policy}
        )
        vault = params.vault.model_copy(
            update={"permissive": self.vault_permissive, "istio_enabled": self.istio_enabled}
        )
        return params.model_copy(update={"istio": istio, "bank_vaults": bank_vaults, "vault": vault})

    def changed(self, other: Toggles) -> list[str]:
        """Names of the fields that differ from `other`."""
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]
