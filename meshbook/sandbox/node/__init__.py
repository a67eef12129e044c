"""The one sandbox node: the kubelet stand-in, a worker per pod, container programs, pod logs,
port-forward and the `shell/` interpreter that plays a container's command."""
