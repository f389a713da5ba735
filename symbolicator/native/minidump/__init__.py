"""Minidumps: a pure reader (`reader.py`), CPU contexts (`context.py`), the dump's memory
(`memory.py`) and the stack walker (`walker.py`).

Everything here works on bytes already in memory and knows nothing of storage, HTTP or the
symcache: the service (`service/minidump.py`) feeds it the dump and the modules' CFI caches,
and turns the walked stacks into a native symbolication request.
"""
