"""The built-in sandbox cluster: a local Kubernetes-API-compatible server and its controllers."""
