"""The DataAsset contract: plain Python over a small ledger-stub protocol.

The same code runs inside the embedded ledger and as Fabric chaincode-as-a-service.
"""
