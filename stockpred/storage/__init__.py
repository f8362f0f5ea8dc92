"""Storage maintenance of persistent_data: checks now; backup, restore, cleanup, monitor later."""
