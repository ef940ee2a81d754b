"""Hub-side parts of dshare: authenticators, spawners, the per-organization broker, the CLI."""

__version__ = "0.1.0"
