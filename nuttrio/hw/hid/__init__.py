"""USB HID Power Devices: NUT's usbhid-ups, in parts.

* :mod:`.descriptor`, :mod:`.codec`, :mod:`.usages`: the report-descriptor parser, the
  value codec and the usage-path names (I/O-free);
* :mod:`.tables` and :mod:`.subdrivers`: the subdrivers' mapping tables, as data;
* :mod:`.core`: the usbhid-ups state machine (walks, ups.status, commands), I/O-free;
* :mod:`.recording`, :mod:`.fakeusb`: recorded devices and the fake pyusb backend that
  replays them;
* :mod:`.driver`: the ``usbhid-ups`` driver on the driver kit (pyusb is imported there).
"""
