"""Schemathesis hooks for MemLayer: teaches the generator what JSON Schema cannot say.

Passwords are limited to 72 bytes of UTF-8 (bcrypt's limit), without NUL. JSON Schema counts
characters, not bytes, so the schema's `maxLength: 72` lets through strings of 72
multi-byte characters that the API rightly refuses. A schema-valid (positive) case's
password is cut here to its longest prefix of at most 72 bytes (still at least 8
characters: a character takes at most 4 bytes); every check stays on.

This is a hook on the case, not a custom strategy for the `password` format: Schemathesis
treats a custom format as always violable in negative tests, so any valid password would
count as a "format violation" the API should have refused.
"""

import schemathesis
from schemathesis.generation import GenerationMode

PASSWORD_FIELDS = ("password", "current_password", "new_password")
BCRYPT_MAX_BYTES = 72


def within_bcrypt(text: str) -> str:
    """The longest prefix of `text` of at most 72 bytes of UTF-8."""
    encoded = text.encode("utf-8")[:BCRYPT_MAX_BYTES]
    return encoded.decode("utf-8", errors="ignore")


@schemathesis.hook
def map_case(context, case):
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return case
    if isinstance(case.body, dict):
        for field in PASSWORD_FIELDS:
            value = case.body.get(field)
            if isinstance(value, str) and len(value.encode("utf-8")) > BCRYPT_MAX_BYTES:
                case.body[field] = within_bcrypt(value)
    return case
