"""terapix_fw.sim"""
