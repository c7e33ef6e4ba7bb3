"""Object storage behind one small interface: `file://` (the embedded default) and `s3://`.

Every backend builds on `StoreAdapter`, whose public methods raise `seml.errors.StorageError`
(`ObjectNotFound` for a missing object) naming the object, with the foreign cause kept; none
lets a boto3 or OS exception escape. Configuration (`S3Config`) is read by `open_store` and
passed in.
"""

from seml.store._base import ObjectInfo, ObjectNotFound, ObjectStore, StoreAdapter
from seml.store._file import FileStore
from seml.store._memory import MemoryStore
from seml.store._open import open_store, s3_config_from_env
from seml.store._s3 import S3Config, S3Store

__all__ = [
    "FileStore",
    "MemoryStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "S3Config",
    "S3Store",
    "StoreAdapter",
    "open_store",
    "s3_config_from_env",
]
