"""Cells of the batch, networking and apiregistration kinds (Jobs, Ingresses, IngressClasses,
APIServices), computed as the API server's printers compute them (server-side, so never cut short)."""

from __future__ import annotations

from datetime import UTC, datetime

from meshbook.podstatus import dig, parse_time
from meshbook.sandbox.http.tables.cells import Obj, human_duration

#: A Job's STATUS cell: the first condition (type, True) it has, in the printer's order.
JOB_STATUS_ORDER = (("Complete", "Complete"), ("Failed", "Failed"))
JOB_LATER_STATUS = (("Suspended", "Suspended"), ("FailureTarget", "FailureTarget"))


def _has_condition(obj: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in dig(obj, "status", "conditions") or [])


def job_status(obj: Obj, now: datetime) -> str:
    """printJob's STATUS: Complete, Failed, Terminating, Suspended, FailureTarget, else Running."""
    for kind, text in JOB_STATUS_ORDER:
        if _has_condition(obj, kind):
            return text
    if dig(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    for kind, text in JOB_LATER_STATUS:
        if _has_condition(obj, kind):
            return text
    return "Running"


def job_completions(obj: Obj, now: datetime) -> str:
    """`1/1`, `0/3`; without completions `0/1`, or `0/1 of 3` when parallel."""
    succeeded = dig(obj, "status", "succeeded") or 0
    completions = dig(obj, "spec", "completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = dig(obj, "spec", "parallelism") or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def job_duration(obj: Obj, now: datetime) -> str:
    """Start to completion, or start to now while it runs; empty before it starts."""
    start = parse_time(dig(obj, "status", "startTime"))
    if start is None:
        return ""
    end = parse_time(dig(obj, "status", "completionTime"))
    if end is None:
        return human_duration((now if now.tzinfo else now.replace(tzinfo=UTC)) - start)
    return human_duration(end - start)


def ingress_class(obj: Obj, now: datetime) -> str:
    return str(dig(obj, "spec", "ingressClassName") or "<none>")


def ingress_hosts(obj: Obj, now: datetime) -> str:
    """formatHosts: the first three rule hosts, `*` when none; `+ N more...` counts rules, not hosts."""
    rules = dig(obj, "spec", "rules") or []
    hosts: list[str] = []
    more = False
    for rule in rules:
        more = more or len(hosts) == 3
        if not more and rule.get("host"):
            hosts.append(str(rule["host"]))
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 3} more..." if more else text


def ingress_address(obj: Obj, now: datetime) -> str:
    ingress = dig(obj, "status", "loadBalancer", "ingress") or []
    return ",".join(sorted({str(address) for i in ingress if (address := i.get("ip") or i.get("hostname"))}))


def ingress_ports(obj: Obj, now: datetime) -> str:
    return "80, 443" if dig(obj, "spec", "tls") else "80"


def ingress_class_parameters(obj: Obj, now: datetime) -> str:
    parameters = dig(obj, "spec", "parameters")
    if not parameters:
        return "<none>"
    kind = str(parameters.get("kind", ""))
    if parameters.get("apiGroup"):
        kind += f".{parameters['apiGroup']}"
    return f"{kind}/{parameters.get('name', '')}"


def apiservice_service(obj: Obj, now: datetime) -> str:
    service = dig(obj, "spec", "service")
    return f"{service.get('namespace', '')}/{service.get('name', '')}" if service else "Local"


def apiservice_available(obj: Obj, now: datetime) -> str:
    for condition in dig(obj, "status", "conditions") or []:
        if condition.get("type") == "Available":
            status = str(condition.get("status", ""))
            reason = condition.get("reason")
            return f"{status} ({reason})" if status != "True" and reason else status
    return "Unknown"
