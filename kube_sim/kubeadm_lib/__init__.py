"""The parts of the kubeadm stand-in (kube_sim/kubeadm.py is its command line)."""
