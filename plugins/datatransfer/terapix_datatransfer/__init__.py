"""terapix-fw plugin datatransfer: dispatch files across the nodes of a cluster over SSH/SFTP."""
__all__: list[str] = []
