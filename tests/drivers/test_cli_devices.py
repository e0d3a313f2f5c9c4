import os
import pty
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.serial_input import SerialProtocol, open_serial
from tests.drivers.test_printer import EscposServer

ROOT = Path(__file__).resolve().parents[2]


def posterm(*args, config=None):
    argv = [sys.executable, "-m", "terminal.cli", *args]
    if config is not None:
        argv += ["--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def write_config(path, *tables):
    lines = []
    for table in tables:
        lines.append("[[device]]")
        for key, value in table.items():
            lines.append(f"{key} = {value!r}".replace("'", '"') if isinstance(value, str)
                         else f"{key} = {str(value).lower()}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def sim(tmp_path):
    script = tmp_path / "scan.txt"
    script.write_text("scan 4006381333931\n")
    return write_config(
        tmp_path / "terminal.toml",
        {"role": "printer", "driver": "simulated", "dir": str(tmp_path / "printer"),
         "profile": "TM-T88V", "spool": str(tmp_path / "spool")},
        {"role": "scanner", "driver": "simulated", "script": str(script)},
    )


def test_doctor_all_ok(sim, tmp_path):
    result = posterm("doctor", config=sim)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"printer 0 (simulated {tmp_path / 'printer'}): OK, paper OK",
        f"scanner 1 (simulated {tmp_path / 'scan.txt'}): OK, simulated script",
        "verdict: 2 of 2 devices OK",
    ]


def test_doctor_reports_missing_and_paper_out(tmp_path):
    (tmp_path / "printer").mkdir()
    (tmp_path / "printer" / "paper").write_text("out")
    config = write_config(
        tmp_path / "t.toml",
        {"role": "printer", "driver": "simulated", "dir": str(tmp_path / "printer")},
        {"role": "scanner", "driver": "evdev", "path": "/dev/input/by-id/usb-Nope-event-kbd",
         "layout": "de"},
    )
    result = posterm("doctor", config=config)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"printer 0 (simulated {tmp_path / 'printer'}): PAPER OUT — load a new roll",
        "scanner 1 (evdev /dev/input/by-id/usb-Nope-event-kbd): "
        "MISSING — check the USB cable and the udev rule",
        "verdict: 0 of 2 devices OK, 2 need attention",
    ]


def test_doctor_network_printer_on_loopback(tmp_path):
    server = EscposServer()
    try:
        config = write_config(tmp_path / "t.toml", {
            "role": "printer", "driver": "network", "host": "127.0.0.1", "port": server.port,
            "profile": "TM-T88V"})
        result = posterm("doctor", config=config)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"printer 0 (network 127.0.0.1:{server.port}): OK, paper OK")


def test_doctor_serial_reader_ok_then_busy(tmp_path):
    master, slave = pty.openpty()
    port = os.ttyname(slave)
    try:
        config = write_config(tmp_path / "t.toml", {
            "role": "card_reader", "driver": "serial", "port": port, "framing": "stx_etx"})
        ok = posterm("doctor", config=config)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.splitlines()[0] == (
            f"card_reader 0 (serial {port}): OK, serial 9600 8N1, framing stx_etx")
        holder = open_serial(port, SerialProtocol())
        try:
            busy = posterm("doctor", config=config)
        finally:
            holder.close()
        assert busy.returncode == 1
        assert "BUSY — another program has the port open" in busy.stdout
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[device]]\nrole = \"printer\"\ndriver = \"network\"\n",
         "device 0 (printer): host is required"),
        ("[[device]\n", "the config file is not valid TOML"),
        ("[[device]]\nrole = \"scanner\"\ndriver = \"evdev\"\npath = \"/x\"\nlayout = \"uk\"\n",
         "device 0 (scanner): layout must be one of de, fr, ru, us, got 'uk'"),
    ],
)
@pytest.mark.parametrize("command", ["devices", "doctor", "test-print"])
def test_bad_config_exits_2_with_one_line(tmp_path, text, message, command):
    config = tmp_path / "t.toml"
    config.write_text(text)
    result = posterm(command, config=config)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"posterm: {config}: ") and message in result.stderr


def test_missing_config_exits_2(tmp_path):
    result = posterm("doctor", config=tmp_path / "none.toml")
    assert result.returncode == 2
    missing = tmp_path / "none.toml"
    assert result.stderr == (
        f"posterm: {missing}: cannot read the config file: No such file or directory\n")


def test_devices_lists_by_id_entries(tmp_path, sim):
    inputs, serials = tmp_path / "input", tmp_path / "serial"
    inputs.mkdir()
    serials.mkdir()
    for name in ("usb-Honeywell_Scanner-event-kbd", "usb-Logitech_Mouse-event-mouse"):
        (inputs / name).touch()
    (serials / "usb-FTDI_Reader-if00-port0").touch()
    result = posterm("devices", "--input-dir", str(inputs), "--serial-dir", str(serials),
                     config=sim)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (f"  {inputs}/usb-Honeywell_Scanner-event-kbd: evdev would take it: keyboard wedge"
            in out)
    assert f"  {inputs}/usb-Logitech_Mouse-event-mouse: ignored: no driver takes it" in out
    assert f"  {serials}/usb-FTDI_Reader-if00-port0: serial would take it: serial scanner" in out
    assert f"  printer 0: printer, simulated {tmp_path / 'printer'}, profile TM-T88V" in out
    assert "  scanner 1: scanner, simulated, fed from a script or FIFO" in out


def test_test_print_simulated_and_unreachable(sim, tmp_path):
    result = posterm("test-print", "--preview", config=sim)
    assert result.returncode == 0, result.stderr
    assert "TEST RECEIPT - NOT A SALE" in result.stdout
    assert result.stdout.rstrip().endswith("test receipt " + result.stdout.split(
        "Receipt ")[1].split()[0] + " printed")
    printed = (tmp_path / "printer" / "receipts.bin").read_bytes()
    assert printed.startswith(b"\x1b@\x1b!") and printed.endswith(b"\x1dV\x00")  # ESC @ first
    assert "Using hardware" not in result.stdout

    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    config = write_config(tmp_path / "net.toml", {
        "role": "printer", "driver": "network", "host": "127.0.0.1", "port": port,
        "timeout_s": 1})
    result = posterm("test-print", config=config)
    assert result.returncode == 1
    assert f"printer 0 (network 127.0.0.1:{port}): NOT PRINTED — OFFLINE" in result.stdout
    assert "Connection refused" in result.stdout


def test_test_print_no_such_printer(sim):
    result = posterm("test-print", "--printer", "5", config=sim)
    assert result.returncode == 2
    assert result.stderr == f"posterm: {sim}: no printer configured at device index 5\n"


