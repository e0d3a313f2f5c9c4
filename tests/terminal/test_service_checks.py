"""`posterm doctor` checks the payment terminal and the fiscal registrar through their drivers'
status calls: the simulated devices, and the ATOL driver against the loopback ATOL web server."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from tests.drivers.test_cli_devices import ROOT, posterm, write_config
from tests.drivers.test_fiscal import AtolServer


def services(tmp_path: Path, fiscal: dict[str, object] | None = None) -> Path:
    return write_config(
        tmp_path / "terminal.toml",
        {"role": "payment", "driver": "simulated", "dir": str(tmp_path / "payment")},
        fiscal or {"role": "fiscal", "driver": "simulated", "dir": str(tmp_path / "fiscal")},
    )


def test_doctor_simulated_payment_terminal_and_registrar_ok_then_faulty(tmp_path: Path) -> None:
    config = services(tmp_path)
    ok = posterm("doctor", config=config)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        f"payment 0 (simulated {tmp_path / 'payment'}): OK, answers status queries",
        f"fiscal 1 (simulated {tmp_path / 'fiscal'}): OK, ready to register",
        "verdict: 2 of 2 devices OK",
    ]
    assert not (tmp_path / "payment" / "operations.json").exists()  # the probe charged nothing

    for name in ("payment", "fiscal"):
        (tmp_path / name).mkdir(exist_ok=True)
    (tmp_path / "payment" / "offline").write_text("")
    (tmp_path / "fiscal" / "not_ready").write_text("out of paper")
    bad = posterm("doctor", config=config)
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == [
        f"payment 0 (simulated {tmp_path / 'payment'}): NO CONNECTION — no connection to the payment "
        "terminal; check the terminal's power and cable; card payments are refused until it answers",
        f"fiscal 1 (simulated {tmp_path / 'fiscal'}): NOT READY — out of paper; sales are blocked until it is ready",
        "verdict: 0 of 2 devices OK, 2 need attention",
    ]

    (tmp_path / "payment" / "offline").unlink()
    (tmp_path / "payment" / "operations.json").write_text("[not json")
    broken = posterm("doctor", config=config)
    assert broken.returncode == 1 and "payment 0" in broken.stdout and "ERROR — simulated payment terminal" \
        in broken.stdout and "Traceback" not in broken.stderr


async def doctor(config: Path) -> tuple[int, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "terminal.cli", "doctor", "--config", str(config), cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert b"Traceback" not in err, err
    return int(proc.returncode or 0), out.decode().splitlines()


def test_doctor_atol_registrar_on_loopback(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = AtolServer()
        url = await server.start()
        try:
            config = services(tmp_path, {"role": "fiscal", "driver": "atol", "url": url, "taxation": "usnIncome"})
            code, lines = await doctor(config)
            assert code == 0 and lines[1] == f"fiscal 1 (atol {url}): OK, ready to register (taxation usnIncome)"
            assert [t["type"] for t in server.posted] == ["getDeviceStatus"]  # nothing registered
            server.device |= {"coverOpened": True, "shift": "expired"}
            code, lines = await doctor(config)
            assert code == 1 and lines[1] == (
                f"fiscal 1 (atol {url}): NOT READY — fiscal registrar fiscal 1: cover open, shift over 24 h: "
                "close the shift (Z report); sales are blocked until it is ready")
        finally:
            await server.runner.cleanup()

    asyncio.run(scenario())
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = services(tmp_path, {"role": "fiscal", "driver": "atol", "url": f"http://127.0.0.1:{port}"})
    result = posterm("doctor", config=config)
    assert result.returncode == 1
    assert result.stdout.splitlines()[1].startswith(
        f"fiscal 1 (atol http://127.0.0.1:{port}): NOT READY — fiscal registrar fiscal 1 at "
        f"http://127.0.0.1:{port} does not answer")
