"""Alembic's scripts for the ledger: `env.py`, the script template, and `versions/`.

Run through `stockpred.ledger.migrate` (which passes the connection); there is no alembic.ini.
"""
