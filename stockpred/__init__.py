"""stockpred's domain: settings, the persistent_data tree, market data, models, storage.

Importable without Flask or Celery; imports neither `web`, `tasks` nor `workers`.
"""
