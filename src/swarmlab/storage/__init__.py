"""Content-addressed blob store over fsspec and safe extraction of uploaded bundles."""

from swarmlab.storage.blobs import BlobNotFound, BlobStore

__all__ = ["BlobNotFound", "BlobStore"]
