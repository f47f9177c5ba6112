"""``multicast doctor`` on hosts of a link with and without a querier (listen and kernel state)."""

from __future__ import annotations

import sys

from multicast.testing import Testbed
from multicast.tools.doctor import Check, Status, run_doctor

LIMIT = 15.0


def querier_checks(checks: tuple[Check, ...]) -> dict[str, Check]:
    return {check.subject: check for check in checks if check.area == "querier"}


def test_doctor_hears_the_querier_or_warns_of_its_absence(testbed: Testbed) -> None:
    h1, h2, h3 = testbed.add_hosts(3)
    testbed.bridge(h1, h2, h3)
    alone = querier_checks(h3.call(run_doctor, run_self_test=False, listen=0.5).checks)
    assert {subject: c.status for subject, c in alone.items()} == {
        "eth0 IGMP": Status.WARN,
        "eth0 MLD": Status.WARN,
    }
    assert all("multicast querier --iface eth0" in (c.fix or "") for c in alone.values())
    command = [sys.executable, "-m", "multicast", "querier", "--iface", "eth0"]
    running = h1.popen([*command, "--query-interval", "1", "--response-interval", "0.5"])
    heard = querier_checks(h3.call(run_doctor, run_self_test=False, listen=1.5).checks)
    assert heard["eth0 IGMP"].status is Status.OK
    assert heard["eth0 IGMP"].detail.startswith("heard eth0 IGMPv3 querier 198.18.1.1: ")
    assert heard["eth0 IGMP"].detail.endswith(", response 0.5 s, interval 1 s")
    assert (
        heard["eth0 MLD"].status is Status.OK and "MLDv2 querier fe80::" in heard["eth0 MLD"].detail
    )
    # without a listen, the kernel's count of MLD queries received tells that one asks here
    kernel = querier_checks(h2.call(run_doctor, run_self_test=False).checks)
    assert kernel["eth0 MLD"].status is Status.OK
    assert kernel["eth0 IGMP"].status is Status.INFO  # IGMPv3: the kernel cannot tell
    running.terminate()  # it ends as after Ctrl-C: with its report, exit status 143
    assert running.wait(timeout=LIMIT) == 143
