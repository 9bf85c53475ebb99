#!/usr/bin/env bash
# Import container image archives into containerd's Kubernetes namespace, pinned so the
# kubelet's image garbage collection never removes them (an air-gapped host cannot pull them
# back). Idempotent: images already present are skipped.
#   import-images.sh LIST SOURCE
# LIST: lines "NAME<TAB>LOCATION<TAB>SHA256" (SHA256 may be empty); SOURCE: an http(s) URL ending
# in "/" that LOCATION is relative to, or a folder on this host holding the uploaded archives.
set -euo pipefail

list="$1"
source="$2"
ctr=(ctr --namespace k8s.io)
work="$(mktemp -d /var/tmp/k8s-images.XXXXXX)"
trap 'rm -rf "$work"' EXIT

fail() {
  echo "import-images: $*" >&2
  exit 1
}

present="$("${ctr[@]}" images list --quiet)"
imported=0
while IFS=$'\t' read -r name location sha256; do
  [[ -z "$name" ]] && continue
  if grep -qxF "$name" <<<"$present"; then
    continue
  fi
  archive="$work/image.tar"
  if [[ "$source" == http://* || "$source" == https://* ]]; then
    curl -fsS --connect-timeout 15 --max-time 900 --retry 2 -o "$archive" "$source$location" ||
      fail "cannot fetch $source$location from $(hostname)"
  else
    archive="$source/$location"
  fi
  if [[ -n "$sha256" ]] && ! sha256sum --status -c <<<"$sha256  $archive"; then
    fail "$location does not match its sha256 in the image bundle's index"
  fi
  "${ctr[@]}" images import "$archive" >/dev/null ||
    fail "containerd could not import $location"
  "${ctr[@]}" images label "$name" io.cri-containerd.pinned=pinned >/dev/null
  imported=$((imported + 1))
done <"$list"
echo "images: $imported imported"
