"""NUT 2.8.0 usbhid-ups tables as data: usage names, lookups and hid2nut rows per subdriver."""
