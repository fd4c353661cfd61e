"""The input policy every dialect and the core apply (docs/architecture.md, "Input policy").

- **Text**: no text input may hold a NUL, another C0 control character (TAB, LF and CR are
  text), DEL or a lone surrogate. They end strings in C libraries and log lines, PostgreSQL
  refuses NUL outright and no encoder can write a lone surrogate. Dialects refuse them with a 400
  (an authentication failure for credentials) before anything reaches the store.
- **Voucher codes** are compared as a person typing one on a phone expects: after Unicode NFKC
  (fullwidth digits are digits, composed and decomposed accents are one letter) and case folding.
  A code may not hold control, format (zero-width) or surrogate characters, nor start or end
  with white space.
- **Integers** are bounded by the column that stores them: ``store.schema.integer_bounds``.
"""

from __future__ import annotations

import re
import unicodedata

_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def refused_character(text: str) -> str | None:
    """Why ``text`` is refused ("contains a NUL character", …), or None when it is fine."""
    found = _REFUSED.search(text)
    if found is None:
        return None
    character = found.group()
    if character == "\x00":
        return "contains a NUL character"
    if "\ud800" <= character <= "\udfff":
        return "contains a lone surrogate"
    return "contains a control character"


def first_refused(values: object) -> str | None:
    """Why the first refused string in a decoded JSON document (keys included) is refused."""
    stack = [values]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            reason = refused_character(item)
            if reason is not None:
                return reason
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def fold(text: str) -> str:
    """The form codes and searched text are compared in: NFKC, case folded, NFKC again."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


#: Unicode categories a voucher code may not hold: control, format (zero-width …), surrogate,
#: private use, unassigned.
_CODE_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}


def code_problem(code: str) -> str | None:
    """Why ``code`` cannot be a voucher code, or None."""
    if not code or not code.strip():
        return "may not be null or empty"
    if code != code.strip():
        return "may not start or end with white space"
    for character in code:
        if unicodedata.category(character) in _CODE_REFUSED_CATEGORIES:
            return "may not contain control, format (zero-width) or surrogate characters"
    if len(normal_code(code)) > 255 or len(code_key(code)) > 255:  # NFKC can lengthen a code
        return "must have at most 255 characters"
    return None


def normal_code(code: str) -> str:
    """The code as stored and shown: NFKC (fullwidth digits as digits), case kept."""
    return unicodedata.normalize("NFKC", code)


def code_key(code: str) -> str:
    """The key two codes are the same code by: unique among live vouchers, searched, logged in
    with."""
    return fold(code)
