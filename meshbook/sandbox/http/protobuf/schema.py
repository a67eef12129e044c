"""The protobuf schema of the kinds kubectl sends as protobuf, as data for the generic decoder.

Field numbers come from the upstream `generated.proto` files (k8s.io/api, k8s.io/apimachinery); JSON names
and omitempty/pointer semantics come from the Go struct tags, so that decoding yields the same dict as the
JSON body an older kubectl sends for the same command.

Each message maps a field number to `(json name, type)`. Type grammar:

- `string`, `bytes` (JSON: base64), `bool`, `int32`, `int64`, `raw` (the payload's byte range in the
  body; envelope only), or the name of another message in `MESSAGES`;
- `*T`: a Go pointer: emitted whenever present on the wire, even if zero (e.g. `replicas: 0`);
- `[]T`: repeated; `map[string]T`: a map (entries are messages with key = 1, value = 2);
- a trailing `!`: the Go field has no `omitempty`, so an empty value is still emitted (`null`, `""`, `0`).

A non-pointer message field is always emitted, as Go's encoding/json never omits structs.
"""

from __future__ import annotations

Schema = dict[str, dict[int, tuple[str, str]]]

MESSAGES: Schema = {
    # k8s.io/apimachinery/pkg/runtime: the envelope after the 4-byte magic.
    "Unknown": {
        1: ("typeMeta", "TypeMeta"),
        2: ("raw", "*raw"),
        3: ("contentEncoding", "string"),
        4: ("contentType", "string"),
    },
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    # Well-known value types; the decoder turns them into their JSON scalar form.
    "Time": {1: ("seconds", "*int64"), 2: ("nanos", "*int32")},
    "Quantity": {1: ("string", "*string")},
    "IntOrString": {1: ("type", "*int64"), 2: ("intVal", "*int32"), 3: ("strVal", "*string")},
    # k8s.io/apimachinery/pkg/apis/meta/v1
    "ObjectMeta": {
        1: ("name", "string"),
        2: ("generateName", "string"),
        3: ("namespace", "string"),
        4: ("selfLink", "string"),
        5: ("uid", "string"),
        6: ("resourceVersion", "string"),
        7: ("generation", "int64"),
        8: ("creationTimestamp", "Time"),
        9: ("deletionTimestamp", "*Time"),
        10: ("deletionGracePeriodSeconds", "*int64"),
        11: ("labels", "map[string]string"),
        12: ("annotations", "map[string]string"),
        13: ("ownerReferences", "[]OwnerReference"),
        14: ("finalizers", "[]string"),
    },
    "OwnerReference": {
        5: ("apiVersion", "string!"),
        1: ("kind", "string!"),
        3: ("name", "string!"),
        4: ("uid", "string!"),
        6: ("controller", "*bool"),
        7: ("blockOwnerDeletion", "*bool"),
    },
    "LabelSelector": {
        1: ("matchLabels", "map[string]string"),
        2: ("matchExpressions", "[]LabelSelectorRequirement"),
    },
    "LabelSelectorRequirement": {
        1: ("key", "string!"),
        2: ("operator", "string!"),
        3: ("values", "[]string"),
    },
    # k8s.io/api/core/v1
    "Namespace": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "NamespaceSpec"),
        3: ("status", "NamespaceStatus"),
    },
    "NamespaceSpec": {1: ("finalizers", "[]string")},
    "NamespaceStatus": {1: ("phase", "string"), 2: ("conditions", "[]NamespaceCondition")},
    "NamespaceCondition": {
        1: ("type", "string!"),
        2: ("status", "string!"),
        4: ("lastTransitionTime", "Time"),
        5: ("reason", "string"),
        6: ("message", "string"),
    },
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta"),
        2: ("secrets", "[]ObjectReference"),
        3: ("imagePullSecrets", "[]LocalObjectReference"),
        4: ("automountServiceAccountToken", "*bool"),
    },
    "ObjectReference": {
        1: ("kind", "string"),
        2: ("namespace", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
        6: ("resourceVersion", "string"),
        7: ("fieldPath", "string"),
    },
    "LocalObjectReference": {1: ("name", "string")},
    "Secret": {
        1: ("metadata", "ObjectMeta"),
        5: ("immutable", "*bool"),
        2: ("data", "map[string]bytes"),
        4: ("stringData", "map[string]string"),
        3: ("type", "string"),
    },
    "ConfigMap": {
        1: ("metadata", "ObjectMeta"),
        4: ("immutable", "*bool"),
        2: ("data", "map[string]string"),
        3: ("binaryData", "map[string]bytes"),
    },
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodSpec": {
        20: ("initContainers", "[]Container"),
        2: ("containers", "[]Container!"),
        3: ("restartPolicy", "string"),
        4: ("terminationGracePeriodSeconds", "*int64"),
        5: ("activeDeadlineSeconds", "*int64"),
        6: ("dnsPolicy", "string"),
        7: ("nodeSelector", "map[string]string"),
        8: ("serviceAccountName", "string"),
        9: ("serviceAccount", "string"),
        21: ("automountServiceAccountToken", "*bool"),
        10: ("nodeName", "string"),
        11: ("hostNetwork", "bool"),
        12: ("hostPID", "bool"),
        13: ("hostIPC", "bool"),
        27: ("shareProcessNamespace", "*bool"),
        15: ("imagePullSecrets", "[]LocalObjectReference"),
        16: ("hostname", "string"),
        17: ("subdomain", "string"),
        19: ("schedulerName", "string"),
        24: ("priorityClassName", "string"),
        25: ("priority", "*int32"),
        29: ("runtimeClassName", "*string"),
        30: ("enableServiceLinks", "*bool"),
        31: ("preemptionPolicy", "*string"),
        32: ("overhead", "map[string]Quantity"),
        35: ("setHostnameAsFQDN", "*bool"),
        37: ("hostUsers", "*bool"),
        40: ("resources", "*ResourceRequirements"),
        41: ("hostnameOverride", "*string"),
    },
    "Container": {
        1: ("name", "string!"),
        2: ("image", "string"),
        3: ("command", "[]string"),
        4: ("args", "[]string"),
        5: ("workingDir", "string"),
        6: ("ports", "[]ContainerPort"),
        7: ("env", "[]EnvVar"),
        8: ("resources", "ResourceRequirements"),
        24: ("restartPolicy", "*string"),
        9: ("volumeMounts", "[]VolumeMount"),
        13: ("terminationMessagePath", "string"),
        20: ("terminationMessagePolicy", "string"),
        14: ("imagePullPolicy", "string"),
        16: ("stdin", "bool"),
        17: ("stdinOnce", "bool"),
        18: ("tty", "bool"),
    },
    "ContainerPort": {
        1: ("name", "string"),
        2: ("hostPort", "int32"),
        3: ("containerPort", "int32!"),
        4: ("protocol", "string"),
        5: ("hostIP", "string"),
    },
    "EnvVar": {1: ("name", "string!"), 2: ("value", "string")},
    "ResourceRequirements": {
        1: ("limits", "map[string]Quantity"),
        2: ("requests", "map[string]Quantity"),
        3: ("claims", "[]ResourceClaim"),
    },
    "ResourceClaim": {1: ("name", "string!"), 2: ("request", "string")},
    "VolumeMount": {
        1: ("name", "string!"),
        2: ("readOnly", "bool"),
        7: ("recursiveReadOnly", "*string"),
        3: ("mountPath", "string!"),
        4: ("subPath", "string"),
        5: ("mountPropagation", "*string"),
        6: ("subPathExpr", "string"),
        8: ("bindMountOptions", "[]string"),
    },
    # k8s.io/api/apps/v1
    "Deployment": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "DeploymentSpec"),
        3: ("status", "DeploymentStatus"),
    },
    "DeploymentSpec": {
        1: ("replicas", "*int32"),
        2: ("selector", "*LabelSelector!"),
        3: ("template", "PodTemplateSpec"),
        4: ("strategy", "DeploymentStrategy"),
        5: ("minReadySeconds", "int32"),
        6: ("revisionHistoryLimit", "*int32"),
        7: ("paused", "bool"),
        9: ("progressDeadlineSeconds", "*int32"),
    },
    "DeploymentStrategy": {1: ("type", "string"), 2: ("rollingUpdate", "*RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: ("maxUnavailable", "*IntOrString"), 2: ("maxSurge", "*IntOrString")},
    "DeploymentStatus": {
        1: ("observedGeneration", "int64"),
        2: ("replicas", "int32"),
        3: ("updatedReplicas", "int32"),
        7: ("readyReplicas", "int32"),
        4: ("availableReplicas", "int32"),
        5: ("unavailableReplicas", "int32"),
        9: ("terminatingReplicas", "*int32"),
        6: ("conditions", "[]DeploymentCondition"),
        8: ("collisionCount", "*int32"),
    },
    "DeploymentCondition": {
        1: ("type", "string!"),
        2: ("status", "string!"),
        6: ("lastUpdateTime", "Time"),
        7: ("lastTransitionTime", "Time"),
        4: ("reason", "string"),
        5: ("message", "string"),
    },
    # k8s.io/api/authentication/v1
    "TokenRequest": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "TokenRequestSpec"),
        3: ("status", "TokenRequestStatus"),
    },
    "TokenRequestSpec": {
        1: ("audiences", "[]string!"),
        4: ("expirationSeconds", "*int64!"),
        3: ("boundObjectRef", "*BoundObjectReference!"),
    },
    "TokenRequestStatus": {1: ("token", "string!"), 2: ("expirationTimestamp", "Time")},
    "BoundObjectReference": {
        1: ("kind", "string"),
        2: ("apiVersion", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
    },
    # k8s.io/api/rbac/v1
    "PolicyRule": {
        1: ("verbs", "[]string!"),
        2: ("apiGroups", "[]string"),
        3: ("resources", "[]string"),
        4: ("resourceNames", "[]string"),
        5: ("nonResourceURLs", "[]string"),
    },
    "Role": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[]PolicyRule!")},
    "ClusterRole": {
        1: ("metadata", "ObjectMeta"),
        2: ("rules", "[]PolicyRule!"),
        3: ("aggregationRule", "*AggregationRule"),
    },
    "AggregationRule": {1: ("clusterRoleSelectors", "[]LabelSelector")},
    "RoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", "[]Subject"), 3: ("roleRef", "RoleRef")},
    "ClusterRoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", "[]Subject"), 3: ("roleRef", "RoleRef")},
    "Subject": {1: ("kind", "string!"), 2: ("apiGroup", "string"), 3: ("name", "string!"), 4: ("namespace", "string")},
    "RoleRef": {1: ("apiGroup", "string!"), 2: ("kind", "string!"), 3: ("name", "string!")},
    # k8s.io/api/authorization/v1
    "SelfSubjectAccessReview": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "SelfSubjectAccessReviewSpec"),
        3: ("status", "SubjectAccessReviewStatus"),
    },
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "*ResourceAttributes"),
        2: ("nonResourceAttributes", "*NonResourceAttributes"),
    },
    "SubjectAccessReview": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "SubjectAccessReviewSpec"),
        3: ("status", "SubjectAccessReviewStatus"),
    },
    "SubjectAccessReviewSpec": {
        1: ("resourceAttributes", "*ResourceAttributes"),
        2: ("nonResourceAttributes", "*NonResourceAttributes"),
        3: ("user", "string"),
        4: ("groups", "[]string"),
        6: ("uid", "string"),
    },
    "ResourceAttributes": {
        1: ("namespace", "string"),
        2: ("verb", "string"),
        3: ("group", "string"),
        4: ("version", "string"),
        5: ("resource", "string"),
        6: ("subresource", "string"),
        7: ("name", "string"),
    },
    "NonResourceAttributes": {1: ("path", "string"), 2: ("verb", "string")},
    "SubjectAccessReviewStatus": {
        1: ("allowed", "bool!"),
        4: ("denied", "bool"),
        2: ("reason", "string"),
        3: ("evaluationError", "string"),
    },
    "SelfSubjectRulesReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SelfSubjectRulesReviewSpec")},
    # k8s.io/api/authentication/v1 (kubectl auth whoami sends an empty one)
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta"), 2: ("status", "SelfSubjectReviewStatus")},
    "SelfSubjectReviewStatus": {1: ("userInfo", "UserInfo")},
    "UserInfo": {1: ("username", "string"), 2: ("uid", "string"), 3: ("groups", "[]string")},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string")},
}

# (apiVersion, kind) of a top-level object -> its message in MESSAGES.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Secret"): "Secret",
    ("v1", "ConfigMap"): "ConfigMap",
    ("apps/v1", "Deployment"): "Deployment",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "ClusterRoleBinding",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "SubjectAccessReview",
}
