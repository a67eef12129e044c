"""PATCH semantics on plain dict objects: JSON patch, merge patch (`dispatch`), strategic merge patch,
server-side apply with managed fields, and the patch schema (merge keys and strategies) they share."""
