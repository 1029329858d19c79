"""Blobs: large artifacts (model weights, datasets, images) stored and fetched as verified, content-addressed chunks.

See docs/blobs.md. :mod:`.merkle` holds the tree and ids, :mod:`.store` the on-disk store of a home.
"""

from gaia_core.blobs.merkle import CHUNK_SIZE, blob_id
from gaia_core.blobs.store import BlobError, BlobInfo, BlobStore, UnknownBlob, home_store

__all__ = ["CHUNK_SIZE", "BlobError", "BlobInfo", "BlobStore", "UnknownBlob", "blob_id", "home_store"]
