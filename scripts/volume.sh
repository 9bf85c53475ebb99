#!/usr/bin/env bash
# A worker's volume on its host. Idempotent.
#   volume.sh mount DEVICE PATH FILESYSTEM   format DEVICE only if it has no filesystem yet
#                                            (never otherwise: data is kept), then mount it
#   volume.sh unmount PATH                   unmount and remove the mount point
set -euo pipefail

usage() {
  echo "usage: $0 mount DEVICE PATH FILESYSTEM | unmount PATH" >&2
  exit 2
}

do_mount() {
  local device="$1" path="$2" fs="$3" found
  if mountpoint -q "$path"; then
    echo "volume: $path already mounted"
    return
  fi
  if [ ! -b "$device" ]; then
    echo "volume: $device is not a block device on $(hostname)" >&2
    exit 1
  fi
  found=$(blkid -o value -s TYPE "$device" || true)
  if [ -z "$found" ]; then
    if ! command -v "mkfs.$fs" >/dev/null 2>&1; then
      echo "volume: mkfs.$fs is not installed on $(hostname)" >&2
      exit 1
    fi
    "mkfs.$fs" -q "$device"
    echo "volume: formatted $device as $fs"
  elif [ "$found" != "$fs" ]; then
    echo "volume: $device already holds a $found filesystem, not $fs; it is left as it is" >&2
    exit 1
  fi
  mkdir -p "$path"
  mount -t "$fs" "$device" "$path"
  echo "volume: $device mounted on $path"
}

do_unmount() {
  local path="$1"
  if mountpoint -q "$path"; then
    umount "$path"
  fi
  if [ -d "$path" ]; then
    rmdir "$path"
  fi
  echo "volume: $path unmounted"
}

case "${1:-}" in
  mount)
    [ "$#" -eq 4 ] || usage
    do_mount "$2" "$3" "$4"
    ;;
  unmount)
    [ "$#" -eq 2 ] || usage
    do_unmount "$2"
    ;;
  *) usage ;;
esac
