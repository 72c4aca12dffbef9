"""Content-addressed blob store over fsspec and safe extraction of uploaded bundles."""
