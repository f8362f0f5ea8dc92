"""TRACKED_SYMBOLS: normalised, de-duplicated, a clear error for a bad symbol, default embedded."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockpred.ledger.tracking import default_symbols
from stockpred.market.embedded import embedded_symbols
from stockpred.settings import SettingsError, load_settings


def test_without_the_setting_the_embedded_symbols_are_tracked(tmp_path: Path) -> None:
    settings = load_settings({"STOCKPRED_DATA_DIR": str(tmp_path)})
    assert settings.tracked_symbols is None
    assert default_symbols(settings) == tuple(embedded_symbols())
    assert {"AAPL", "^GSPC"} <= set(default_symbols(settings))


def test_symbols_are_normalised_and_kept_once_in_the_given_order(tmp_path: Path) -> None:
    settings = load_settings(
        {"STOCKPRED_DATA_DIR": str(tmp_path), "TRACKED_SYMBOLS": " nvda, ^gspc,NVDA,, brk-b "}
    )
    assert default_symbols(settings) == ("NVDA", "^GSPC", "BRK-B")


def test_a_bad_symbol_is_refused_with_the_forms_allowed(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"TRACKED_SYMBOLS.*symbols separated by commas"):
        load_settings({"STOCKPRED_DATA_DIR": str(tmp_path), "TRACKED_SYMBOLS": "AAPL,no way"})
