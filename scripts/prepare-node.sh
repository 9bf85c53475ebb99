#!/usr/bin/env bash
# Prepare a host for kubeadm: swap off, kernel modules and sysctls, the Kubernetes packages at
# one version, held there, and containerd 2 with runc (installed, not yet configured: the suite
# writes its configuration once kubeadm tells the sandbox image). Idempotent: a second run
# changes nothing.
#
# The suite uploads the rendered configuration files first:
#   /etc/modules-load.d/kubernetes.conf, /etc/sysctl.d/99-kubernetes.conf,
#   /var/lib/k8s-cluster/kubernetes.list (the apt source, put in place once the repository's key
#   is fetched)
# Environment:
#   K8S_REPOSITORY        repository URL (http/https) or file: URI of a copy on this host
#   K8S_VERSION_PATTERN   shell glob of the package version, e.g. "1.36.*" or "1.36.2-*"
#   K8S_CONTAINERD_SOURCE auto (the package sources' containerd when it is 2.x, else the
#                         release), packages, or release
#   for a release: K8S_CONTAINERD_VERSION, K8S_CONTAINERD_URL, K8S_CONTAINERD_SUMS_URL,
#                  K8S_RUNC_VERSION, K8S_RUNC_URL, K8S_RUNC_SUMS_URL ("{arch}" in a URL is this
#                  machine's architecture); the unit file the suite uploads to
#                  /var/lib/k8s-cluster/containerd.service
# Prints the facts the suite configures the node by: "installed: VERSION", "cgroup: v1|v2",
# "container: none|lxc|docker|...", "lower-oom-score: yes|no", "sandbox-image: IMAGE".
set -euo pipefail

: "${K8S_REPOSITORY:?K8S_REPOSITORY is required}"
: "${K8S_VERSION_PATTERN:?K8S_VERSION_PATTERN is required}"
: "${K8S_CONTAINERD_SOURCE:=auto}"
export DEBIAN_FRONTEND=noninteractive
KEYRING=/etc/apt/keyrings/kubernetes-apt-keyring.asc
PACKAGES=(kubelet kubeadm kubectl)
MIN_CONTAINERD_MAJOR=2

fail() {
  echo "prepare-node: $*" >&2
  exit 1
}

phase() {
  echo "phase: $*"
}

apt_get() {
  apt-get -qq -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold "$@"
}

disable_swap() {
  phase "swap off"
  swapoff -a
  sed -i -E '/^[^#].*[[:space:]]swap[[:space:]]/ s/^/#/' /etc/fstab
}

# A module built into the kernel, or loaded by the hypervisor of a container, cannot be
# modprobed: accept it when what it provides is there.
module_present() {
  case "$1" in
    br_netfilter) [[ -d /proc/sys/net/bridge ]] ;;
    overlay) grep -qw overlay /proc/filesystems ;;
    *) [[ -d "/sys/module/$1" ]] ;;
  esac
}

