"""The object store: one lock, a monotonic resourceVersion, a change log for watches, and a
JSON snapshot under the state directory (written atomically by a flusher thread)."""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("kube_sim.apiserver.store")

STATE_FILE = "state.json"
LOG_SIZE = 20000


@dataclass(frozen=True)
class Change:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    key: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


class Store:
    """All objects by storage key, then by (namespace, name).

    Stored dicts are never mutated in place: writers build a new dict (deep copy) and call
    :meth:`put`. That keeps watch-log snapshots stable without copying on every read.
    """

    def __init__(self, state_dir: str | None) -> None:
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.rv = 0
        self.log: collections.deque[Change] = collections.deque(maxlen=LOG_SIZE)
        self.state_dir = state_dir
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._load()
        self.log_start = self.rv  # events with rv > log_start are in the log

    # --- persistence --------------------------------------------------------------------

    def _path(self) -> str | None:
        return os.path.join(self.state_dir, STATE_FILE) if self.state_dir else None

    def _load(self) -> None:
        path = self._path()
        if not path or not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        self.rv = int(data.get("resourceVersion", 0))
        for key, items in (data.get("objects") or {}).items():
            bucket = self.objects.setdefault(key, {})
            for obj in items:
                meta = obj.get("metadata", {})
                bucket[(meta.get("namespace", ""), meta.get("name", ""))] = obj
        log.info(
            "loaded %d objects at resourceVersion %d from %s",
            sum(len(b) for b in self.objects.values()),
            self.rv,
            path,
        )

    def snapshot(self) -> str:
        with self.lock:
            data = {
                "resourceVersion": self.rv,
                "objects": {k: list(b.values()) for k, b in self.objects.items() if b},
            }
            return json.dumps(data, separators=(",", ":"))

    def flush(self) -> None:
        path = self._path()
        if not path:
            return
        self._dirty.clear()
        text = self.snapshot()
        os.makedirs(self.state_dir or ".", exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def start_flusher(self, interval: float = 0.2) -> None:
        def run() -> None:
            while not self._stop.is_set():
                if self._dirty.wait(0.5):
                    try:
                        self.flush()
                    except OSError:
                        log.exception("could not write state")
                    self._stop.wait(interval)

        self._flusher = threading.Thread(target=run, name="store-flusher", daemon=True)
        self._flusher.start()

    def close(self) -> None:
        self._stop.set()
        try:
            self.flush()
        except OSError:
            log.exception("could not write state")

    # --- reads -------------------------------------------------------------------------

    def get(self, key: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self.objects.get(key, {}).get((namespace, name))

    def list(self, key: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            bucket = self.objects.get(key, {})
            items = [o for (ns, _), o in bucket.items() if namespace is None or ns == namespace]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items

    def all_uids(self) -> set[str]:
        with self.lock:
            return {
                o["metadata"].get("uid", "")
                for bucket in self.objects.values()
                for o in bucket.values()
            }

    # --- writes ------------------------------------------------------------------------

    def _record(self, kind: str, key: str, obj: dict[str, Any], old: dict[str, Any] | None):
        self.log.append(Change(self.rv, kind, key, obj, old))
        if len(self.log) == self.log.maxlen:
            self.log_start = self.log[0].rv - 1
        self._dirty.set()
        self.cond.notify_all()

    def put(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace ``obj`` (a fresh dict owned by the store from now on)."""
        with self.lock:
            meta = obj["metadata"]
            ident = (meta.get("namespace", ""), meta["name"])
            bucket = self.objects.setdefault(key, {})
            old = bucket.get(ident)
            self.rv += 1
            meta["resourceVersion"] = str(self.rv)
            bucket[ident] = obj
            self._record("MODIFIED" if old is not None else "ADDED", key, obj, old)
            return obj

    def remove(self, key: str, obj: dict[str, Any]) -> dict[str, Any] | None:
        with self.lock:
            meta = obj["metadata"]
            ident = (meta.get("namespace", ""), meta["name"])
            old = self.objects.get(key, {}).pop(ident, None)
            if old is None:
                return None
            self.rv += 1
            final = dict(old)
            final["metadata"] = dict(old["metadata"], resourceVersion=str(self.rv))
            self._record("DELETED", key, final, old)
            return final

    def changes_since(self, rv: int) -> list[Change]:
        with self.lock:
            out: list[Change] = []
            if rv >= self.rv:
                return out
            for change in reversed(self.log):
                if change.rv <= rv:
                    break
                out.append(change)
            out.reverse()
            return out
