"""The API server's semantics, independent of HTTP: the verbs over the store, admission (defaults,
validation, mutators), events, service-account tokens and TokenReview, selectors and `patch/`.
Controllers, the node and the HTTP layer all call these, as components call kube-apiserver."""
