"""Layouts and source configs, checked against the paths reference §2.3 documents.

Expected paths are written out by hand from the documented rules (and the examples in
Symbolicator's `paths.rs` tests), never produced by the module under test.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolicator.errors import ConfigError, InvalidShape
from symbolicator.sources import (
    FilesystemSource,
    HttpSource,
    Layout,
    ModuleQuery,
    S3Source,
    SentrySource,
    SourceConfig,
    candidate_paths,
    fingerprint,
    parse_config_sources,
    plan_sources,
)
from symbolicator.types import Arch, CodeId, DebugId

ELF = ModuleQuery(
    object_type="elf",
    code_id=CodeId.parse("dfb85de42daffd09640c8fe377d572de3e168920"),
    debug_id=DebugId.parse("e45db8df-af2d-09fd-640c-8fe377d572de"),
    arch=Arch.X86_64,
    code_file="/lib/x86_64-linux-gnu/libm-2.23.so",
    debug_file="/lib/x86_64-linux-gnu/libm-2.23.so",
)
MACHO = ModuleQuery(
    object_type="macho",
    debug_id=DebugId.parse("67e9247c-814e-392b-a027-dbde6748fcbf"),
    code_file="/Users/travis/build/getsentry/breakpad-tools/macos/build/./crash",
    debug_file="crash",
)


def paths(layout: str, file_type: str, module: ModuleQuery, casing: str = "default") -> list[str]:
    return candidate_paths(Layout(layout, casing), file_type, module)  # type: ignore[arg-type]


@pytest.mark.parametrize(("layout", "file_type", "module", "expected"), [
    ("native", "elf_code", ELF, ["df/b85de42daffd09640c8fe377d572de3e168920"]),
    ("native", "elf_debug", ELF, ["df/b85de42daffd09640c8fe377d572de3e168920.debug"]),
    ("native", "mach_code", MACHO, ["67E9/247C/814E/392B/A027/DBDE6748FCBF.app"]),
    ("native", "mach_debug", MACHO, ["67E9/247C/814E/392B/A027/DBDE6748FCBF"]),
    ("native", "sourcebundle", ELF, ["libm-2.23.so/E45DB8DFAF2D09FD640C8FE377D572DE0/libm-2.23.so.src.zip",
                                     "df/b85de42daffd09640c8fe377d572de3e168920.src.zip"]),
    ("native", "sourcebundle", MACHO, ["crash/67E9247C814E392BA027DBDE6748FCBF0/crash.src.zip",
                                       "67E9/247C/814E/392B/A027/DBDE6748FCBF.src.zip"]),
    ("unified", "elf_code", ELF, ["df/b85de42daffd09640c8fe377d572de3e168920/executable"]),
    ("unified", "elf_debug", ELF, ["df/b85de42daffd09640c8fe377d572de3e168920/debuginfo"]),
    ("unified", "sourcebundle", ELF, ["df/b85de42daffd09640c8fe377d572de3e168920/sourcebundle"]),
    ("unified", "mach_code", MACHO, ["67/e9247c814e392ba027dbde6748fcbf/executable"]),
    ("unified", "mach_debug", MACHO, ["67/e9247c814e392ba027dbde6748fcbf/debuginfo"]),
    ("unified", "sourcebundle", MACHO, ["67/e9247c814e392ba027dbde6748fcbf/sourcebundle"]),
    ("debuginfod", "elf_code", ELF, ["dfb85de42daffd09640c8fe377d572de3e168920/executable"]),
    ("debuginfod", "elf_debug", ELF, ["dfb85de42daffd09640c8fe377d572de3e168920/debuginfo"]),
    ("debuginfod", "mach_debug", MACHO, []),
    ("symstore", "elf_code", ELF,
     ["libm-2.23.so/elf-buildid-dfb85de42daffd09640c8fe377d572de3e168920/libm-2.23.so"]),
    ("symstore", "elf_debug", ELF, ["_.debug/elf-buildid-sym-dfb85de42daffd09640c8fe377d572de3e168920/_.debug"]),
    ("symstore", "mach_code", MACHO, ["crash/mach-uuid-67e9247c814e392ba027dbde6748fcbf/crash"]),
    ("symstore", "mach_debug", MACHO, ["_.dwarf/mach-uuid-sym-67e9247c814e392ba027dbde6748fcbf/_.dwarf"]),
    ("symstore", "sourcebundle", ELF, []),
    ("symstore_index2", "mach_debug", MACHO, ["_/_.dwarf/mach-uuid-sym-67e9247c814e392ba027dbde6748fcbf/_.dwarf"]),
    ("symstore_index2", "elf_code", ELF,
     ["li/libm-2.23.so/elf-buildid-dfb85de42daffd09640c8fe377d572de3e168920/libm-2.23.so"]),
    ("native", "mach_debug", ELF, []),
    ("native", "elf_debug", MACHO, []),
])
def test_layout_paths_follow_the_reference(layout: str, file_type: str, module: ModuleQuery,
                                           expected: list[str]) -> None:
    assert paths(layout, file_type, module) == expected


def test_casing_applies_to_the_whole_path() -> None:
    assert paths("native", "mach_debug", MACHO, "lowercase") == ["67e9/247c/814e/392b/a027/dbde6748fcbf"]
    assert paths("unified", "elf_debug", ELF, "uppercase") == ["DF/B85DE42DAFFD09640C8FE377D572DE3E168920/DEBUGINFO"]


def test_elf_without_code_id_has_no_path_and_macho_falls_back_to_the_debug_id() -> None:
    no_code = ModuleQuery("elf", debug_id=ELF.debug_id, code_file="libm.so")
    assert all(paths(layout, ft, no_code) == [] for layout in ("native", "unified", "debuginfod", "symstore")
               for ft in ("elf_code", "elf_debug"))
    with_code = ModuleQuery("macho", code_id=CodeId.parse("4C4C4405-5555-3144-A17F-C57D57952E0A"))
    assert paths("native", "mach_debug", with_code) == ["4C4C/4405/5555/3144/A17F/C57D57952E0A"]


@pytest.mark.parametrize("name", ["..", ".", "a/..", "C:\\x\\..", "bad\0name", "line\nbreak", "", "/", "dir/"])
def test_hostile_file_names_produce_no_name_based_path(name: str) -> None:
    m = ModuleQuery("elf", code_id=ELF.code_id, debug_id=ELF.debug_id, code_file=name, debug_file=name)
    assert paths("symstore", "elf_code", m) == []
    assert paths("native", "sourcebundle", m) == ["df/b85de42daffd09640c8fe377d572de3e168920.src.zip"]


def test_windows_and_traversal_names_reduce_to_their_basename() -> None:
    m = ModuleQuery("macho", debug_id=MACHO.debug_id, code_file="..\\..\\..\\etc\\passwd")
    assert paths("symstore", "mach_code", m) == ["passwd/mach-uuid-67e9247c814e392ba027dbde6748fcbf/passwd"]


@settings(max_examples=300, deadline=None)
@given(code_file=st.text(max_size=40), debug_file=st.text(max_size=40))
def test_no_layout_ever_yields_an_unsafe_path(code_file: str, debug_file: str) -> None:
    for module in (ELF, MACHO):
        m = ModuleQuery(module.object_type, module.debug_id, module.code_id, module.arch, code_file, debug_file)
        for layout in ("native", "unified", "debuginfod", "symstore", "symstore_index2", "ssqp"):
            for ft in ("elf_code", "elf_debug", "mach_code", "mach_debug", "sourcebundle"):
                for path in paths(layout, ft, m):
                    assert not path.startswith("/") and "\\" not in path and "\0" not in path
                    assert all(seg not in ("", ".", "..") for seg in path.split("/")), path


def test_config_sources_parse_every_type() -> None:
    sources = parse_config_sources([
        {"id": "local", "type": "filesystem", "path": "/srv/symbols", "layout": {"type": "unified"}},
        {"id": "web", "type": "http", "url": "https://debuginfod.example.org/buildid/",
         "headers": {"Authorization": "Bearer t"}, "layout": {"type": "debuginfod"},
         "filters": {"filetypes": ["elf_debug"], "path_patterns": ["*/libc*"]}},
        {"id": "bucket", "type": "s3", "bucket": "syms", "prefix": "ios/", "region": ["minio", "http://minio:9000"],
         "access_key": "ak", "secret_key": "sk", "layout": {"type": "native", "casing": "lowercase"}},
        {"id": "sentry:project", "type": "sentry", "url": "http://sentry/", "token": "x"},
    ])
    fs, web, bucket, sentry = sources
    assert isinstance(fs, FilesystemSource) and fs.layout == Layout("unified", "default")
    assert isinstance(web, HttpSource) and web.headers == (("Authorization", "Bearer t"),)
    assert web.filters.filetypes == {"elf_debug"} and web.filters.path_patterns == ("*/libc*",)
    assert isinstance(bucket, S3Source) and (bucket.region, bucket.endpoint_url, bucket.prefix) == (
        "minio", "http://minio:9000", "ios")
    assert "sk" not in repr(bucket)
    assert isinstance(sentry, SentrySource)


@pytest.mark.parametrize(("raw", "message"), [
    ({"id": "a", "type": "filesystem", "path": "relative/dir"}, "absolute"),
    ({"id": "a", "type": "http", "url": "ftp://x/"}, "http(s)"),
    ({"id": "a", "type": "http", "url": "https://x/", "layout": {"type": "nope"}}, "layout type"),
    ({"id": "a", "type": "http", "url": "https://x/", "layout": {"casing": "camel"}}, "casing"),
    ({"id": "a", "type": "http", "url": "https://x/", "filters": {"filetypes": ["exe"]}}, "filetypes"),
    ({"id": "a", "type": "http", "url": "https://x/", "colour": "red"}, "unknown key"),
    ({"id": "a", "type": "s3", "bucket": "b", "region": ["only-name"]}, "region"),
    ({"id": "a", "type": "s3", "bucket": "b", "access_key": "k"}, "both"),
    ({"id": "a", "type": "s3", "bucket": "b", "prefix": "../up"}, "prefix"),
    ({"id": "a", "type": "gcs", "bucket": "b"}, "unsupported type"),
])
def test_bad_config_sources_are_config_errors(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\].*" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_config_sources([raw])


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate"):
        parse_config_sources([{"id": "a", "type": "filesystem", "path": "/a"},
                              {"id": "a", "type": "filesystem", "path": "/b"}])


HTTP_RAW = {"id": "custom", "type": "http", "url": "https://symbols.example.com/", "layout": {"type": "symstore"}}


def test_request_sources_are_skipped_when_not_allowed() -> None:
    config = parse_config_sources([{"id": "cfg", "type": "filesystem", "path": "/srv"}])
    plan = plan_sources(config, [HTTP_RAW], allow_request_sources=False)
    assert [s.id for s in plan.sources] == ["cfg"]
    assert [s.id for s in plan.skipped] == ["custom"]
    assert "allow_request_sources" in plan.skipped[0].reason


def test_allowed_request_sources_come_after_config_and_refuse_filesystem_and_keyless_s3() -> None:
    config = parse_config_sources([{"id": "cfg", "type": "filesystem", "path": "/srv"}])
    raws = [
        {"id": "sentry:project", "type": "sentry", "url": "http://sentry/api/", "token": "t"},
        HTTP_RAW,
        {"id": "disk", "type": "filesystem", "path": "/etc"},
        {"id": "borrow", "type": "s3", "bucket": "internal"},
        {"id": "own", "type": "s3", "bucket": "b", "access_key": "k", "secret_key": "s"},
        {"id": "gcs", "type": "gcs", "bucket": "b"},
    ]
    plan = plan_sources(config, raws, allow_request_sources=True)
    assert [s.id for s in plan.sources] == ["cfg", "custom", "own"]
    assert isinstance(plan.sources[2], S3Source) and plan.sources[2].from_request
    reasons = {s.id: s.reason for s in plan.skipped}
    assert set(reasons) == {"sentry:project", "disk", "borrow", "gcs"}
    assert "server's config" in reasons["disk"]
    assert "access_key" in reasons["borrow"]
    assert "uploads" in reasons["sentry:project"]


def test_request_sources_of_the_wrong_shape_are_invalid() -> None:
    with pytest.raises(InvalidShape):
        plan_sources((), {"id": "x"}, allow_request_sources=True)
    with pytest.raises(InvalidShape):
        plan_sources((), ["x"], allow_request_sources=False)
    assert plan_sources((), None, allow_request_sources=True).sources == ()


def test_fingerprint_tells_credentials_apart_without_showing_them() -> None:
    def http(token: str, types: list[str]) -> tuple[SourceConfig, ...]:
        return parse_config_sources([{"id": "h", "type": "http", "url": "https://x/",
                                      "headers": {"Authorization": token}, "filters": {"filetypes": types}}])

    one = http("Bearer one", ["elf_code", "elf_debug"])
    assert fingerprint(one) == fingerprint(http("Bearer one", ["elf_debug", "elf_code"]))
    assert fingerprint(one) != fingerprint(http("Bearer two", ["elf_code", "elf_debug"]))
    assert "Bearer one" not in repr(one) and "Bearer one" not in fingerprint(one)
