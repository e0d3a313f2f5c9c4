"""What a terminal and the central server both speak: the wire format (`protocol.wire`).

Imported by `terminal.sync` and by `central`; it imports neither, so a kiosk install needs no server code.
"""
