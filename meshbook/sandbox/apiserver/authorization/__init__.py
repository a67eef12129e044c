"""Authorization as kube-apiserver does it: request attributes, RBAC, bootstrap policy, access reviews."""
