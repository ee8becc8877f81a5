"""The ``d3dface`` command line."""
