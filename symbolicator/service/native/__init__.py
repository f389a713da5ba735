"""Native symbolication: `/symbolicate`, Apple crash reports, minidumps' frames and the offline CLI.

* `request.py`: the request model, frames mapped to modules, the caller-address heuristic,
  and the answer in Symbolicator's shape;
* `modules.py`: finding, fetching and converting one module's debug file into a symcache, once.

The request model and `symbolicate` are importable from the package.
"""

from symbolicator.service.native.request import (
    NativeRequest,
    RawFrame,
    RawModule,
    RawThread,
    Resolve,
    symbolicate,
)

__all__ = ["NativeRequest", "RawFrame", "RawModule", "RawThread", "Resolve", "symbolicate"]
