import pytest

from drivers.codes import CardBarcode, GS1Layout
from drivers.config import parse_codes, parse_devices
from drivers.errors import ConfigError
from drivers.serial_input import SerialProtocol


def test_full_config():
    cfg = parse_devices(
        [
            {"role": "printer", "driver": "network", "host": "10.0.0.5", "profile": "TM-T88V"},
            {"role": "scanner", "driver": "evdev", "path": "/dev/input/by-id/x-event-kbd",
             "layout": "de", "grab": False, "kind": "scanner"},
            {"role": "card_reader", "driver": "serial", "port": "/dev/ttyACM0",
             "baudrate": 19200, "parity": "E", "framing": "stx_etx", "lrc": True},
            {"role": "printer", "driver": "usb", "vendor": 0x04B8, "product": 0x0202},
            {"role": "scanner", "driver": "simulated", "script": "demo.txt"},
        ],
        {"gs1": [{"prefix": "21", "item_digits": 5, "value": "weight_g", "value_digits": 5}],
         "cards": [{"prefix": "77", "digits": 13}], "track_luhn": True},
    )
    net, usb = cfg.printers
    assert (net.spec.name, net.spec.host, net.spec.port, net.spec.profile) == (
        "printer 0", "10.0.0.5", 9100, "TM-T88V")
    assert net.spool == "/var/lib/posterm/spool/printer-0"
    assert net.spec.describe() == "network 10.0.0.5:9100"
    assert usb.spec.describe() == "usb 04b8:0202"
    scanner, reader, sim = cfg.inputs
    assert (scanner.name, scanner.layout, scanner.grab, scanner.kind) == (
        "scanner 1", "de", False, "scanner")
    assert reader.protocol == SerialProtocol(19200, 8, "E", 1, "stx_etx", True, 500)
    assert sim.source == "demo.txt"
    assert cfg.codes.gs1 == {"21": GS1Layout("21", 5, "weight_g", 5)}
    assert cfg.codes.cards == (CardBarcode("77", 13, "ean"),) and cfg.codes.track_luhn


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ({"role": "printer"}, "device: must be an array of tables"),
        ([{"driver": "evdev"}], "device 0: role is required"),
        ([{"role": "till"}], "device 0: role must be one of printer, scanner, card_reader"),
        ([{"role": "printer", "driver": "cups"}], "device 0 (printer): driver must be one of"),
        ([{"role": "printer", "driver": "network"}], "device 0 (printer): host is required"),
        ([{"role": "printer", "driver": "network", "host": "h", "port": 70000}],
         "device 0 (printer): port must be an integer 1..65535, got 70000"),
        ([{"role": "printer", "driver": "file", "path": "x", "profile": "TM-X"}],
         "device 0 (printer): profile 'TM-X' is not a python-escpos profile"),
        ([{"role": "scanner", "driver": "evdev", "path": "p", "layout": "uk"}],
         "device 0 (scanner): layout must be one of de, fr, ru, us, got 'uk'"),
        ([{"role": "scanner", "driver": "evdev", "path": "p", "grab": "yes"}],
         "device 0 (scanner): grab must be true or false"),
        ([{"role": "card_reader", "driver": "serial", "port": "p", "baud": 9600}],
         "device 0 (card_reader): baud is not a known setting here"),
        ([{"role": "card_reader", "driver": "serial", "port": "p", "baudrate": 1000}],
         "device 0 (card_reader): baudrate must be an integer 1200..115200"),
        ([{"role": "card_reader", "driver": "serial", "port": "p", "baudrate": 14400}],
         "device 0 (card_reader): baudrate must be one of"),
        ([{"role": "card_reader", "driver": "serial", "port": "p", "framing": "etx"}],
         "device 0 (card_reader): framing must be one of crlf, cr, lf, stx_etx"),
        ([{"role": "scanner", "driver": "simulated", "script": "x" * 600}],
         "device 0 (scanner): script must be text of 1..512 characters"),
        ([{"role": "printer", "driver": "file", "path": "x"}] * 17, "device: at most 16 devices"),
    ],
)
def test_bad_device_tables_name_index_and_field(devices, message):
    with pytest.raises(ConfigError) as info:
        parse_devices(devices)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        ({"gs1": [{"prefix": "30", "item_digits": 5, "value": "weight_g", "value_digits": 5}]},
         "codes.gs1[0]: prefix must be one of 20, 21"),
        ({"gs1": [{"prefix": "21", "item_digits": 5, "value": "weight_g", "value_digits": 4}]},
         "codes.gs1[0]: item_digits + value_digits must be 10"),
        ({"gs1": [{"prefix": "21", "item_digits": 5, "value": "kg", "value_digits": 5}]},
         "codes.gs1[0]: value must be one of weight_g, price_minor"),
        ({"cards": [{"prefix": "7x", "digits": 13}]},
         "codes.cards[0]: prefix must be 1..10 digits"),
        ({"cards": [{"prefix": "77", "digits": 40}]}, "codes.cards[0]: digits must be an integer"),
        ({"card_text_prefixes": [""]}, "codes: card_text_prefixes must be texts"),
        ({"luhn": True}, "codes: luhn is not a known setting here"),
    ],
)
def test_bad_codes_tables(codes, message):
    with pytest.raises(ConfigError) as info:
        parse_codes(codes)
    assert str(info.value).startswith(message)
