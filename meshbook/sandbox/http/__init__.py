"""The HTTP face of the API server: routing and handlers, discovery, `openapi/` documents, kubectl's
`protobuf/` request bodies and server-side printing (`tables/`). Translates HTTP to `apiserver` calls."""
