"""Hook implementations of terapix_fw.web (filled in by its issue)."""
