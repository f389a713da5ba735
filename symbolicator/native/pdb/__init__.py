"""PDB files (MSF 7.00): identity and conversion into a symcache, pure Python over a memory map.

`identity(path)` gives the GUID and age of Sentry's debug id; `build_symcache(path)` the symcache
(addresses are RVAs, like the Breakpad path's module-relative ones). docs/formats.md ("PDB")
describes what is read and how it differs from Symbolicator.
"""

from symbolicator.native.pdb.conversion import build_symcache
from symbolicator.native.pdb.identity import PdbIdentity, identity, read_identity
from symbolicator.native.pdb.msf import MSF_MAGIC

__all__ = ["MSF_MAGIC", "PdbIdentity", "build_symcache", "identity", "read_identity"]
