"""DATABASE_URL: the accepted forms, a clear error otherwise, and a password never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockpred.ledger.database import ledger_url, shown_url
from stockpred.settings import SettingsError, load_settings


def test_without_database_url_the_ledger_is_sqlite_in_the_data_tree(tmp_path: Path) -> None:
    settings = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)})
    assert settings.database_url is None
    url = ledger_url(settings)
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(tmp_path / "ledger" / "forecasts.db")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgresql://u:p@db:5432/ledger", "postgresql+psycopg://u:p@db:5432/ledger"),
        ("postgres://u:p@db/ledger", "postgresql+psycopg://u:p@db/ledger"),
        ("postgresql+psycopg://u@db/ledger", "postgresql+psycopg://u@db/ledger"),
        ("sqlite:////srv/ledger.db", "sqlite:////srv/ledger.db"),
    ],
)
def test_accepted_urls_are_kept_in_sqlalchemys_spelling(raw: str, expected: str) -> None:
    assert load_settings({"DATABASE_URL": raw}).database_url == expected


@pytest.mark.parametrize(
    "raw",
    [
        "mysql://u:s3cr3t-pw@db/ledger",
        "postgresql://u:s3cr3t-pw@db",  # no database named
        "sqlite://",  # in memory: nothing would be kept
        "sqlite:///:memory:",
        "not a url s3cr3t-pw",
    ],
)
def test_an_unsupported_url_is_a_clear_error_that_hides_the_value(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"DATABASE_URL": raw})
    message = str(caught.value)
    assert "DATABASE_URL" in message
    assert "sqlite:///" in message and "postgresql://" in message
    assert "s3cr3t-pw" not in message


def test_the_password_is_masked_in_settings_output_and_shown_urls() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://u:s3cr3t-pw@db/ledger"})
    assert settings.masked_values()["database_url"] == "(set)"
    assert "s3cr3t-pw" not in repr(settings)
    shown = shown_url(ledger_url(settings))
    assert "s3cr3t-pw" not in shown
    assert shown == "postgresql+psycopg://u:***@db/ledger"


def test_the_default_sqlite_file_may_sit_under_any_folder_name(tmp_path: Path) -> None:
    odd = tmp_path / "data?v=1 #2"
    url = ledger_url(load_settings({"STOCKPRED_DATA_DIR": str(odd)}))
    assert url.database == str(odd / "ledger" / "forecasts.db")
