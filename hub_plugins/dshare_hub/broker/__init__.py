"""The per-organization broker: a JupyterHub service between users and the ledger.

It knows who calls (from the hub), holds the org's ledger identity and KEK, seals storage
details, materializes leased data for runs (locally or for other orgs' brokers on signed
request) and reaps what expired.
"""
