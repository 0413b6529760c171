"""Where Kopf keeps its own bookkeeping on a ModelDeployment: in ``status``, with our status.

Kopf remembers the last spec it handled (its diffbase: a later event is an update only when the
spec differs) and each handler's progress (retries, delays). In annotations, that is a PATCH of
the object besides the status PATCH: two writes for every handled deployment, and a crash between
them leaves one without the other. In ``status.kopf`` (``lastHandledSpec``, ``progress``; the
CRD preserves it: ``api.ModelDeploymentStatus.kopf``) it goes in the same status PATCH as the
status the handler returns: one write (issue 15: at most 4 API calls per placed deployment).

Status is the operator's own (it never writes ``spec``; GitOps tools leave ``status`` alone), and
only the status subresource is written.

Upgrade from annotations (before: ``memplace.io/last-handled-spec`` and the progress
annotations ``memplace.io/<handler>``): both storages are read, status first, so an object an
older operator handled is not taken for a new one (a create would re-plan it as a fresh
placement); what is written goes to status only. Old progress annotations are purged when a
handler finishes (one metadata PATCH, once); the old diffbase annotation is left where it is: it
is read only if ``status.kopf`` is lost (a restore without status), and then an update is the
worst it causes (a re-plan under the usual move rules).
"""

from __future__ import annotations

from typing import Any

import kopf

__all__ = ["PREFIX", "diffbase_storage", "progress_storage"]

PREFIX = "memplace.io"
"""The annotations' prefix before (``memplace.io/last-handled-spec``): read for upgrades."""
STATUS_FIELD = "status.kopf"


class _StatusFirstDiffBase(kopf.MultiDiffBaseStorage):
    """Reads status, then the old annotation; writes status only."""

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        primary = next(iter(self.storages))
        primary.store(body=body, patch=patch, essence=essence)


class _StatusFirstProgress(kopf.MultiProgressStorage):
    """Reads status, then the old annotations; writes status only, purges both (an annotation
    is purged only where the object has it)."""

    def store(self, *, key: Any, record: Any, body: Any, patch: Any) -> None:
        next(iter(self.storages)).store(key=key, record=record, body=body, patch=patch)

    def touch(self, *, body: Any, patch: Any, value: str | None) -> None:
        next(iter(self.storages)).touch(body=body, patch=patch, value=value)


def diffbase_storage() -> kopf.DiffBaseStorage:
    """``status.kopf.lastHandledSpec``, falling back to the annotation of older operators."""
    return _StatusFirstDiffBase(
        [
            kopf.StatusDiffBaseStorage(field=f"{STATUS_FIELD}.lastHandledSpec"),
            kopf.AnnotationsDiffBaseStorage(prefix=PREFIX, key="last-handled-spec"),
        ]
    )


def progress_storage() -> kopf.ProgressStorage:
    """``status.kopf.progress``, falling back to the annotations of older operators."""
    return _StatusFirstProgress(
        [
            kopf.StatusProgressStorage(
                field=f"{STATUS_FIELD}.progress", touch_field=f"{STATUS_FIELD}.dummy"
            ),
            kopf.AnnotationsProgressStorage(prefix=PREFIX),
        ]
    )
