"""Run store: SQLite database of runs plus content-addressed blobs."""
from .blobs import BlobStore
from .runs import RunStore
from ..records import STATUSES

__all__ = ["BlobStore", "RunStore", "STATUSES"]
