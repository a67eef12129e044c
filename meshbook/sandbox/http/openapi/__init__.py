"""`/openapi/v2` and `/openapi/v3`: documents computed from the served resource types (`documents`),
their paths and operations (`paths`) and their schemas (`schemas`)."""
