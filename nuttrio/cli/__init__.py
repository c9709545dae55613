"""The command line: the only part of nuttrio that calls ``trio.run`` and handles signals."""
