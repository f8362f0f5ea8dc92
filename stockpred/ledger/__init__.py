"""The forecast ledger: every computed forecast kept append-only in a database, and its score.

`entries` (the records), `schema` (tables), `database` (engine from the settings), `migrate`
(Alembic, scripts in `migrations/`), `store` (`ForecastLedger`), `scoring` (pure scoring),
`service` (scoring every due forecast from one read of each symbol's bars). Importing the
package connects to nothing; it imports neither web, tasks nor workers.
"""
