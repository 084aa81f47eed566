"""Run store: SQLite database of runs plus content-addressed blobs."""
from .blobs import BlobStore
from .runs import STATUSES, RunStore

__all__ = ["BlobStore", "RunStore", "STATUSES"]
