"""Selection: the algorithms, the weighted and Ketama selectors, least connections, two choices, select()."""

from __future__ import annotations

import itertools
import random
import zlib
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from actorproxy.lb import (
    POINT_MULTIPLE,
    Backend,
    BackendSelection,
    Consistent,
    FNVHash,
    LeastConnections,
    PowerOfTwoChoices,
    Random,
    RoundRobin,
    SelectionAlgorithm,
    UniqueIterator,
    Weighted,
    ketama_points,
    select,
)


def backends(count: int, port: int = 80) -> list[Backend]:
    return [Backend(f"10.0.0.{i}:{port}") for i in range(1, count + 1)]


def keys(count: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(16) for _ in range(count)]


# --- algorithms -------------------------------------------------------------------------------------------


def test_fnv_hash_is_fnv1a_64() -> None:
    fnv = FNVHash()
    # Test vectors from the FNV specification (draft-eastlake-fnv, FNV-1a 64-bit).
    assert fnv.next(b"") == 0xCBF29CE484222325
    assert fnv.next(b"a") == 0xAF63DC4C8601EC8C
    assert fnv.next(b"foobar") == 0x85944171F73967E8


def test_round_robin_counts_and_random_draws_64_bits() -> None:
    round_robin = RoundRobin()
    assert [round_robin.next(b"ignored") for _ in range(3)] == [0, 1, 2]
    draws = [Random(random.Random(7)).next(b"") for _ in range(2)]
    assert draws[0] == draws[1] == random.Random(7).getrandbits(64)


# --- Weighted ---------------------------------------------------------------------------------------------


def test_round_robin_cycles_exactly_over_equal_weights() -> None:
    pool = backends(3)
    selector = Weighted(reversed(pool), RoundRobin())
    assert selector.backends == tuple(pool)
    picks = [select(selector, b"", 3) for _ in range(9)]
    assert picks == pool * 3


def shares(selector: BackendSelection, keys: Callable[[int], bytes], count: int) -> dict[Backend, float]:
    counts = Counter(select(selector, keys(i), 1) for i in range(count))
    return {backend: counts[backend] / count for backend in selector.backends}


@pytest.mark.parametrize(
    "algorithm", [RoundRobin, lambda: Random(random.Random(1)), FNVHash], ids=["round_robin", "random", "fnv"]
)
def test_first_picks_follow_the_weights_within_2_percent(algorithm: Callable[[], SelectionAlgorithm]) -> None:
    weighted = [Backend(f"10.0.0.{w}:80", weight=w) for w in (1, 2, 3, 4)]
    selector = Weighted(weighted, algorithm())
    request_keys = keys(100_000, seed=2)
    measured = shares(selector, request_keys.__getitem__, 100_000)
    for backend in weighted:
        expected = backend.weight / 10
        assert abs(measured[backend] - expected) <= 0.02 * expected, (backend, measured[backend])


def test_fnv_is_deterministic_per_key_including_fallbacks() -> None:
    pool = backends(8)
    one, other = Weighted(pool, FNVHash()), Weighted(pool, FNVHash())
    for key in keys(200):
        assert list(itertools.islice(one.iter(key), 6)) == list(itertools.islice(other.iter(key), 6))
    spread = {select(one, key, 1) for key in keys(200)}
    assert spread == set(pool)


def test_fallbacks_are_uniform_chained_from_the_first_index() -> None:
    pool = [Backend("10.0.0.1:80", weight=9), *backends(3, port=81)]
    selector = Weighted(pool, FNVHash())
    key = b"some key"
    first = FNVHash().next(key)
    second = FNVHash().next(first.to_bytes(8, "little"))
    table = [0] * 9 + [1, 2, 3]
    picks = list(itertools.islice(selector.iter(key), 2))
    assert picks == [selector.backends[table[first % 12]], selector.backends[second % 4]]


# --- UniqueIterator and select ----------------------------------------------------------------------------


def counted(iterator: Iterator[Backend], draws: list[Backend]) -> Iterator[Backend]:
    for backend in iterator:
        draws.append(backend)
        yield backend


