"""Hook implementations of terapix_fw.sim (filled in by its issue)."""
