"""What kube-apiserver refuses before storing: names, metadata, immutable fields, unknown fields, schemas."""
