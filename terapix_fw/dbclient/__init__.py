"""dbClient: XML instruction documents sent by every node to the server that alone writes RDBix.

Modules: ``xmldoc`` (documents <-> XML, the XSD generated from the instruction set), ``auth`` (shared
secret, HMAC-SHA256 signatures), ``client`` (durable spool, ordered replay), ``server`` (HTTP, batched
single-writer transactions).
"""
