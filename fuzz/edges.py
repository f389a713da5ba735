"""Values that break parsers: limits of the integer widths formats use, and awkward strings."""

EDGE_INTS = (
    0, 1, -1, 2, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 4095, 4096, 0x7FFF, 0x8000, 0xFFFF,
    0x10000, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32 - 1, 2**32, 2**53, 2**63 - 1, 2**63, -(2**63),
    2**64 - 1, 2**64, 10**30,
)
EDGE_TEXT = ("", " ", "0", "0x", "0X", "-0x1", "0x" + "f" * 17, "rel:", "rel:0", "rel:99999", "abs", "null", "NaN",
             "\x00", "\u202e", "\ud7ff", "\U0001f600", "A" * 300, "../../etc/passwd", "%s%n", "<anonymous>",
             "https://x.test/a.js", "webpack:///./src/a.js", "app:///main.js", "~/a.js", "C:\\a.js")
