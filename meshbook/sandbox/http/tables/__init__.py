"""Server-side printing for `kubectl get`: the Table (`render`), the built-in printers' columns
(`columns`) and the cell rules they use (`cells`)."""
