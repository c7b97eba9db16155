"""Example compressai-rdc plugin package (see ``plugin.py``)."""
