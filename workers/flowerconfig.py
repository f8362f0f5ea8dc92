"""Flower options from stockpred's settings (`celery -A workers flower --conf=<this file>`).

Bound to FLOWER_ADDRESS (127.0.0.1 by default) because Flower serves /metrics and /healthcheck
without auth even when basic auth is on (flower#1342). State persists under monitoring/.
"""

from stockpred.settings import get_settings

_settings = get_settings()

address = _settings.flower_address
port = _settings.flower_port
if not _settings.flower_basic_auth:
    raise SystemExit(
        "stockpred: FLOWER_BASIC_AUTH is not set; run `stockpred setup` to generate it into "
        f"{_settings.persistent_env}, or set it to user:password"
    )
basic_auth = [_settings.flower_basic_auth]
persistent = True
db = str(_settings.data_dir / "monitoring" / "flower.db")
state_save_interval = 60000
purge_offline_workers = 3600
