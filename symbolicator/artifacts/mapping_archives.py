"""ZIP archives of ProGuard mappings, as sentry-cli 2.x sends them to the single-request upload.

`sentry-cli upload-proguard` (2.x, without chunk uploads) zips each mapping as
`proguard/<uuid>.txt` and posts the archive to `/files/dsyms/`. Such an archive is
unpacked here and each mapping published under the UUID its entry is named by; any
other ZIP stays what it was ("not a debug file"). Entry count and unpacked size are
bounded as for source bundles.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from symbolicator.errors import MalformedObject

ZIP_MAGIC = b"PK\x03\x04"
_ENTRY = re.compile(r"^proguard/[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\.txt$")


@contextmanager
def mapping_entries(path: Path, work_dir: Path, max_entries: int, max_uncompressed: int) -> Iterator[list[Path]]:
    """The archive's mappings unpacked into `work_dir` (named as in the archive, `proguard/<uuid>.txt`),
    or an empty list when `path` is not such an archive. The files are removed on exit."""
    with open(path, "rb") as f:
        if f.read(4) != ZIP_MAGIC:
            yield []
            return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        yield []
        return
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if not infos or not all(_ENTRY.match(i.filename) for i in infos):
            yield []
            return
        if len(infos) > max_entries or sum(i.file_size for i in infos) > max_uncompressed:
            raise MalformedObject(f"mapping archive over its bounds ({len(infos)} entries)")
        folder = work_dir / f"mappings-{path.name}"
        try:
            out = []
            for info in infos:
                dest = folder / info.filename
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                if dest.stat().st_size > max_uncompressed:
                    raise MalformedObject("mapping archive entry larger than it claims")
                out.append(dest)
            yield out
        finally:
            shutil.rmtree(folder, ignore_errors=True)
