"""The signed channel on disk: TUF repository (python-tuf Metadata API) and its keys."""