load_modules() {
  phase "kernel modules"
  local module
  while read -r module; do
    [[ -z "$module" || "$module" == \#* ]] && continue
    modprobe "$module" 2>/dev/null || module_present "$module" ||
      fail "kernel module $module is not loaded and cannot be loaded on $(hostname)"
  done </etc/modules-load.d/kubernetes.conf
}

apply_sysctls() {
  phase "kernel settings"
  local key value actual
  while IFS='=' read -r key value; do
    key="${key// /}"
    value="${value// /}"
    [[ -z "$key" || "$key" == \#* ]] && continue
    sysctl -q -w "$key=$value" >/dev/null 2>&1 || true
    actual="$(sysctl -n "$key" 2>/dev/null || echo missing)"
    [[ "$actual" == "$value" ]] || fail "kernel setting $key is $actual on $(hostname), needs $value"
  done </etc/sysctl.d/99-kubernetes.conf
}

# containerd 2 answers the kubelet's RuntimeConfig call (the cgroup driver); 1.x is outside the
# runtimes Kubernetes 1.35 and later support.
install_containerd() {
  local candidate source="$K8S_CONTAINERD_SOURCE"
  candidate="$(apt-cache policy containerd 2>/dev/null | awk '/Candidate:/ {print $2}')"
  if [[ "$source" == auto ]]; then
    source=release
    is_containerd_2 "$candidate" && source=packages
  fi
  if [[ "$source" == packages ]]; then
    install_containerd_package "$candidate"
  else
    install_containerd_release
  fi
  systemctl enable -q containerd
}

is_containerd_2() {
  [[ "$1" =~ ^[0-9]+\. ]] && ((${1%%.*} >= MIN_CONTAINERD_MAJOR))
}

# apt takes the newest containerd it is offered: the package repository's (the offline bundle
# carries containerd 2) or the distribution's.
install_containerd_package() {
  local candidate="$1" installed
  phase "containerd $candidate (packages)"
  if ! is_containerd_2 "$candidate"; then
    fail "no containerd $MIN_CONTAINERD_MAJOR.x in the package sources of $(hostname) (apt offers ${candidate:-none}), and the kubelet needs it; give a package_repository that carries it (the offline bundle's does), or container_runtime.source release"
  fi
  installed="$(dpkg-query -W -f='${db:Status-Status} ${Version}' containerd 2>/dev/null || true)"
  if [[ "$installed" != "installed $candidate" ]]; then
    apt_get install -y --no-install-recommends containerd
  fi
  apt-mark hold containerd runc >/dev/null 2>&1 || true
}

# Download $1 to $3 and check it against the sha256 file $2 publishes for it (the line naming
# the file, as sha256sum writes them).
fetch_checked() {
  local url="$1" sums_url="$2" out="$3" name expected
  name="${url##*/}"
  curl -fsSL --connect-timeout 15 --max-time 600 --retry 2 -o "$out" "$url" ||
    fail "cannot download $url on $(hostname)"
  expected="$(curl -fsSL --connect-timeout 15 --max-time 60 --retry 2 "$sums_url" |
    awk -v name="$name" '{file = $2; sub(/^\*/, "", file)} file == name {print $1}')" ||
    fail "cannot download $sums_url on $(hostname)"
  [[ -n "$expected" ]] || fail "$sums_url lists no sha256 for $name"
  sha256sum --status -c <<<"$expected  $out" || fail "$url does not match its sha256 in $sums_url"
}

install_containerd_release() {
  local arch work
  arch="$(dpkg --print-architecture)"
  phase "containerd $K8S_CONTAINERD_VERSION and runc $K8S_RUNC_VERSION (release)"
  work="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: the folder is this call's
  trap "rm -rf '$work'" RETURN
  if ! /usr/local/bin/containerd --version 2>/dev/null | grep -qw "v$K8S_CONTAINERD_VERSION"; then
    fetch_checked "${K8S_CONTAINERD_URL//\{arch\}/$arch}" "${K8S_CONTAINERD_SUMS_URL//\{arch\}/$arch}" "$work/containerd.tar.gz"
    tar -C /usr/local -xzf "$work/containerd.tar.gz" bin
  fi
  if ! /usr/local/sbin/runc --version 2>/dev/null | grep -q "^runc version $K8S_RUNC_VERSION\$"; then
    fetch_checked "${K8S_RUNC_URL//\{arch\}/$arch}" "${K8S_RUNC_SUMS_URL//\{arch\}/$arch}" "$work/runc"
    install -m 0755 "$work/runc" /usr/local/sbin/runc
  fi
  if ! cmp -s /var/lib/k8s-cluster/containerd.service /etc/systemd/system/containerd.service; then
    install -m 0644 /var/lib/k8s-cluster/containerd.service /etc/systemd/system/containerd.service
    systemctl daemon-reload
  fi
}

install_base_packages() {
  local missing=() package
  for package in curl ca-certificates conntrack; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
  ((${#missing[@]})) || return 0
  phase "base packages ${missing[*]}"
  # Package lists a machine already has are usually good enough; refresh them only if not.
  apt_get install -y --no-install-recommends "${missing[@]}" 2>/dev/null || {
    apt_get update
    apt_get install -y --no-install-recommends "${missing[@]}"
  }
}

fetch_repository_key() {
  phase "package repository $K8S_REPOSITORY"
  install -d -m 0755 /etc/apt/keyrings
  local error
  if [[ "$K8S_REPOSITORY" == file:* ]]; then
    cp "${K8S_REPOSITORY#file:}/Release.key" "$KEYRING.new" ||
      fail "package repository $K8S_REPOSITORY has no Release.key"
  elif ! error="$(curl -fsSL --connect-timeout 15 --max-time 120 --retry 2 \
    -o "$KEYRING.new" "${K8S_REPOSITORY%/}/Release.key" 2>&1)"; then
    fail "package repository $K8S_REPOSITORY is unreachable from $(hostname): ${error:-no answer}"
  fi
  chmod 0644 "$KEYRING.new"
  mv "$KEYRING.new" "$KEYRING"
  install -m 0644 /var/lib/k8s-cluster/kubernetes.list /etc/apt/sources.list.d/kubernetes.list
  # Read this repository alone: the others were read already.
  apt_get -o APT::Update::Error-Mode=any -o Dir::Etc::sourcelist=sources.list.d/kubernetes.list \
    -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 update 2>&1 ||
    fail "package repository $K8S_REPOSITORY could not be read by apt on $(hostname)"
}

pick_version() {
  local version
  while read -r version; do
    # shellcheck disable=SC2053 # the pattern is a glob on purpose
    if [[ "$version" == $K8S_VERSION_PATTERN ]]; then
      echo "$version"
      return 0
    fi
  done < <(apt-cache madison kubeadm | awk '{print $3}')
  local found
  found="$(apt-cache madison kubeadm | awk '{print $3}' | head -n 5 | tr '\n' ' ')"
  fail "no kubeadm version matching $K8S_VERSION_PATTERN in $K8S_REPOSITORY (it has: ${found:-none})"
}

all_installed() {
  local package
  for package in "${PACKAGES[@]}"; do
    [[ "$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$package" 2>/dev/null)" == "installed $1" ]] ||
      return 1
  done
}

install_kubernetes_packages() {
  local version installed
  version="$(pick_version)"
  installed="$(dpkg-query -W -f='${Version}' kubeadm 2>/dev/null || true)"
  if [[ -n "$installed" && "$installed" != "$version" ]]; then
    fail "kubeadm $installed is installed on $(hostname) but $version was asked for; upgrading is not part of install"
  fi
  phase "kubernetes packages $version"
  if ! all_installed "$version"; then
    apt_get install -y --no-install-recommends --allow-change-held-packages \
      "${PACKAGES[@]/%/=$version}"
  fi
  apt-mark hold "${PACKAGES[@]}" >/dev/null
  systemctl enable -q kubelet
  echo "installed: $version"
}

# Lowering a process's OOM score (as the kubelet asks for pod sandboxes) needs CAP_SYS_RESOURCE,
# capability 24, which some container hosts do not have in their bounding set.
can_lower_oom_score() {
  local bounding
  bounding="$(awk '/^CapBnd:/ {print $2}' /proc/self/status)"
  (((0x$bounding >> 24) & 1))
}

report_facts() {
  local cgroup=v1 container oom=no
  [[ "$(stat -fc %T /sys/fs/cgroup)" == cgroup2fs ]] && cgroup=v2
  container="$(systemd-detect-virt --container 2>/dev/null || true)"
  can_lower_oom_score && oom=yes
  echo "cgroup: $cgroup"
  echo "container: ${container:-none}"
  echo "lower-oom-score: $oom"
  echo "sandbox-image: $(kubeadm config images list --kubernetes-version "$(kubeadm version -o short)" 2>/dev/null | grep '/pause:')"
}

disable_swap
load_modules
apply_sysctls
install_base_packages
fetch_repository_key
install_containerd
install_kubernetes_packages
report_facts
