"""The free room of one pool, indexed so that placing a replica is not a scan of every node.

``PoolCapacity`` keeps, per node, which GPUs (or, for a CPU-only node, its one slot) are free
and how many bytes each still offers. ``cluster.Cluster`` holds one per pool; the planner asks
how many replicas of a shape fit (``replicas_possible``), takes room (``place``) and gives back
what a deployment held before it replans it (``release``).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Sequence


class PoolCapacity:
    """Free GPUs of one pool, indexed for placement (mutable; ``copy`` before changing shared).

    Each node has GPUs with a usable and a free byte count. Whole-GPU placements (every pool
    without sharing, and multi-GPU replicas everywhere) take untouched GPUs; in pools whose
    ``sharing`` allows it a one-GPU replica takes bytes from the GPU that fits it most tightly
    (best fit), so small models pack. A CPU-only node counts as one slot.

    Index: ``_buckets[k]`` is a heap of node indices with exactly ``k`` untouched GPUs (stale
    entries are skipped lazily), so a whole-GPU replica finds the tightest node in O(log n);
    ``_shared`` is a sorted list of (free bytes, node, gpu) for best-fit packing. Placement
    falls back to a scan only when a replica needs more memory than the pool's smallest usable
    GPU offers (nodes with measured, uneven free memory)."""

    __slots__ = (
        "names",
        "usable",
        "free",
        "whole",
        "whole_count",
        "_buckets",
        "_count_by_k",
        "min_usable",
        "_shared",
        "sharing",
        "owners",
        "total_gpus",
        "free_whole_gpus",
        "answers",
    )

    def __init__(self, names: Sequence[str], usable: Sequence[Sequence[int]], sharing: bool):
        self.names = list(names)
        self.usable = [list(u) for u in usable]
        self.free = [list(u) for u in usable]
        self.whole = [[True] * len(u) for u in usable]
        self.whole_count = [len(u) for u in usable]
        self.sharing = sharing
        self.owners: dict[tuple[str, str], list[tuple[int, int, int, bool]]] = {}
        self.total_gpus = sum(len(u) for u in usable)
        """GPUs in the pool (slots, for CPU-only nodes)."""
        self.free_whole_gpus = self.total_gpus
        """GPUs no replica uses."""
        self.answers: dict = {}
        """Answers computed from the free room as it is now (the planner's NoCapacity per
        replica shape); emptied whenever a placement or release changes the room."""
        all_usable = [b for u in usable for b in u]
        self.min_usable = min(all_usable) if all_usable else 0
        """The smallest usable GPU's bytes (0 without GPUs): a replica of no more fits any."""
        self._rebuild_index()

    def _rebuild_index(self) -> None:
        width = max(self.whole_count, default=0)
        self._buckets: list[list[int]] = [[] for _ in range(width + 1)]
        self._count_by_k = [0] * (width + 1)
        for i, k in enumerate(self.whole_count):
            self._buckets[k].append(i)
            self._count_by_k[k] += 1
        self._shared: list[tuple[int, int, int]] = []
        if self.sharing:
            self._shared = sorted(
                (self.free[n][g], n, g)
                for n in range(len(self.names))
                for g in range(len(self.free[n]))
            )

    def copy(self) -> PoolCapacity:
        clone = object.__new__(PoolCapacity)
        clone.names = self.names
        clone.usable = self.usable
        clone.free = [list(f) for f in self.free]
        clone.whole = [list(w) for w in self.whole]
        clone.whole_count = list(self.whole_count)
        clone.sharing = self.sharing
        clone.owners = {k: list(v) for k, v in self.owners.items()}
        clone.min_usable = self.min_usable
        clone.total_gpus = self.total_gpus
        clone.free_whole_gpus = self.free_whole_gpus
        clone._buckets = [list(b) for b in self._buckets]
        clone._count_by_k = list(self._count_by_k)
        clone._shared = list(self._shared)
        clone.answers = {}
        return clone

    # -- queries --

    def replicas_possible(self, gpus: int, bytes_per_gpu: int, limit: int) -> int:
        """How many replicas of ``gpus`` GPUs × ``bytes_per_gpu`` fit now (counting to limit)."""
        slots = max(gpus, 1)
        if self.sharing and gpus == 1:
            return self._shared_possible(bytes_per_gpu, limit)
        if bytes_per_gpu <= self.min_usable:
            total = 0
            for k in range(slots, len(self._count_by_k)):
                total += self._count_by_k[k] * (k // slots)
                if total >= limit:
                    return limit
            return total
        total = 0
        for n in range(len(self.names)):
            total += self._fitting_whole(n, bytes_per_gpu) // slots
            if total >= limit:
                return limit
        return total

    def _shared_possible(self, need: int, limit: int) -> int:
        if need <= 0:
            return limit
        start = bisect.bisect_left(self._shared, (need, -1, -1))
        total = 0
        for free, _, _ in self._shared[start:]:
            total += free // need
            if total >= limit:
                return limit
        return total

    def _fitting_whole(self, n: int, need: int) -> int:
        return sum(
            1 for g, whole in enumerate(self.whole[n]) if whole and self.usable[n][g] >= need
        )

    # -- changes --

    def place(
        self,
        gpus: int,
        bytes_per_gpu: int,
        replicas: int,
        owner: tuple[str, str] | None = None,
        prefer: Sequence[str] = (),
    ) -> list[str] | None:
        """Take room for ``replicas``; the node of each, or None (and no change) when short."""
        if self.replicas_possible(gpus, bytes_per_gpu, replicas) < replicas:
            return None
        self.answers.clear()
        preferred = [self.names.index(p) for p in prefer if p in self.names]
        nodes: list[str] = []
        for r in range(replicas):
            hint = preferred[r] if r < len(preferred) else None
            taken = self._place_one(gpus, bytes_per_gpu, hint)
            if taken is None:  # pragma: no cover - replicas_possible said yes
                raise AssertionError("capacity index out of step")
            n, slots, whole = taken
            nodes.append(self.names[n])
            if owner is not None:
                self.owners.setdefault(owner, []).extend(
                    (n, g, bytes_per_gpu, whole) for g in slots
                )
        return nodes

    def _place_one(
        self, gpus: int, need: int, hint: int | None
    ) -> tuple[int, list[int], bool] | None:
        slots = max(gpus, 1)
        if self.sharing and gpus == 1:
            return self._place_shared(need, hint)
        if hint is not None and self._fitting_whole(hint, need) >= slots:
            n = hint
        elif need <= self.min_usable:
            n = self._pop_bucket(slots)
            if n is None:
                return None
        else:
            best = None
            for i in range(len(self.names)):
                fit = self._fitting_whole(i, need)
                if fit >= slots and (best is None or fit < best[0]):
                    best = (fit, i)
            if best is None:
                return None
            n = best[1]
        candidates = sorted(
            (self.usable[n][g], g)
            for g in range(len(self.usable[n]))
            if self.whole[n][g] and self.usable[n][g] >= need
        )
        taken = [g for _, g in candidates[:slots]]
        for g in taken:
            self._take_whole(n, g)
        return n, taken, True

    def _pop_bucket(self, slots: int) -> int | None:
        for k in range(slots, len(self._buckets)):
            heap = self._buckets[k]
            while heap:
                n = heap[0]
                if self.whole_count[n] == k:
                    return n
                heapq.heappop(heap)
        return None

    def _set_whole_count(self, n: int, k: int) -> None:
        old = self.whole_count[n]
        self._count_by_k[old] -= 1
        self._count_by_k[k] += 1
        self.free_whole_gpus += k - old
        self.whole_count[n] = k
        heapq.heappush(self._buckets[k], n)

    def _take_whole(self, n: int, g: int) -> None:
        if self.sharing:
            self._shared_remove(n, g)
        self.whole[n][g] = False
        self.free[n][g] = 0
        self._set_whole_count(n, self.whole_count[n] - 1)

    def _shared_remove(self, n: int, g: int) -> None:
        key = (self.free[n][g], n, g)
        i = bisect.bisect_left(self._shared, key)
        if i < len(self._shared) and self._shared[i] == key:
            del self._shared[i]

    def _place_shared(self, need: int, hint: int | None) -> tuple[int, list[int], bool] | None:
        choice = None
        if hint is not None:
            fits = [
                (self.free[hint][g], g)
                for g in range(len(self.free[hint]))
                if self.free[hint][g] >= need
            ]
            if fits:
                choice = (hint, min(fits)[1])
        if choice is None:
            i = bisect.bisect_left(self._shared, (need, -1, -1))
            if i >= len(self._shared):
                return None
            _, n, g = self._shared[i]
            choice = (n, g)
        n, g = choice
        self._shared_remove(n, g)
        was_whole = self.whole[n][g]
        self.free[n][g] -= need
        if was_whole:
            self.whole[n][g] = False
            self._set_whole_count(n, self.whole_count[n] - 1)
        bisect.insort(self._shared, (self.free[n][g], n, g))
        return n, [g], False

    def release(self, owner: tuple[str, str]) -> bool:
        """Give back everything ``owner`` holds; whether it held anything."""
        held = self.owners.pop(owner, None)
        if not held:
            return False
        self.answers.clear()
        for n, g, need, whole in held:
            if self.sharing:
                self._shared_remove(n, g)
            if whole:
                self.free[n][g] = self.usable[n][g]
            else:
                self.free[n][g] = min(self.usable[n][g], self.free[n][g] + need)
            if self.free[n][g] == self.usable[n][g] and not self.whole[n][g]:
                self.whole[n][g] = True
                self._set_whole_count(n, self.whole_count[n] + 1)
            if self.sharing:
                bisect.insort(self._shared, (self.free[n][g], n, g))
        return True
