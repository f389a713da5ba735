"""JVM symbolication: `/symbolicate-jvm` and the offline CLI's Java traces.

* `request.py`: the request model and remapping a request's exceptions, frames and classes
  (shared by the service and the CLI, so both print the same JSON);
* `lookup.py`: finding a ProGuard mapping by UUID in the scope's uploads and converting it once;
* `sources.py`: source context from JVM source bundles;
* `service.py`: `JvmService`, the long-lived part `Services` holds.

The request model and `symbolicate` are importable from the package.
"""

from symbolicator.service.jvm.request import JvmRequest, symbolicate

__all__ = ["JvmRequest", "symbolicate"]
