"""The columns of each built-in kind in server-side tables, as data (`COLUMNS`).

A column is what `TableColumnDefinition` says (name, type, description, priority: 1 = shown only with
`-o wide`) plus the function computing its cell, so supporting a kind is adding a row of data. Columns,
types and priorities match `pkg/printers/internalversion` of the API server; the kinds it prints with the
default convertor (Role, ClusterRole, CustomResourceDefinition) get `Name` and `Created At`. Literal
descriptions are the printer's own; those taken from API field docs are cut to their first clause.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from meshbook.podstatus import PodSummary, dig, summarize_pod
from meshbook.sandbox.http.tables import cells as cells
from meshbook.sandbox.http.tables import cells_apis as apis
from meshbook.sandbox.http.tables.cells import Cell, Obj, Value

NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources "
    "may allow a client to request the generation of an appropriate name automatically. Name is primarily "
    "intended for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
CREATED_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this "
    "value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for "
    "lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
RESTARTS_DOC = (
    "The number of times the containers in this pod have been restarted and when the last container in "
    "this pod has restarted."
)


@dataclass(frozen=True)
class Column:
    """One column: its `TableColumnDefinition` and how to compute its cell from an object."""

    name: str
    type: str
    description: str
    value: Value
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def _c(name: str, value: Value, doc: str, type: str = "string") -> Column:
    return Column(name, type, doc, value)


def _i(name: str, value: Value, doc: str) -> Column:
    return Column(name, "integer", doc, value)


def _w(name: str, value: Value, doc: str) -> Column:
    """A priority-1 column: kubectl shows it only with `-o wide`."""
    return Column(name, "string", doc, value, 1)


def _f(path: str, default: Cell = "") -> Value:
    """The field at a dotted `path`, or `default` when it is unset."""
    return lambda obj, now: dig(obj, *path.split(".")) or default


def _n(path: str) -> Value:
    """How many entries the list or map at `path` has."""
    return lambda obj, now: len(dig(obj, *path.split(".")) or ())


def _of(function: Any, path: str = "") -> Value:
    """`function` of the field at `path` (of the whole object when `path` is empty)."""
    return lambda obj, now: function(dig(obj, *path.split(".")) if path else obj)


def _ready_of_desired(obj: Obj, now: datetime) -> str:
    """Workloads' `READY`: ready/desired replicas (desired defaults to 1, as the API defaults it)."""
    desired = dig(obj, "spec", "replicas")
    return f"{dig(obj, 'status', 'readyReplicas') or 0}/{1 if desired is None else desired}"


_last_summary: list[tuple[int, datetime, PodSummary]] = []


def _summary(obj: Obj, now: datetime) -> PodSummary:
    """READY, STATUS and RESTARTS share one summary per row (it is the costly part of a pod Table)."""
    if _last_summary and _last_summary[0][0] == id(obj) and _last_summary[0][1] is now:
        return _last_summary[0][2]
    summary = summarize_pod(obj)
    _last_summary[:] = [(id(obj), now, summary)]
    return summary


def _pod_ready(obj: Obj, now: datetime) -> str:
    return _summary(obj, now).ready


def _pod_status(obj: Obj, now: datetime) -> str:
    return _summary(obj, now).status


def _pod_restarts(obj: Obj, now: datetime) -> str:
    return cells.pod_restarts(_summary(obj, now), now)


def _bound(value: Value) -> Value:
    """PVC cells shown only once the claim is bound to a volume."""
    return lambda obj, now: value(obj, now) if dig(obj, "spec", "volumeName") else ""


def _role_ref(obj: Obj, now: datetime) -> str:
    return f"{dig(obj, 'roleRef', 'kind') or ''}/{dig(obj, 'roleRef', 'name') or ''}"


def _config_data(obj: Obj, now: datetime) -> int:
    return len(obj.get("data") or ()) + len(obj.get("binaryData") or ())


NAME = Column("Name", "string", NAME_DOC, _f("metadata.name"), format="name")
AGE = _c("Age", lambda obj, now: cells.age(dig(obj, "metadata", "creationTimestamp"), now), CREATED_DOC)
CREATED_AT = _c("Created At", lambda obj, now: cells.created_at(obj), CREATED_DOC, "date")
CONTAINERS = _w("Containers", _of(cells.containers_cells), "Names of each container in the template.")
IMAGES = _w("Images", _of(cells.container_images), "Images referenced by each container in the template.")
SELECTOR = _w("Selector", _of(cells.format_selector, "spec.selector"), "A label query over pods.")
READY = _c("Ready", _ready_of_desired, "Number of the pod with ready state")
WEBHOOKS_DOC = "Webhooks indicates the number of webhooks registered in this configuration"
WEBHOOKS = (NAME, _i("Webhooks", _n("webhooks"), WEBHOOKS_DOC), AGE)
DEFAULT = (NAME, CREATED_AT)


