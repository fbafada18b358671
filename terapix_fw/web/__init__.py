"""terapix_fw.web"""
