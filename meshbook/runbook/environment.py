"""What `meshbook run` hands each notebook's kernel: environment variables, and the parameter names.

The run directory and the kubeconfig travel in the environment (parameters are stored in the executed
notebook); the runner and the notebook side (`runbook.context`) both read these names from here, so the
runner needs neither the Kubernetes client nor the evidence models to start a kernel.
"""

ENV_RUN_DIR = "MESHBOOK_RUN_DIR"
ENV_KUBECONFIG = "MESHBOOK_KUBECONFIG"
ENV_RUN_ID = "MESHBOOK_RUN_ID"

PARAMETER_NAMES = (
    "target",
    "kube_context",
    "kubeconfig",
    "mode",
    "istio",
    "bank_vaults",
    "vault",
    "app",
    "timeouts",
    "sandbox",
)
