"""Test infrastructure: hosts, links and routers made in private network namespaces."""
