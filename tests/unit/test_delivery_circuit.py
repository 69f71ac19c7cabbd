from wasync.delivery.circuit import Circuit


def test_it_opens_after_the_threshold_and_doubles_while_the_endpoint_keeps_failing() -> None:
    c = Circuit(threshold=3, seconds=10, cap=35)
    assert not c.failed(0) and not c.failed(1)
    assert c.open_until(1) is None
    assert c.failed(2)  # third in a row
    assert c.open_until(5) == 12 and c.open_until(12) is None
    assert not c.failed(5) and c.until == 12  # a try that began before it opened
    assert c.failed(12)  # half-open: one failure opens it again, for twice as long
    assert c.until == 32
    assert c.failed(32) and c.until == 32 + 35  # capped


def test_a_success_closes_it_and_starts_counting_afresh() -> None:
    c = Circuit(threshold=2, seconds=10)
    assert not c.failed(0) and c.failed(1)
    c.succeeded()
    assert not c.failed(20)  # the threshold counts again from zero
    assert c.failed(21) and c.until == 31


def test_a_threshold_of_zero_never_opens() -> None:
    c = Circuit(threshold=0, seconds=10)
    assert not any(c.failed(t) for t in range(100))
