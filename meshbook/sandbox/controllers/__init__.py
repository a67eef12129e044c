"""The sandbox's controllers: each reconciles one kind of object towards its spec.

Like kube-controller-manager, each controller reacts to store changes by queueing keys and reconciles
them one at a time; a failed reconcile is retried with back-off. They write through `ApiCore`, so pods
they create pass admission like any other.
"""
