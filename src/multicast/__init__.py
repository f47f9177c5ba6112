"""Python IP multicast: a library and the ``multicast`` command-line tool."""
