"""terapix_fw.db"""