def _binding(kind: str) -> tuple[Column, ...]:
    return (
        NAME,
        _c("Role", _role_ref, "RoleRef can reference a Role in the current namespace or a ClusterRole."),
        AGE,
        _w("Users", cells.subjects("User"), f"Users in the {kind}"),
        _w("Groups", cells.subjects("Group"), f"Groups in the {kind}"),
        _w("ServiceAccounts", cells.subjects("ServiceAccount"), f"ServiceAccounts in the {kind}"),
    )


JOB_STATUS = _c("Status", apis.job_status, "Status of the job.")

COLUMNS: dict[str, tuple[Column, ...]] = {
    "Pod": (
        NAME,
        _c("Ready", _pod_ready, "The aggregate readiness state of this pod for accepting traffic."),
        _c("Status", _pod_status, "The aggregate status of the containers in this pod."),
        _c("Restarts", _pod_restarts, RESTARTS_DOC),
        AGE,
        _w("IP", cells.pod_ip, "podIP address allocated to the pod."),
        _w("Node", _f("spec.nodeName", "<none>"), "NodeName indicates in which node this pod is scheduled."),
        _w("Nominated Node", _f("status.nominatedNodeName", "<none>"), "The node the pod preempted pods on."),
        _w("Readiness Gates", _of(cells.readiness_gates), "Readiness gates that are true, of all."),
    ),
    "Deployment": (
        NAME,
        READY,
        _c("Up-to-date", _f("status.updatedReplicas", 0), "Pods that have the desired template spec."),
        _c("Available", _f("status.availableReplicas", 0), "Total number of available pods."),
        AGE,
        CONTAINERS,
        IMAGES,
        _w("Selector", _of(cells.selector_string, "spec.selector"), "Label selector for pods."),
    ),
    "ReplicaSet": (
        NAME,
        _i("Desired", _f("spec.replicas", 1), "Replicas is the number of desired pods."),
        _i("Current", _f("status.replicas", 0), "The most recently observed number of pods."),
        _i("Ready", _f("status.readyReplicas", 0), "The number of ready pods."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ),
    "StatefulSet": (NAME, READY, AGE, CONTAINERS, IMAGES),
    "DaemonSet": (
        NAME,
        _i("Desired", _f("status.desiredNumberScheduled", 0), "Nodes that should run the daemon pod."),
        _i("Current", _f("status.currentNumberScheduled", 0), "Nodes running the daemon pod."),
        _i("Ready", _f("status.numberReady", 0), "Nodes running a ready daemon pod."),
        _i("Up-to-date", _f("status.updatedNumberScheduled", 0), "Nodes running the updated daemon pod"),
        _i("Available", _f("status.numberAvailable", 0), "Nodes running an available daemon pod."),
        _c("Node Selector", _of(cells.format_labels, "spec.template.spec.nodeSelector"), "Node selector."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ),
    "Service": (
        NAME,
        _c("Type", _f("spec.type", "ClusterIP"), "type determines how the Service is exposed."),
        _c("Cluster-IP", cells.cluster_ip, "clusterIP is the IP address of the service."),
        _c("External-IP", _of(cells.service_external_ip), "externalIPs of this service."),
        _c("Port(s)", _of(cells.service_ports), "The list of ports that are exposed by this service."),
        AGE,
        _w(
            "Selector",
            _of(cells.format_labels, "spec.selector"),
            "Route traffic to pods matching this selector.",
        ),
    ),
    "Endpoints": (NAME, _c("Endpoints", _of(cells.endpoints_cell), "The set of all endpoints."), AGE),
    "Namespace": (NAME, _c("Status", _f("status.phase", "Active"), "The status of the namespace"), AGE),
    "ServiceAccount": (
        NAME,
        _c("Secrets", _n("secrets"), "Secrets pods of this ServiceAccount may use."),
        AGE,
    ),
    "Secret": (
        NAME,
        _c("Type", _f("type", "Opaque"), "Used to facilitate programmatic handling of secret data."),
        _c("Data", _n("data"), "Data contains the secret data."),
        AGE,
    ),
    "ConfigMap": (NAME, _c("Data", _config_data, "Data contains the configuration data."), AGE),
    "Event": (
        _c("Last Seen", cells.event_last_seen, "The time at which the most recent occurrence was recorded."),
        _c("Type", _f("type"), "Type of this event (Normal, Warning), new types could be added in the future"),
        _c("Reason", _f("reason"), "A short, machine understandable reason for the transition."),
        _c("Object", cells.event_object, "The object that this event is about."),
        _w("Subobject", cells.event_field_path, "The piece of the object the event is about."),
        _w("Source", cells.event_source, "The component reporting this event."),
        _c("Message", cells.event_message, "A human-readable description of the status of this operation."),
        _w("First Seen", cells.event_first_seen, "The time at which the event was first recorded."),
        _w("Count", cells.event_count, "The number of times this event has occurred."),
        Column("Name", "string", NAME_DOC, _f("metadata.name"), 1, "name"),
    ),
    "PersistentVolumeClaim": (
        NAME,
        _c("Status", cells.claim_phase, "phase represents the current phase of PersistentVolumeClaim."),
        _c("Volume", _f("spec.volumeName"), "The PersistentVolume backing this claim."),
        _c("Capacity", _bound(_f("status.capacity.storage")), "The capacity of the underlying volume."),
        _c(
            "Access Modes",
            _bound(_of(cells.access_modes, "status.accessModes")),
            "Access modes of the volume.",
        ),
        _c("StorageClass", cells.storage_class, "StorageClass of the pvc"),
        _c(
            "VolumeAttributesClass",
            _f("spec.volumeAttributesClassName", "<unset>"),
            "VolumeAttributesClass of the pvc",
        ),
        AGE,
        _w("VolumeMode", _f("spec.volumeMode", "<unset>"), "volumeMode of the claim."),
    ),
    "Node": (
        NAME,
        _c("Status", cells.node_status, "The status of the node"),
        _c("Roles", cells.node_roles, "The roles of the node"),
        AGE,
        _c("Version", _f("status.nodeInfo.kubeletVersion"), "Kubelet Version reported by the node."),
        _w("Internal-IP", cells.node_address("InternalIP"), "List of addresses reachable to the node."),
        _w("External-IP", cells.node_address("ExternalIP"), "List of addresses reachable to the node."),
        _w("OS-Image", _f("status.nodeInfo.osImage", "<unknown>"), "OS Image reported by the node."),
        _w("Kernel-Version", _f("status.nodeInfo.kernelVersion", "<unknown>"), "Kernel Version of the node."),
        _w(
            "Container-Runtime",
            _f("status.nodeInfo.containerRuntimeVersion", "<unknown>"),
            "Container runtime.",
        ),
    ),
    "RoleBinding": _binding("roleBinding"),
    "ClusterRoleBinding": _binding("clusterRoleBinding"),
    "MutatingWebhookConfiguration": WEBHOOKS,
    "ValidatingWebhookConfiguration": WEBHOOKS,
    "Role": DEFAULT,
    "ClusterRole": DEFAULT,
    "CustomResourceDefinition": DEFAULT,
    "ReplicationController": (
        NAME,
        _i("Desired", _f("spec.replicas", 1), "Replicas is the number of desired replicas."),
        _i("Current", _f("status.replicas", 0), "Replicas is the most recently observed number of replicas."),
        _i("Ready", _f("status.readyReplicas", 0), "The number of ready replicas for this replication controller."),
        AGE,
        CONTAINERS,
        IMAGES,
        _w("Selector", _of(cells.format_labels, "spec.selector"), "Selector is a label query over pods."),
    ),
    "Job": (
        NAME,
        JOB_STATUS,
        _c("Completions", apis.job_completions, "The number of pods which reached phase Succeeded."),
        _c("Duration", apis.job_duration, "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        _w("Selector", _of(cells.format_selector, "spec.selector"), "A label query over pods."),
    ),
    "Ingress": (
        NAME,
        _c("Class", apis.ingress_class, "The name of the IngressClass resource that should be used."),
        _c("Hosts", apis.ingress_hosts, "Hosts that incoming requests are matched against."),
        _c("Address", apis.ingress_address, "Address is a list containing ingress points for the load-balancer"),
        _c("Ports", apis.ingress_ports, "Ports of TLS configurations that open"),
        AGE,
    ),
    "IngressClass": (
        NAME,
        _c("Controller", _f("spec.controller"), "Controller that is responsible for handling this class."),
        _c("Parameters", apis.ingress_class_parameters, "A reference to a resource with additional parameters."),
        AGE,
    ),
    "APIService": (
        NAME,
        _c("Service", apis.apiservice_service, "The reference to the service that hosts this API endpoint."),
        _c("Available", apis.apiservice_available, "Whether this service is available."),
        AGE,
    ),
}

#: Columns a server of an older minor version prints: kind -> (first minor with today's, columns dropped
#: before it). `kubectl get jobs` gained STATUS in 1.30.
SINCE_MINOR: dict[str, tuple[int, tuple[Column, ...]]] = {"Job": (30, (JOB_STATUS,))}


def columns_of(kind: str, minor: int) -> tuple[Column, ...] | None:
    """The built-in columns of `kind` as a server of Kubernetes 1.`minor` prints them (None: no printer)."""
    columns = COLUMNS.get(kind)
    since, added = SINCE_MINOR.get(kind, (0, ()))
    if columns is not None and minor < since:
        columns = tuple(c for c in columns if c not in added)
    return columns
