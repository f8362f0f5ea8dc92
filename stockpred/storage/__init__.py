"""persistent_data storage: check, archive format, catalog, backup, restore, cleanup, monitor."""
