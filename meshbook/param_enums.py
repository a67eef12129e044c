"""The parameters' choices as enums, apart from the pydantic models in `params.py`.

The sandbox server needs only these (its speed, the sidecar mode); importing them from here keeps
pydantic and the parameter models (about 11 MB resident) out of its process. `params.py` re-exports them.
"""

from __future__ import annotations

from enum import StrEnum


class Target(StrEnum):
    SANDBOX = "sandbox"
    LIVE = "live"


class Mode(StrEnum):
    """`apply` changes the cluster; `check` only records what is there against the expectations."""

    APPLY = "apply"
    CHECK = "check"


class RunbookName(StrEnum):
    PREREQ_ISTIO = "00-prereq-istio"
    PREREQ_BANK_VAULTS = "01-prereq-bank-vaults"
    SCENARIO_1 = "10-scenario-1"
    SCENARIO_2 = "20-scenario-2"
    SCENARIO_3 = "30-scenario-3"
    AUDIT = "40-audit"  # read-only; run by `meshbook audit`, not by default


DEFAULT_RUNBOOKS: tuple[RunbookName, ...] = tuple(r for r in RunbookName if r is not RunbookName.AUDIT)
"""What `meshbook run` runs unless told otherwise: the prerequisites and the guide's scenarios."""


class SidecarMode(StrEnum):
    """How Istio puts pods in the mesh: istio-init container, Istio CNI, or native sidecar containers."""

    CLASSIC = "classic"
    CNI = "cni"
    NATIVE = "native"


class IstioInstallMethod(StrEnum):
    ISTIOCTL = "istioctl"
    HELM = "helm"


class PeerAuthenticationMode(StrEnum):
    STRICT = "STRICT"
    PERMISSIVE = "PERMISSIVE"
    DISABLE = "DISABLE"


class FailurePolicy(StrEnum):
    IGNORE = "Ignore"
    FAIL = "Fail"


class PermissiveScope(StrEnum):
    """Where the webhook's PERMISSIVE exception applies: the whole workload or only its port 8443."""

    WORKLOAD = "workload"
    PORT = "port"


class SandboxSpeed(StrEnum):
    """How fast the sandbox's clock runs; the one home of this choice, read by the sandbox too."""

    INSTANT = "instant"
    REALISTIC = "realistic"