def test_unique_iterator_yields_each_backend_once_within_max_iterations() -> None:
    pool = backends(5)
    for key in keys(50):
        draws: list[Backend] = []
        unique = list(UniqueIterator(counted(Weighted(pool, FNVHash()).iter(key), draws), 7))
        assert len(unique) == len(set(unique)) >= 1
        assert len(draws) == 7
        assert unique == list(dict.fromkeys(draws))


def test_unique_iterator_get_next_returns_none_when_used_up() -> None:
    pool = backends(2)
    unique = UniqueIterator(itertools.cycle(pool), 3)
    assert [unique.get_next(), unique.get_next(), unique.get_next()] == [*pool, None]
    assert UniqueIterator(iter(pool), 0).get_next() is None


def test_select_skips_rejected_backends() -> None:
    pool = backends(4)
    rejected = set(pool[:3])
    offered: list[Backend] = []

    def accept(backend: Backend) -> bool:
        offered.append(backend)
        return backend not in rejected

    for selector in (Weighted(pool, RoundRobin()), Weighted(pool, FNVHash()), Consistent(pool)):
        offered.clear()
        assert select(selector, b"key", 1_000, accept) == pool[3]
        assert len(offered) == len(set(offered))
        assert select(selector, b"key", 1_000, lambda backend: False) is None


def test_select_gives_up_after_max_iterations() -> None:
    pool = backends(4)
    offered: list[Backend] = []

    def reject(backend: Backend) -> bool:
        offered.append(backend)
        return False

    assert select(Weighted(pool, RoundRobin()), b"", 2, reject) is None
    assert 1 <= len(offered) <= 2


@pytest.mark.parametrize(
    "build",
    [
        lambda: Weighted([], RoundRobin()),
        lambda: Weighted([], Random()),
        lambda: Weighted([], FNVHash()),
        lambda: Consistent([]),
        lambda: LeastConnections([], {}),
        lambda: PowerOfTwoChoices([], {}),
    ],
)
def test_an_empty_backend_set_selects_none(build: Callable[[], BackendSelection]) -> None:
    assert select(build(), b"key", 10) is None


# --- Ketama -----------------------------------------------------------------------------------------------


def owners(selector: Consistent, request_keys: list[bytes]) -> list[Backend | None]:
    return [select(selector, key, 1) for key in request_keys]


def test_ketama_points_known_answer() -> None:
    backend = Backend("127.0.0.1:8080")
    seed = b"127.0.0.1\x008080"
    first = zlib.crc32(seed + (0).to_bytes(4, "little"))
    second = zlib.crc32(seed + first.to_bytes(4, "little"))
    points = ketama_points(backend)
    assert len(points) == POINT_MULTIPLE == 160
    assert points[:2] == [first, second]
    # Pinned, so that a change to the construction cannot go unnoticed.
    assert points[:3] == [1841993031, 2462559737, 3720262072]
    assert ketama_points(Backend("[::1]:80"))[0] == zlib.crc32(b"::1\x0080\0\0\0\0")
    assert ketama_points(Backend("/run/a.sock"))[0] == zlib.crc32(b"/run/a.sock\x00\0\0\0\0")
    assert len(ketama_points(Backend("127.0.0.1:8080", weight=3))) == 480


def test_ketama_lookup_is_the_first_point_at_or_after_the_key_hash() -> None:
    pool = backends(2)
    selector = Consistent(pool)
    ring = sorted((point, index) for index, backend in enumerate(pool) for point in ketama_points(backend))
    assert selector.ring_size == len({point for point, _ in ring})
    for key in keys(3_000):
        digest = zlib.crc32(key)
        after = [(point, index) for point, index in ring if point >= digest]
        assert select(selector, key, 1) == pool[after[0][1]]
    # A key hashing past the last point wraps to the first one.
    past_the_end = next(
        key for key in (b"%d" % i for i in itertools.count()) if zlib.crc32(key) > ring[-1][0]
    )
    assert select(selector, past_the_end, 1) == pool[ring[0][1]]


def test_ketama_fallbacks_walk_the_ring_to_other_backends() -> None:
    pool = backends(3)
    assert set(UniqueIterator(Consistent(pool).iter(b"key"), 10_000)) == set(pool)


