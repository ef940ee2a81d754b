"""Every Kubernetes object dshare makes: pure manifest builders, the API calls that send them,
and the broker's materializer of leased volumes.

`objects` builds per-user objects (ServiceAccount, Role, RoleBinding, token, pod additions),
`storage` builds what a lease materializes into (Secret, PersistentVolume, claim),
`api` talks to the API server with retries, `materialize` ties storage and api together.
"""
