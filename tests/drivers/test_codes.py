from hypothesis import given
from hypothesis import strategies as st

from drivers.classify import classify_line
from drivers.codes import (
    CardBarcode,
    CodeRules,
    GS1Layout,
    card_from_barcode,
    gtin_check_digit,
    gtin_valid,
    luhn_valid,
    parse_gs1,
    symbology_of,
)
from drivers.events import CardSwipe, RejectedInput, ScanEvent

RULES = CodeRules(
    gs1={
        "21": GS1Layout("21", 5, "weight_g", 5),
        "22": GS1Layout("22", 4, "price_minor", 6),
    },
    cards=(CardBarcode("77", 13, "ean"),),
    card_text_prefixes=("LC-",),
)


def test_known_check_digits():
    assert gtin_valid("4006381333931")  # EAN-13
    assert gtin_valid("96385074")  # EAN-8
    assert gtin_valid("036000291452")  # UPC-A
    assert not gtin_valid("4006381333932")
    assert not gtin_valid("40063813339a1")
    assert symbology_of("4006381333931") == "ean13"
    assert symbology_of("96385074") == "ean8"
    assert symbology_of("036000291452") == "upca"


@given(st.text(alphabet="0123456789", min_size=7, max_size=13))
def test_appending_the_check_digit_makes_a_valid_code(body):
    code = body + str(gtin_check_digit(body))
    if len(code) in (8, 12, 13, 14):
        assert gtin_valid(code)
        wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
        assert not gtin_valid(wrong)


def test_luhn():
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("")


def test_gs1_weight_and_price():
    weight = "2112345" + "01250"
    weight += str(gtin_check_digit(weight))
    g = parse_gs1(weight, RULES.gs1)
    assert g is not None and g.item == "12345" and g.weight_g == 1250 and g.price_minor is None
    price = "221234" + "012345"
    price += str(gtin_check_digit(price))
    g = parse_gs1(price, RULES.gs1)
    assert g is not None and g.item == "1234" and g.price_minor == 12345
    assert parse_gs1("4006381333931", RULES.gs1) is None


def test_card_barcode_rules():
    card = "777000000001"
    card += str(gtin_check_digit(card))
    assert card_from_barcode(card, RULES) == (card, None)
    reason = card_from_barcode("7770000000", RULES)[1]
    assert reason == "card barcode with prefix 77 must have 13 digits"
    bad = card[:-1] + str((int(card[-1]) + 1) % 10)
    assert card_from_barcode(bad, RULES) == (None, "card barcode check digit is wrong")
    assert card_from_barcode("LC-000123", RULES) == ("LC-000123", None)
    assert card_from_barcode("4006381333931", RULES) == (None, None)


def test_classify_lines():
    card = "777000000001"
    card += str(gtin_check_digit(card))
    assert classify_line("s", card, RULES) == CardSwipe("s", card, "barcode")
    assert classify_line("s", "4006381333931", RULES) == ScanEvent("s", "4006381333931", "ean13")
    weight = "2112345" + "01250"
    weight += str(gtin_check_digit(weight))
    ev = classify_line("s", weight, RULES)
    assert isinstance(ev, ScanEvent) and ev.weight_g == 1250 and ev.gs1_item == "12345"
    assert classify_line("s", "ABC-123", RULES) == ScanEvent("s", "ABC-123", "text")
    assert classify_line("s", ";7777123456789=2512?", RULES) == CardSwipe(
        "s", "7777123456789", "track2"
    )
    rej = classify_line("s", "4006381333932", RULES)
    assert isinstance(rej, RejectedInput) and "check digit" in rej.reason
    rej = classify_line("s", "qwé", RULES)
    assert isinstance(rej, RejectedInput) and "layout" in rej.reason
    rej = classify_line("s", "a\x00b", RULES)
    assert isinstance(rej, RejectedInput) and rej.raw_preview == "a\\x00b"
    rej = classify_line("s", "9" * 300, RULES)
    assert isinstance(rej, RejectedInput) and "longer" in rej.reason and len(rej.raw_preview) < 50
    assert isinstance(classify_line("s", "", RULES), RejectedInput)


@given(st.text(max_size=400))
def test_classify_never_raises(line):
    ev = classify_line("s", line, RULES)
    assert isinstance(ev, ScanEvent | CardSwipe | RejectedInput)
