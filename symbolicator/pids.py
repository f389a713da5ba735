"""Whether a process still runs: the one test behind every "whose temp files are these?" sweep.

Local storage, the disk caches and the service's per-process work folders name their
temp files or folders after the pid that writes them, and remove those whose process
is gone. They share this one check; it lives apart from all of them so that none has
to import another for it (`caching/` does not depend on `storage/`).
"""

from __future__ import annotations

import errno
import os


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (on this host's pid namespace): whose temp files may still be in use."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError as e:
        return e.errno != errno.ESRCH
    return True
