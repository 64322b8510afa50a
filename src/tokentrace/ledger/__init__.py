"""The usage ledger: where every call's row is kept and read back.

Owns the connections and the two dialects (``db``, ``store``: SQLite and PostgreSQL), the tables and their
migrations (``schema``), where a ledger may live and whether it is safe to use (``location``), the hourly roll-up
(``rollup``) and the reports read from it (``reports``, public as ``tokentrace.reports``). The writer that appends
rows off the calling thread is the ledger *sink* (``tokentrace.sinks.ledger``): the adapter between the recorder and
this package. May import ``budgets`` (the per-principal table is kept in the writer's transaction) and the shared
utilities; nothing here imports ``pricing``, ``providers``, ``wire``, ``sinks`` or ``cli``.
"""
