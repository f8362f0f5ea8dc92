"""The ledger's migrations, one module per revision, oldest first."""
