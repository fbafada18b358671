"""Hook implementations of terapix_fw.db (filled in by its issue)."""
