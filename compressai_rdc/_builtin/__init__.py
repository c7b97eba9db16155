"""Built-in plugins: the glue that registers compressai-rdc's own parts through
the same hooks third-party plugins use. One module per subsystem; the parts
themselves live in ``layers/``, ``models/``, ``qmap/``, ``losses/``, ``tasks/``."""
