"""openAPIV3Schema of the security.istio.io kinds, as Istio's CRDs ship them (istio.io API reference).

Structural schemas, so the API server prunes unknown fields and checks types and enums exactly as it
does for Istio's own CRDs: `mode: STRIKT` is refused, a misspelt field is dropped. The CEL rules
(`x-kubernetes-validations`) of the upstream CRDs are not reproduced.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

MTLS_MODES = ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]
AUTHORIZATION_ACTIONS = ["ALLOW", "DENY", "AUDIT", "CUSTOM"]


def _strings() -> Schema:
    return {"type": "array", "items": {"type": "string"}}


def _object(properties: dict[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "properties": properties, **extra}


_STRING: Schema = {"type": "string"}
_SELECTOR = _object({"matchLabels": {"type": "object", "additionalProperties": _STRING}})
_TARGET_REF = _object(
    {"group": _STRING, "kind": _STRING, "name": _STRING, "namespace": _STRING}, required=["kind", "name"]
)
_MTLS = _object({"mode": {"type": "string", "enum": MTLS_MODES}})

_SOURCE_FIELDS = (
    "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces", "notNamespaces",
    "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks", "serviceAccounts", "notServiceAccounts",
)  # fmt: skip
_OPERATION_FIELDS = ("hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths")

SPECS: dict[str, Schema] = {
    "PeerAuthentication": _object(
        {
            "selector": _SELECTOR,
            "mtls": _MTLS,
            "portLevelMtls": {"type": "object", "additionalProperties": _MTLS, "minProperties": 1},
        }
    ),
    "AuthorizationPolicy": _object(
        {
            "selector": _SELECTOR,
            "targetRef": _TARGET_REF,
            "targetRefs": {"type": "array", "items": _TARGET_REF},
            "action": {"type": "string", "enum": AUTHORIZATION_ACTIONS},
            "provider": _object({"name": _STRING}),
            "rules": {
                "type": "array",
                "items": _object(
                    {
                        "from": {
                            "type": "array",
                            "items": _object({"source": _object({f: _strings() for f in _SOURCE_FIELDS})}),
                        },
                        "to": {
                            "type": "array",
                            "items": _object({"operation": _object({f: _strings() for f in _OPERATION_FIELDS})}),
                        },
                        "when": {
                            "type": "array",
                            "items": _object(
                                {"key": _STRING, "values": _strings(), "notValues": _strings()}, required=["key"]
                            ),
                        },
                    }
                ),
            },
        }
    ),
    "RequestAuthentication": _object(
        {
            "selector": _SELECTOR,
            "targetRef": _TARGET_REF,
            "targetRefs": {"type": "array", "items": _TARGET_REF},
            "jwtRules": {
                "type": "array",
                "items": _object(
                    {
                        "issuer": _STRING,
                        "audiences": _strings(),
                        "jwksUri": _STRING,
                        "jwks": _STRING,
                        "fromHeaders": {
                            "type": "array",
                            "items": _object({"name": _STRING, "prefix": _STRING}, required=["name"]),
                        },
                        "fromParams": _strings(),
                        "fromCookies": _strings(),
                        "outputPayloadToHeader": _STRING,
                        "forwardOriginalToken": {"type": "boolean"},
                        "outputClaimToHeaders": {
                            "type": "array",
                            "items": _object({"header": _STRING, "claim": _STRING}),
                        },
                        "timeout": _STRING,
                        "spaceDelimitedClaims": _strings(),
                    },
                    required=["issuer"],
                ),
            },
        }
    ),
}


def open_api_v3_schema(kind: str) -> Schema:
    """The CRD's openAPIV3Schema for `kind`: its spec, and a status Istio's controllers write freely."""
    return _object(
        {
            "spec": SPECS[kind],
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        }
    )
