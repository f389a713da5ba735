"""JavaScript symbolication: `/symbolicate-js`, the JS half of `/symbolicate-any`, and the offline CLI.

* `request.py`: the request model and the mapping of frames through a module (shared by the
  service and the CLI, so both print the same JSON);
* `lookup.py`: finding a frame's minified file and source map in Symbolicator's order, and
  converting each map once;
* `scraping.py`: fetching from websites, under the scraping rules;
* `offline.py`: the same lookup from folders, for `symbolicator symbolicate`;
* `mixed.py`: `/symbolicate-any`, JS and native frames in one event.

The request model and `symbolicate` are importable from the package.
"""

from symbolicator.service.js.request import (
    CONTEXT_LINES,
    GetModule,
    JsRequest,
    Module,
    OriginalSource,
    ScrapingOptions,
    is_valid_abs_path,
    symbolicate,
)

__all__ = ["CONTEXT_LINES", "GetModule", "JsRequest", "Module", "OriginalSource", "ScrapingOptions",
           "is_valid_abs_path", "symbolicate"]
