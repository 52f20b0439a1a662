"""Schemathesis hooks for MemLayer: teaches the generator what JSON Schema cannot say.

Passwords are limited to 72 bytes of UTF-8 (bcrypt's limit), without NUL. JSON Schema counts
characters, not bytes, so the schema's `maxLength: 72` lets through strings of 72
multi-byte characters that the API rightly refuses. Valid passwords are generated here
with the byte limit applied; every check stays on.
"""

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format(
    "password",
    st.text(min_size=8, max_size=72).filter(
        lambda text: len(text.encode("utf-8")) <= 72 and "\0" not in text
    ),
)
