"""The parts of the kubelet stand-in (kube_sim/kubelet.py is its command line and loop)."""
