"""Test infrastructure: what proves multicast code, never what ships it.

:mod:`multicast.testing.testbed` builds hosts in network namespaces joined by veth pairs or
bridges (Linux, inside a private namespace such as ``scripts/netns-run`` makes);
:mod:`multicast.testing.routers` adds routers running FRR's ``pimd`` to such hosts. The test
suite, the examples, the benchmarks and anyone's own tests use them; the library never does.
The test bed's public names are this package's.
"""

from multicast.testing import testbed
from multicast.testing.testbed import *  # noqa: F403 (the public names of the test bed)

__all__ = testbed.__all__
