"""Keyboard layouts a wedge scanner may emulate, as data: evdev key code → characters.

A scanner set to a German layout sends KEY_Y for "z"; decoding with the US map would turn every
"z" into "y" and every "-" into "/". Each layout lists the printing keys of the ISO 105-key block
row by row (the same physical keys in every layout), unshifted, shifted and with AltGr.
Characters in `dead` are dead keys: they print themselves only when followed by a space.
Built without X11 from the XKB symbol files' base levels. Keypad digits are layout-independent.
"""

from __future__ import annotations

from dataclasses import dataclass

from evdev import ecodes

# Physical keys, row by row, in the order the layout strings below list their characters.
_ROWS: tuple[tuple[str, ...], ...] = (
    ("GRAVE", "1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "MINUS", "EQUAL"),
    ("Q", "W", "E", "R", "T", "Y", "U", "I", "O", "P", "LEFTBRACE", "RIGHTBRACE", "BACKSLASH"),
    ("A", "S", "D", "F", "G", "H", "J", "K", "L", "SEMICOLON", "APOSTROPHE"),
    ("102ND", "Z", "X", "C", "V", "B", "N", "M", "COMMA", "DOT", "SLASH"),
)
_CODES: tuple[tuple[int, ...], ...] = tuple(
    tuple(ecodes.ecodes["KEY_" + name] for name in row) for row in _ROWS
)

# Levels per layout: four row strings each for plain, shift and AltGr; " " in AltGr = nothing.
_LAYOUTS: dict[str, dict[str, tuple[str, str, str, str]]] = {
    "us": {
        "plain": ("`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "\\zxcvbnm,./"),
        "shift": ("~!@#$%^&*()_+", "QWERTYUIOP{}|", 'ASDFGHJKL:"', "|ZXCVBNM<>?"),
        "altgr": (" " * 13, " " * 13, " " * 11, " " * 11),
    },
    "de": {
        "plain": ("^1234567890ß´", "qwertzuiopü+#", "asdfghjklöä", "<yxcvbnm,.-"),
        "shift": ('°!"§$%&/()=?`', "QWERTZUIOPÜ*'", "ASDFGHJKLÖÄ", ">YXCVBNM;:_"),
        "altgr": (" ¹²³¼½¬{[]}\\¸", "@ł€¶ŧ←↓→øþ¨~’", "æſðđŋħ ĸł˝^", "|«»¢„“”µ·… "),
    },
    "fr": {
        "plain": ("²&é\"'(-è_çà)=", "azertyuiop^$*", "qsdfghjklmù", "<wxcvbn,;:!"),
        "shift": (" 1234567890°+", "AZERTYUIOP¨£µ", "QSDFGHJKLM%", ">WXCVBN?./§"),
        "altgr": (" ¹~#{[|`\\^@]}", "æâ€êþÿûîœô~¤ ", "äßëƒ ðüïŀö´", "|«»©  ¬¿×÷¡"),
    },
    "ru": {
        "plain": ("ё1234567890-=", "йцукенгшщзхъ\\", "фывапролджэ", "/ячсмитьбю."),
        "shift": ('Ё!"№;%:?*()_+', "ЙЦУКЕНГШЩЗХЪ/", "ФЫВАПРОЛДЖЭ", "|ЯЧСМИТЬБЮ,"),
        "altgr": (" " * 13, " " * 13, " " * 11, " " * 11),
    },
}
_DEAD: dict[str, frozenset[str]] = {
    "us": frozenset(),
    "de": frozenset("^´`"),
    "fr": frozenset("^¨~`"),
    "ru": frozenset(),
}
_KEYPAD = {
    ecodes.KEY_KP0: "0", ecodes.KEY_KP1: "1", ecodes.KEY_KP2: "2", ecodes.KEY_KP3: "3",
    ecodes.KEY_KP4: "4", ecodes.KEY_KP5: "5", ecodes.KEY_KP6: "6", ecodes.KEY_KP7: "7",
    ecodes.KEY_KP8: "8", ecodes.KEY_KP9: "9", ecodes.KEY_KPDOT: ".", ecodes.KEY_KPSLASH: "/",
    ecodes.KEY_KPASTERISK: "*", ecodes.KEY_KPMINUS: "-", ecodes.KEY_KPPLUS: "+",
}

LAYOUTS = tuple(sorted(_LAYOUTS))


@dataclass(frozen=True, slots=True)
class KeyChars:
    plain: str
    shift: str
    altgr: str
    # Caps Lock swaps plain and shift only for letters whose shifted form is their capital;
    # on AZERTY it leaves "é" and the digit row alone, as the real layout does.
    caps: bool


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    keys: dict[int, KeyChars]
    dead: frozenset[str]

    def char(self, code: int, shift: bool, caps: bool, altgr: bool) -> str:
        """The character a key press types, '' for keys that type nothing in this state."""
        if code in _KEYPAD:
            return _KEYPAD[code]
        if code == ecodes.KEY_SPACE:
            return " "
        key = self.keys.get(code)
        if key is None:
            return ""
        if altgr:
            return key.altgr
        if key.caps and caps:
            shift = not shift
        return key.shift if shift else key.plain


def _build(name: str) -> Layout:
    levels = _LAYOUTS[name]
    keys: dict[int, KeyChars] = {}
    for row, codes in enumerate(_CODES):
        plain, shift, altgr = (levels[level][row] for level in ("plain", "shift", "altgr"))
        if not len(plain) == len(shift) == len(altgr) == len(codes):
            raise AssertionError(f"layout {name} row {row} has the wrong number of keys")
        for code, p, s, a in zip(codes, plain, shift, altgr, strict=True):
            keys[code] = KeyChars(
                plain=p.strip(), shift=s.strip(), altgr=a.strip(),
                caps=p.isalpha() and p.upper() == s and p != s,
            )
    return Layout(name, keys, _DEAD[name])


_BUILT = {name: _build(name) for name in _LAYOUTS}


def layout(name: str) -> Layout:
    try:
        return _BUILT[name]
    except KeyError:
        raise KeyError(f"unknown keyboard layout {name!r}; known: {', '.join(LAYOUTS)}") from None


def typing_keys(text: str, name: str) -> list[tuple[int, bool, bool]]:
    """(key code, shift, altgr) presses that type `text` on a layout — what a scanner sends.

    Used by the simulated wedge and by tests; refuses characters the layout cannot type.
    """
    lay = layout(name)
    reverse: dict[str, tuple[int, bool, bool]] = {" ": (ecodes.KEY_SPACE, False, False)}
    for code, key in lay.keys.items():
        for ch, shift, altgr in ((key.altgr, False, True), (key.shift, True, False),
                                 (key.plain, False, False)):
            if ch and ch not in lay.dead:
                reverse[ch] = (code, shift, altgr)
    presses = []
    for ch in text:
        if ch not in reverse:
            raise ValueError(f"layout {name} cannot type {ch!r} without dead keys")
        presses.append(reverse[ch])
    return presses
