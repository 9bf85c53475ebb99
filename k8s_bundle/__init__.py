"""The offline bundle builder: Kubernetes, its container runtime, network and images, built from
upstream source through the Go module proxy into a signed Debian repository and image archives.

    python -m k8s_bundle build 1.37.2 [--out DIR] [--debian-mirror URL]
"""
