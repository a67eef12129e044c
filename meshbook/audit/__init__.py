"""`meshbook audit`: a read-only posture audit of a cluster (or a fleet of them) running Istio and Bank-Vaults.

`discover` reads the cluster (get and list only, never Secrets), `findings` turns what it read into
findings with stable codes (`codes`) using the connectivity model and the pod rules the runbooks use,
`notebook` is what `notebooks/40-audit.ipynb` calls, and `fleet` audits several contexts at once.
"""
