"""User-server parts of dshare: REST handlers, the %dshare_run magic, workflows, the local runner."""
