"""Restoring a backup: the policy checks, verification, a safety backup, then the swap.

A restore writes only bytes it verified in the same run: it verifies the backup and every
archive it depends on (`stockpred.storage.verify`: confined archive names, the manifest checked
against the tree's path→category map, every checksum), then streams the wanted members of
exactly those archives into temp files, checking each against the verified manifest again, and
swaps them in only when all are staged (`stockpred.storage.staging`). When an encryption key is
configured, a backup (or a base) that is not encrypted is refused unless the operator allows it
for this run: anyone able to write backups/ could have made it, while Fernet authenticates what
was sealed with the key. Before anything changes, the disk must have room for the new files
and a safety backup of what will be replaced is taken. Files that exist live but not in the
backup are left alone, and logs are restored only when named. `config/persistent.env` keeps the
current secrets unless asked otherwise (`stockpred.storage.secrets`); which differed is
reported either way.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stockpred.infra.files import sha256_file
from stockpred.ledger.pg_dump import restore as restore_postgresql
from stockpred.ledger.snapshot import load_into, snapshot_sha256
from stockpred.paths import BACKUP_CATEGORIES, DataTree, free_bytes
from stockpred.storage.archive import FileEntry
from stockpred.storage.backup import SPACE_MARGIN, create_backup
from stockpred.storage.catalog import resolve
from stockpred.storage.errors import BackupError, InsufficientSpace
from stockpred.storage.secrets import merge_env_file
from stockpred.storage.staging import StagedFile, discard, stage, swap_in
from stockpred.storage.verify import chain_of, check_backup

log = logging.getLogger(__name__)


@dataclass
class RestoreResult:
    """What a restore changed (or, dry-run, would change)."""

    name: str
    dry_run: bool
    categories: list[str]
    changed: list[str]
    added: list[str]
    unchanged: int
    safety_backup: str | None
    staged: list[str]
    seconds: float
    # Names (never values) of secrets whose backed-up value is not the current one, and those
    # of them kept at their current value.
    secrets_differed: list[str] = field(default_factory=list)
    secrets_kept: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def refuse_unencrypted(backups: Path, name: str, key: str | None, allow: bool) -> None:
    """With a key configured, refuse a backup whose chain holds a plain archive (unless allowed)."""
    if not key or allow:
        return
    chain = chain_of(backups, resolve(backups, name))
    plain = [n for n, info in chain.items() if not info.encrypted]
    if plain:
        raise BackupError(
            f"{plain[0]} is not encrypted while BACKUP_ENCRYPTION_KEY is set: anyone who can "
            "write backups/ could have made it, so it is not restored; if you know where it "
            "came from, allow it for this restore (`stockpred storage restore --allow-unencrypted`)"
        )


def restore_backup(
    tree: DataTree,
    *,
    name: str | None = None,
    categories: list[str] | None = None,
    dry_run: bool = False,
    key: str | None = None,
    allow_unencrypted: bool = False,
    restore_secrets: bool = False,
    progress: Callable[[int, int], None] | None = None,
    disk_free: Callable[[Path], int] = free_bytes,
    ledger_url: str | None = None,
) -> RestoreResult:
    """Restore a verified backup (default: the newest) into the live tree.

    `ledger_url`: DATABASE_URL when set (a PostgreSQL ledger, loaded from the backup's dump);
    None for the tree's SQLite ledger.
    """
    started = time.perf_counter()
    info = resolve(tree.backups, name)
    # Logs are an audit trail, not state: rewinding them would drop lines written since the
    # backup, so they are restored only when asked for by name.
    chosen = list(categories or [c for c in info.categories if c != "logs"])
    unknown = [c for c in chosen if c not in BACKUP_CATEGORIES]
    if unknown:
        raise BackupError(f"unknown categories {unknown}; choose from {list(BACKUP_CATEGORIES)}")
    refuse_unencrypted(tree.backups, info.name, key, allow_unencrypted)
    checked = check_backup(tree, info, key)
    if not checked.result.ok:
        raise BackupError(
            f"{info.name} failed verification; nothing was restored: "
            + "; ".join(checked.result.problems[:5])
        )
    wanted = [e for e in checked.manifest if e.category in chosen]
    _refuse_other_ledger(tree, info.name, wanted, ledger_url)
    changed, added, same = _differences(tree, wanted)
    if dry_run:
        return RestoreResult(
            info.name, True, chosen, changed, added, same, None, [], time.perf_counter() - started
        )
    todo = [e for e in wanted if e.path in set(changed) | set(added)]
    needed = sum(e.size for e in todo) + SPACE_MARGIN
    available = disk_free(tree.root)
    if available < needed:
        raise InsufficientSpace(
            f"restoring {info.name} needs about {needed} bytes free under {tree.root}; only "
            f"{available} are free; nothing was restored"
        )
    safety = None
    if changed:
        # Encrypted like the backups it protects: it holds the files a restore replaces.
        safety = create_backup(
            tree,
            categories=[c for c in chosen if c != "redis"],
            kind="safety",
            key=key,
            encrypt=key is not None,
            ledger_url=ledger_url,
        ).info.name
    staged = stage(tree, info.name, todo, checked.archives, key)
    try:
        differed, kept = _keep_secrets(tree, info.name, staged, restore_secrets)
        swap_in(staged, progress, loaders=_ledger_loaders(tree, ledger_url))
    except BaseException:
        discard(staged)
        raise
    return RestoreResult(
        info.name,
        False,
        chosen,
        changed,
        added,
        same,
        safety,
        [str(s.target) for s in staged if s.target.parent == tree.backups],
        time.perf_counter() - started,
        differed,
        kept,
    )


def _keep_secrets(
    tree: DataTree, name: str, staged: list[StagedFile], restore_secrets: bool
) -> tuple[list[str], list[str]]:
    """Apply the secrets policy to a staged persistent.env; log which secrets differed."""
    for item in staged:
        if item.target != tree.persistent_env:
            continue
        merge = merge_env_file(item.temp, item.target, restore_secrets=restore_secrets)
        if merge.kept:
            log.warning(
                "restore of %s: kept the current %s (the backup holds other values); "
                "restore with --restore-secrets to bring the backup's back",
                name,
                ", ".join(merge.kept),
            )
        elif merge.differed:
            log.warning(
                "restore of %s: brought back the backup's %s (they differ from the current ones)",
                name,
                ", ".join(merge.differed),
            )
        return merge.differed, merge.kept
    return [], []


def _refuse_other_ledger(
    tree: DataTree, name: str, wanted: list[FileEntry], ledger_url: str | None
) -> None:
    """Refuse, before anything changes, a ledger copy of another kind than the live ledger."""
    live = tree.ledger_db if ledger_url is None else tree.ledger_pg_dump
    for entry in wanted:
        if entry.category == "ledger" and tree.root / entry.path != live:
            held = "a PostgreSQL dump" if entry.path.endswith(".dump") else "a SQLite ledger"
            using = "SQLite in this data tree" if ledger_url is None else "DATABASE_URL"
            raise BackupError(
                f"{name} holds {held} while the ledger is {using}; nothing was restored: "
                "restore it where its ledger lives, or leave the ledger out "
                "(--categories without ledger)"
            )


def _ledger_loaders(tree: DataTree, ledger_url: str | None) -> dict[Path, Callable[[Path], None]]:
    """How a staged ledger copy reaches the live ledger."""
    if ledger_url is None:
        return {tree.ledger_db: lambda staged: load_into(staged, tree.ledger_db)}
    return {tree.ledger_pg_dump: lambda staged: restore_postgresql(staged, ledger_url)}


def _differences(tree: DataTree, wanted: list[FileEntry]) -> tuple[list[str], list[str], int]:
    """(changed, added, unchanged count) of the live tree against the backup's files."""
    changed, added, same = [], [], 0
    for entry in wanted:
        live = tree.root / entry.path
        if live == tree.ledger_pg_dump:
            # A dump is never compared: the database is restored from it as a whole.
            changed.append(entry.path)
        elif not live.is_file():
            added.append(entry.path)
        elif live == tree.ledger_db:
            # A backup holds a snapshot of the ledger: compare with a snapshot taken now.
            scratch = tree.backups / f".restore-{os.getpid()}-ledger.partial"
            if snapshot_sha256(live, scratch) != entry.sha256:
                changed.append(entry.path)
            else:
                same += 1
        elif live.stat().st_size != entry.size or sha256_file(live) != entry.sha256:
            changed.append(entry.path)
        else:
            same += 1
    return changed, added, same
