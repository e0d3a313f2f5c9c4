"""Device drivers: bytes and input events in, domain events out; receipts out as printer bytes.

events       ScanEvent, CardSwipe, RejectedInput, PrinterStatus, DeviceState; EventQueue (bounded)
codes        EAN-13/EAN-8/UPC-A check digits, GS1 20–29 weight/price layouts, card barcodes
track        ISO/IEC 7813 magnetic stripe tracks 1 and 2
classify     one decoded line → a scan, a swipe or a refusal
keymaps      us/de/fr/ru keyboard layouts as data (no X11)
keyboard     evdev keyboard wedges: KeyDecoder (pure) and EvdevInput (hot-plug, grab)
serial_input serial scanners and card readers: SerialProtocol, FrameDecoder, SerialInput
receipt      the Receipt the printer prints; money and quantity formatting
render       receipt layout as ops → python-escpos calls and the text preview
spool        the durable reprint queue
printer      transports (USB, serial, network, file, simulated), status, ReceiptPrinter
simulated    script/FIFO-fed inputs and a file-backed printer
config       [[device]] and [codes] tables → checked settings
registry     driver registry, by-id polling, config → running drivers
"""
