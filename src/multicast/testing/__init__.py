"""Test infrastructure: what proves multicast code, never what ships it.

:mod:`multicast.testing.testbed` builds hosts in network namespaces joined by veth pairs or
bridges (Linux, inside a private namespace such as ``scripts/netns-run`` makes). The test
suite, ``make demo``, the benchmarks and anyone's own tests use it; the library never does.
Its public names are this package's.
"""

from multicast.testing import testbed
from multicast.testing.testbed import *  # noqa: F403 (the public names of the test bed)

__all__ = testbed.__all__
