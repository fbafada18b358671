"""terapix-fw: a TERAPIX-style pipeline framework for wide-field imaging surveys.

Core modules, one concern each: ``params`` (parameter declarations), ``config`` (AstrOmatic configuration
files and command lines), ``tool`` (the tool interface), ``hookspecs``/``plugins`` (pluggy), ``instructions``
(XML instruction files), ``graph`` (task graph), ``executors`` (local pool, Dask), ``runner``, ``history``
(processing history), ``db`` (RDBix), ``sim`` (simulator), ``web`` (reports), ``cli``.
"""
__version__ = "0.1.0"
