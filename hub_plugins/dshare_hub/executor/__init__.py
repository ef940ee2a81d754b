"""The embedded executor: runs validated runs in bubblewrap under per-run identities.

A JupyterHub service running as root (the operator's trusted component, never given
keys); the embedded deployment's root launcher starts it beside a non-root hub. Brokers
hand it runs; it seeds a per-run workspace, runs the jobs as an unprivileged per-run uid
with leased data bound read-only and no network, then passes what the jobs wrote through
the output gate before anything reaches the scientist.
"""
