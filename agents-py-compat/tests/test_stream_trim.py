from agentic_agents.stream_trim import oldest_needed_id, trim_processed


def fill(client, count: int) -> list[str]:
    return [client.xadd("s", {"n": str(n)}) for n in range(count)]


def test_a_pending_entry_and_everything_after_it_stay(valkey):
    ids = fill(valkey, 500)
    valkey.xgroup_create("s", "g", id="0")
    valkey.xreadgroup("g", "c", {"s": ">"}, count=500)
    valkey.xack("s", "g", *[i for n, i in enumerate(ids) if n != 250])
    assert oldest_needed_id(valkey, "s") == ids[250]
    removed = trim_processed(valkey, "s")
    # a prefix goes, in whole stream nodes (100 entries), up to the pending entry at most
    assert 0 < removed <= 250
    assert [entry_id for entry_id, _ in valkey.xrange("s")] == ids[removed:]


def test_unread_entries_of_the_slowest_group_stay(valkey):
    ids = fill(valkey, 500)
    valkey.xgroup_create("s", "fast", id=ids[-1])
    valkey.xgroup_create("s", "slow", id=ids[299])
    removed = trim_processed(valkey, "s")
    assert 0 < removed <= 300
    assert [entry_id for entry_id, _ in valkey.xrange("s")] == ids[removed:]


def test_a_stream_without_groups_is_left_alone(valkey):
    fill(valkey, 300)
    assert oldest_needed_id(valkey, "s") is None
    assert trim_processed(valkey, "s") == 0
    assert valkey.xlen("s") == 300
