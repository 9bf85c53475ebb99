"""kube-apiserver stand-in for kube-sim.

A small, stdlib-only HTTPS server that speaks enough of the Kubernetes REST API for the real
kubectl and the real kubernetes Python client to work against it: discovery, CRUD with
resourceVersion/uid/generation, label and field selectors, merge/strategic/JSON patches, watch,
server-side tables, pod eviction honouring PodDisruptionBudgets, CSR signing, bootstrap-token and
client-certificate authentication, and a controller loop (scheduler, Deployments, ReplicaSets,
DaemonSets, node lifecycle, garbage collection, token cleaner, PDB status).

Start it with ``python3 -m kube_sim.apiserver --help``.
"""

GIT_VERSION = "v1.36.2-sim"
MAJOR = "1"
MINOR = "36"
