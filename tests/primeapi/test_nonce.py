import itertools
import threading

from primeapi.nonce import MonotonicNonce, NonceSource


def test_it_is_a_nonce_source():
    assert isinstance(MonotonicNonce(), NonceSource)


def test_it_follows_the_clock_in_milliseconds():
    source = MonotonicNonce(clock_ms=lambda: 1_700_000_000_000)
    assert source.next_nonce("K") == 1_700_000_000_000


def test_it_uses_real_milliseconds_by_default():
    import time

    before = time.time_ns() // 1_000_000
    value = MonotonicNonce().next_nonce("K")
    after = time.time_ns() // 1_000_000
    assert before <= value <= after


def test_it_steps_past_the_last_value_within_one_millisecond():
    source = MonotonicNonce(clock_ms=lambda: 1000)
    assert [source.next_nonce("K") for _ in range(3)] == [1000, 1001, 1002]


def test_it_never_goes_down_when_the_clock_steps_back():
    times = iter([5000, 4000, 4001, 6000])
    source = MonotonicNonce(clock_ms=lambda: next(times))
    assert [source.next_nonce("K") for _ in range(4)] == [5000, 5001, 5002, 6000]


def test_each_key_has_its_own_sequence():
    source = MonotonicNonce(clock_ms=lambda: 1000)
    assert source.next_nonce("A") == 1000
    assert source.next_nonce("A") == 1001
    assert source.next_nonce("B") == 1000


def test_it_is_strictly_increasing_across_32_threads():
    source = MonotonicNonce()
    results: list[list[int]] = [[] for _ in range(32)]
    start = threading.Barrier(32)

    def take(slot: list[int]) -> None:
        start.wait()
        for _ in range(500):
            slot.append(source.next_nonce("shared"))

    threads = [threading.Thread(target=take, args=(slot,)) for slot in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = [value for slot in results for value in slot]
    assert len(everything) == 32 * 500
    assert len(set(everything)) == len(everything)
    for slot in results:
        assert slot == sorted(slot)
        assert all(a < b for a, b in itertools.pairwise(slot))
    # The next value is above everything handed out so far.
    assert source.next_nonce("shared") > max(everything)


def test_its_repr_does_not_list_keys():
    source = MonotonicNonce()
    source.next_nonce("SOMEKEY")
    assert "SOMEKEY" not in repr(source)
