"""Istio's protocol of a Service port: from its appProtocol, else its name's `<protocol>[-suffix]`, else
sniffed. The connectivity model needs it for a TLS client reaching a port Istio treats as HTTP. Pure."""

from __future__ import annotations

from enum import StrEnum


class PortProtocol(StrEnum):
    """Istio's protocol of a Service port (istio pkg/config/protocol); AUTO means sniffed."""

    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    HTTP_PROXY = "HTTP_PROXY"
    GRPC = "GRPC"
    GRPC_WEB = "GRPC-Web"
    HTTPS = "HTTPS"
    TLS = "TLS"
    TCP = "TCP"
    UDP = "UDP"
    MONGO = "Mongo"
    REDIS = "Redis"
    MYSQL = "MySQL"
    AUTO = "auto-detect"

    @property
    def is_http(self) -> bool:
        return self in _HTTP_FAMILY


_HTTP_FAMILY = frozenset(
    {PortProtocol.HTTP, PortProtocol.HTTP2, PortProtocol.HTTP_PROXY, PortProtocol.GRPC, PortProtocol.GRPC_WEB}
)
_BY_NAME = {p.value.lower(): p for p in PortProtocol if p is not PortProtocol.AUTO}
_K8S_APP_PROTOCOLS = {
    "kubernetes.io/h2c": PortProtocol.HTTP2,
    "kubernetes.io/ws": PortProtocol.HTTP,
    "kubernetes.io/wss": PortProtocol.HTTPS,
}
_WELL_KNOWN_TCP_PORTS = frozenset({25, 53, 3306, 27017})  # never sniffed (server-first protocols)


def port_protocol(port_name: str, app_protocol: str | None = None, port: int = 0) -> PortProtocol:
    """Istio's protocol selection: appProtocol, else the `<protocol>[-suffix]` port name, else sniffing.

    Mirrors istio pkg/config/kube/conversion.go `ConvertProtocol` (case-insensitive prefix).
    """
    name = port_name
    if app_protocol is not None:
        if app_protocol in _K8S_APP_PROTOCOLS:
            return _K8S_APP_PROTOCOLS[app_protocol]
        name = app_protocol
    if name[:8].lower() == "grpc-web":
        return PortProtocol.GRPC_WEB
    protocol = _BY_NAME.get(name.split("-", 1)[0].lower())
    if protocol is None:
        return PortProtocol.TCP if port in _WELL_KNOWN_TCP_PORTS else PortProtocol.AUTO
    return protocol