def test_ketama_adding_an_eleventh_backend_remaps_few_keys_and_only_to_it() -> None:
    request_keys = keys(10_000)
    pool = backends(10)
    newcomer = Backend("10.0.0.11:80")
    before = owners(Consistent(pool), request_keys)
    after = owners(Consistent([*pool, newcomer]), request_keys)
    moved = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert 0 < len(moved) <= 1_200
    assert {new for _, new in moved} == {newcomer}


def test_ketama_removing_a_backend_remaps_only_its_keys() -> None:
    request_keys = keys(10_000)
    pool = backends(10)
    gone = pool[4]
    before = owners(Consistent(pool), request_keys)
    after = owners(Consistent([b for b in pool if b != gone]), request_keys)
    for old, new in zip(before, after, strict=True):
        assert (old == new) == (old != gone)


def test_ketama_weight_two_gets_about_twice_the_keys() -> None:
    heavy = Backend("10.0.0.1:80", weight=2)
    pool = [heavy, *backends(9, port=81)]
    counts = Counter(owners(Consistent(pool), keys(20_000)))
    others = [counts[b] for b in pool[1:]]
    ratio = counts[heavy] / (sum(others) / len(others))
    assert 1.6 <= ratio <= 2.4, ratio


# --- least connections ------------------------------------------------------------------------------------


def test_least_connections_prefers_the_idle_backend_and_reads_counts_live() -> None:
    pool = backends(3)
    inflight = {pool[0]: 5, pool[1]: 0, pool[2]: 2}
    selector = LeastConnections(pool, inflight)
    assert select(selector, b"", 3) == pool[1]
    assert list(selector.iter(b"")) == [pool[1], pool[2], pool[0]]
    inflight[pool[1]] = 9
    assert select(selector, b"", 3) == pool[2]


def test_least_connections_compares_load_per_weight() -> None:
    light, heavy = Backend("10.0.0.1:80"), Backend("10.0.0.2:80", weight=4)
    inflight = {light: 1, heavy: 3}  # 1/1 against 3/4
    assert select(LeastConnections([light, heavy], inflight), b"", 2) == heavy
    inflight[heavy] = 5  # 5/4
    assert select(LeastConnections([light, heavy], inflight), b"", 2) == light


def test_least_connections_breaks_ties_round_robin() -> None:
    pool = backends(3)
    selector = LeastConnections(pool, {})
    assert [select(selector, b"", 1) for _ in range(6)] == pool * 2
    busy = LeastConnections(pool, {pool[0]: 1})
    assert [select(busy, b"", 1) for _ in range(4)] == [pool[1], pool[2], pool[1], pool[2]]


# --- power of two choices ---------------------------------------------------------------------------------


class RecordingRandom(random.Random):
    """A seeded generator that keeps what `randrange` returned."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.drawn: list[int] = []

    def randrange(self, *args: int) -> int:  # type: ignore[override]
        value = super().randrange(*args)
        self.drawn.append(value)
        return value


def test_power_of_two_choices_never_picks_the_busier_of_its_two() -> None:
    pool = [Backend(f"10.0.0.{i}:80", weight=1 + i % 3) for i in range(1, 9)]
    inflight_rng = random.Random(3)
    rng = RecordingRandom(4)
    selector = PowerOfTwoChoices(pool, {}, rng)
    for _ in range(2_000):
        inflight = {backend: inflight_rng.randrange(20) for backend in pool}
        selector = PowerOfTwoChoices(pool, inflight, rng)
        rng.drawn.clear()
        picked, other = itertools.islice(selector.iter(b""), 2)
        first, second_draw = rng.drawn
        second = second_draw + 1 if second_draw >= first else second_draw
        assert {picked, other} == {selector.backends[first], selector.backends[second]}
        assert inflight[picked] / picked.weight <= inflight[other] / other.weight


def test_power_of_two_choices_spreads_load_and_handles_one_backend() -> None:
    pool = backends(4)
    inflight = dict.fromkeys(pool, 0)
    selector = PowerOfTwoChoices(pool, inflight, random.Random(5))
    for _ in range(400):
        picked = select(selector, b"", 2)
        assert picked is not None
        inflight[picked] += 1
    # Two choices keep the gap to a few requests (uniform random picks would drift ~sqrt(100) apart).
    assert max(inflight.values()) - min(inflight.values()) <= 3
    single = Backend("10.0.0.9:80")
    assert select(PowerOfTwoChoices([single], {}), b"", 5) == single
