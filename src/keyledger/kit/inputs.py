"""The input policy every dialect and the core apply (docs/architecture.md, "Input policy").

- **Text**: no text input may hold a NUL, another C0 control character (TAB, LF and CR are
  text), DEL or a lone surrogate. They end strings in C libraries and log lines, PostgreSQL
  refuses NUL outright and no encoder can write a lone surrogate. Dialects refuse them with a 400
  (an authentication failure for credentials) before anything reaches the store.
- **Voucher codes** are compared as a person typing one on a phone expects: after Unicode NFKC
  (fullwidth digits are digits, composed and decomposed accents are one letter) and case folding.
  A code may not hold control, format (zero-width), other default-ignorable (invisible) or
  surrogate characters, nor mix letters of two scripts (U+0405, a Cyrillic look-alike of S,
  among Latin letters), nor start or end with white space.
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


def replace_refused(text: str) -> str:
    """``text`` with every refused character (``refused_character``) replaced by U+FFFD."""
    return _REFUSED.sub("\ufffd", text)


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


#: Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt) that are not
#: already refused by category: variation selectors, the combining grapheme joiner, Hangul
#: fillers, … — invisible, so a code holding one looks like a code without it.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)

#: Scripts written together in one language count as one (Japanese, Korean, Chinese).
_EAST_ASIAN = {
    "CJK",
    "HIRAGANA",
    "KATAKANA",
    "KATAKANA-HIRAGANA",
    "HANGUL",
    "BOPOMOFO",
    "IDEOGRAPHIC",
}


def _invisible(character: str) -> bool:
    point = ord(character)
    return unicodedata.category(character) in _CODE_REFUSED_CATEGORIES or any(
        low <= point <= high for low, high in _DEFAULT_IGNORABLE
    )


def _script(letter: str) -> str:
    """The script of a letter, by the first word of its Unicode name (LATIN, CYRILLIC, …)."""
    word = unicodedata.name(letter, "UNKNOWN").split(" ", 1)[0]
    return "CJK" if word in _EAST_ASIAN else word


def mixes_scripts(text: str) -> bool:
    """Whether ``text`` holds letters of more than one script (U+0405, a Cyrillic look-alike of
    S, beside Latin letters): a single-script rule in the spirit of Unicode's UTS #39, so that a
    look-alike cannot be made by swapping one letter for another script's twin."""
    scripts = {_script(ch) for ch in unicodedata.normalize("NFKC", text) if ch.isalpha()}
    return len(scripts) > 1


def code_problem(code: str) -> str | None:
    """Why ``code`` cannot be a voucher code, or None."""
    if not code or not code.strip():
        return "may not be null or empty"
    if code != code.strip():
        return "may not start or end with white space"
    if any(_invisible(character) for character in code):
        return "may not contain control, format (zero-width) or surrogate characters"
    if mixes_scripts(code):
        return "may not mix letters of different scripts"
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
