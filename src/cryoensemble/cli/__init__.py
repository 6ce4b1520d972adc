"""The ``cryoensemble`` command line: parses options and calls the library, nothing more."""
