"""Secrets in backups: which variables are secret, keeping rotated ones through a restore, modes.

A backup of the `config` category holds `config/persistent.env`, with the API token, Flower's
password and perhaps the encryption key. Restoring an old copy would silently bring back a token
that was rotated since, so by default a restore keeps the current secrets: the backup's file is
restored with its secret lines replaced by the live ones, and the names (never the values) of
the secrets that differed are reported and logged. The operator may ask for the backup's
secrets instead. Which variables are secret is what `stockpred.settings` declares (its
fields with `repr=False`); which files hold secrets, `DataTree.secret_files`.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from stockpred.paths import DataTree
from stockpred.settings import Settings, SettingsError, read_env_file, seed_names
from stockpred.storage.errors import BackupError


def secret_variables() -> frozenset[str]:
    """The variable names of every setting declared secret."""
    return frozenset(
        name
        for field in Settings.model_fields.values()
        if field.repr is False
        for name in seed_names(field)
    )


def _line_key(line: str) -> str | None:
    """The variable a KEY=VALUE line sets (None for blanks and comments)."""
    text = line.strip()
    if not text or text.startswith("#") or "=" not in text:
        return None
    text = text.removeprefix("export ").lstrip()
    key = text.split("=", 1)[0].strip()
    return key if key.isidentifier() else None


@dataclass(frozen=True)
class SecretsMerge:
    """How restoring an env file treated its secrets."""

    differed: list[str]  # names whose value in the backup is not the current one
    kept: list[str]  # of those, the ones left at their current value


def merge_env_file(staged: Path, live: Path, *, restore_secrets: bool) -> SecretsMerge:
    """Rewrite the staged (verified) env file so it keeps the live secrets unless asked not to.

    Every line of the backup's file is kept except those setting a secret; the live file's
    secret lines follow under a comment. Without a live file there is nothing to keep.
    """
    secret = secret_variables()
    try:
        restored, current = read_env_file(staged), read_env_file(live)
    except SettingsError as exc:
        raise BackupError(f"cannot compare the secrets of {live.name}: {exc}") from None
    differed = sorted(
        name
        for name in secret
        if (name in restored or name in current) and restored.get(name) != current.get(name)
    )
    if restore_secrets or not differed or not live.is_file():
        return SecretsMerge(differed, [])
    lines = [
        line
        for line in staged.read_text(encoding="utf-8").splitlines()
        if _line_key(line) not in secret
    ]
    kept_lines = [
        line for line in live.read_text(encoding="utf-8").splitlines() if _line_key(line) in secret
    ]
    text = "\n".join(lines).rstrip("\n")
    text += "\n\n# Secrets kept at their values from before the restore (see the restore log).\n"
    staged.write_text(text + "\n".join(kept_lines) + "\n", encoding="utf-8")
    return SecretsMerge(differed, differed)


def exposed_secret_files(tree: DataTree) -> list[str]:
    """Secret files, and files in backups/, that group or others may read or write."""
    candidates = [p for p in tree.secret_files if p.is_file()]
    if tree.backups.is_dir():
        # The storage lock is an empty file: it holds nothing to read.
        candidates += [
            p for p in sorted(tree.backups.iterdir()) if p.is_file() and p != tree.storage_lock
        ]
    return [
        f"{path} ({oct(stat.S_IMODE(path.stat().st_mode))}; expected 0o600)"
        for path in candidates
        if not path.is_symlink() and path.stat().st_mode & 0o077
    ]
