"""Call frame information (CFI): how to find a caller's registers at any address of a module.

* `dwarf_cfi.py` decodes DWARF `.eh_frame` / `.debug_frame` (CIEs, FDEs, the CFA programs) into
  rows: from an address on, the CFA is `reg + offset` and each saved register has a rule;
* `breakpad_cfi.py` reads the same rows from Breakpad `STACK CFI` records;
* `cache.py` is the compact, memory-mapped *CFI cache* those rows are converted into once per
  module (sorted row addresses + deduplicated rule sets), kept in the derived cache beside the
  symcache, and read by the stack walker with one bisect per frame.
"""
