"""The ZIP format's numbers, written once: signatures, record layouts, limits, flags.

Readers (``zipindex``, the member readers in ``archive``) and the writer (``zipwriter``)
take them from here (APPNOTE.TXT 6.3: local header 4.3.7, central directory 4.3.12,
end records 4.3.14-4.3.16, ZIP64 extra field 4.5.3).
"""

from __future__ import annotations

import struct

__all__ = [
    "CENTRAL",
    "CENTRAL_SIG",
    "DEFLATED",
    "DESCRIPTOR_SIG",
    "EOCD",
    "EOCD_SIG",
    "FLAG_DESCRIPTOR",
    "FLAG_ENCRYPTED",
    "FLAG_UTF8",
    "LOCAL_HEADER",
    "LOCAL_HEADER_SIZE",
    "LOCAL_SIG",
    "MAX16",
    "MAX32",
    "MAX_COMMENT",
    "MAX_EXTRACT_VERSION",
    "STORED",
    "ZIP64_EOCD",
    "ZIP64_EOCD_SIG",
    "ZIP64_EXTRA_ID",
    "ZIP64_LOCATOR",
    "ZIP64_LOCATOR_SIG",
]

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
EOCD_SIG = b"PK\x05\x06"
ZIP64_EOCD_SIG = b"PK\x06\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
DESCRIPTOR_SIG = b"PK\x07\x08"  # data descriptor (4.3.9), after an entry's data
ZIP64_EXTRA_ID = 0x0001

# The fixed part of each record, signature included.
LOCAL_HEADER_SIZE = 30
LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then (name length, extra length)
CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
EOCD = struct.Struct("<4sHHHHIIH")
ZIP64_LOCATOR = struct.Struct("<4sIQI")
ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")

MAX16 = 0xFFFF
MAX32 = 0xFFFFFFFF
MAX_COMMENT = 0xFFFF
# The highest "version needed to extract" read (6.3, as Python's zipfile); we write 2.0/4.5.
MAX_EXTRACT_VERSION = 63
FLAG_ENCRYPTED = 0x0001
FLAG_DESCRIPTOR = 0x0008  # CRC-32 and sizes in a data descriptor after the data
FLAG_UTF8 = 0x0800
STORED = 0
DEFLATED = 8
