import asyncio

from drivers.codes import CodeRules
from drivers.config import parse_devices
from drivers.events import DeviceState
from drivers.keyboard import EvdevInput
from drivers.registry import diff, driver_for, make_drivers, watch
from drivers.serial_input import SerialInput
from drivers.simulated import SimulatedInput


def test_first_supporting_driver_takes_the_node():
    assert driver_for("input", "/dev/input/by-id/usb-Scanner-event-kbd").name == "evdev"
    assert driver_for("input", "/dev/input/by-id/usb-Mouse-event-mouse") is None
    assert driver_for("serial", "/dev/serial/by-id/usb-FTDI-if00-port0").name == "serial"


def test_diff():
    before = {("input", "/a-event-kbd"), ("serial", "/s1")}
    after = {("serial", "/s1"), ("input", "/b-event-mouse")}
    assert diff(before, after) == [
        DeviceState("/a-event-kbd", "detached", "unplugged"),
        DeviceState("/b-event-mouse", "attached", "no driver"),
    ]


def test_watch_polls_and_diffs(tmp_path):
    inputs = tmp_path / "by-id"
    seen = []

    async def main():
        stop = asyncio.Event()

        def emit(event):
            seen.append(event)
            if len(seen) == 1:
                (inputs / "usb-X-event-kbd").unlink()
            if len(seen) == 2:
                stop.set()

        inputs.mkdir()
        (inputs / "usb-X-event-kbd").touch()
        await asyncio.wait_for(watch(emit, stop, (("input", str(inputs)),), 0.01), timeout=5)

    asyncio.run(main())
    node = str(inputs / "usb-X-event-kbd")
    assert seen[0] == DeviceState(node, "attached", driver_for("input", node).takes)
    assert seen[1] == DeviceState(node, "detached", "unplugged")


def test_make_drivers(tmp_path):
    config = parse_devices([
        {"role": "scanner", "driver": "evdev", "path": "/dev/input/by-id/x-event-kbd"},
        {"role": "card_reader", "driver": "serial", "port": "/dev/ttyACM0"},
        {"role": "scanner", "driver": "simulated", "script": "s.txt"},
        {"role": "printer", "driver": "file", "path": str(tmp_path / "out.bin"),
         "spool": str(tmp_path / "spool")},
    ])
    inputs, printers = make_drivers(config, lambda event: None)
    assert [type(d) for d in inputs] == [EvdevInput, SerialInput, SimulatedInput]
    assert printers[0].spool.directory == tmp_path / "spool"
    assert isinstance(config.codes, CodeRules)
