"""Object storage behind one small interface: `file://` (the embedded default) and `s3://`.

Every backend raises `seml.errors.StorageError` (`ObjectNotFound` for a missing object) naming
the object, with the foreign cause kept; none lets a boto3 or OS exception escape.
"""

from seml.store._base import ObjectInfo, ObjectNotFound, ObjectStore
from seml.store._file import FileStore
from seml.store._memory import MemoryStore
from seml.store._open import open_store
from seml.store._s3 import S3Store

__all__ = [
    "FileStore",
    "MemoryStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "S3Store",
    "open_store",
]
