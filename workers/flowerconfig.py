"""Flower options from stockpred's settings (`celery -A workers flower --conf=<this file>`).

Read by Flower as a config file, when Flower starts. Bound to FLOWER_ADDRESS (127.0.0.1 by
default) because Flower serves /metrics and /healthcheck without auth even when basic auth is
on (flower#1342). State persists in DataTree.flower_db.
"""

from stockpred.paths import DataTree
from stockpred.settings import get_settings

_settings = get_settings()
_tree = DataTree.from_settings(_settings)

address = _settings.flower_address
port = _settings.flower_port
if not _settings.flower_basic_auth:
    raise SystemExit(
        "stockpred: FLOWER_BASIC_AUTH is not set; run `stockpred setup` to generate it into "
        f"{_tree.persistent_env}, or set it to user:password"
    )
basic_auth = [_settings.flower_basic_auth]
persistent = True
db = str(_tree.flower_db)
state_save_interval = 60000
purge_offline_workers = 3600
