"""agentic-provision against a real valkey-server with libagentic.so and the tiny model: every role
can do its work as its provisioned user and is refused (NOPERM, nothing changed) what it must not
do; revoke closes its connections and its password stops working; bad input changes nothing.

The servers are agentic_client.testing's, as in conftest.py, but of this module's own: with an
aclfile and the module's default options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from conftest import MODULE, TINY_MODEL, skip_without_server
from redis.cluster import RedisCluster

from agentic_client.testing import ValkeyCluster, ValkeyServer, module_args, running

CLIENT_DIR = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 20.0
DEFAULT_TOPICS = ["politics", "business", "technology", "sports", "health", "climate", "science", "education", "entertainment", "finance"]


class Server(ValkeyServer):
    """With the module's default options (the cascade, no pipeline) and RESP2, like an operator's server."""

    client_options = {"decode_responses": True, "protocol": 2}


class Cluster(ValkeyCluster):
    client_options = Server.client_options


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    skip_without_server()
    workdir = tmp_path_factory.mktemp("provision")
    # An aclfile, so ACL SAVE persists and the tests can read what provisioning saved.
    aclfile = workdir / "users.acl"
    aclfile.write_text("user default on nopass ~* &* +@all\n")
    with running(Server(workdir, module_args(MODULE, TINY_MODEL), start_timeout=START_TIMEOUT_S, aclfile=aclfile)) as server:
        yield server


@pytest.fixture
def admin(server):
    client = server.client()
    client.flushall()
    for user in client.execute_command("ACL", "USERS"):
        if user != "default":
            client.execute_command("ACL", "DELUSER", user)
    yield client
    client.close()


def provision(server: Server, *args: str) -> subprocess.CompletedProcess:
    """Runs the real command line, as an operator would."""
    env = {**os.environ, "PYTHONPATH": str(CLIENT_DIR), "VALKEY_URL": server.url}
    return subprocess.run([sys.executable, "-m", "agentic_client.provision", *args], capture_output=True, text=True, env=env, timeout=60)


def created(server: Server, role: str, name: str, *extra: str) -> dict[str, str]:
    result = provision(server, "create", "--role", role, "--name", name, *extra)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert set(lines) == {"user", "password", "url"}
    # Printed once, on stdout only; the aclfile holds a hash, never the password.
    assert result.stdout.count(lines["password"]) == 2  # the password line and the URL
    assert lines["password"] not in result.stderr
    assert lines["password"] not in server.aclfile.read_text()
    assert len(lines["password"]) >= 40
    return lines


def as_user(credentials: dict[str, str]) -> redis.Redis:
    client = redis.Redis.from_url(credentials["url"], decode_responses=True, protocol=2)
    assert client.ping()
    return client


def refused(call) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        call()


def snapshot(admin: redis.Redis) -> tuple:
    """What a refused command must not have changed."""
    keys = sorted(admin.keys("*"))
    news_raw = admin.xlen("news_raw") if admin.exists("news_raw") else 0
    return keys, [admin.type(k) for k in keys], news_raw, admin.execute_command("AGENT.TOPIC.LIST")


def article(title: str) -> dict[str, str]:
    return {"id": title.lower().replace(" ", "-"), "data": json.dumps({"title": title, "body": "A new chip for phones and computers."})}


def test_roles_prints_every_rule_set(server):
    result = provision(server, "roles")
    assert result.returncode == 0, result.stderr
    for role in ("producer", "enricher", "fanout", "reader", "gateway", "sidecar"):
        assert f"\n{role}: " in "\n" + result.stdout
    assert "+agent.fanout" in result.stdout and "-@all" in result.stdout


def test_producer_writes_its_stream_and_nothing_else(server, admin):
    credentials = created(server, "producer", "fetch-1", "--group", "cg_enrich")
    assert credentials["user"] == "agent-fetch-1"
    assert [g["name"] for g in admin.xinfo_groups("news_raw")] == ["cg_enrich"]
    admin.execute_command("AGENT.SUBSCRIBE", "user:{1}", "technology")
    agent = as_user(credentials)
    assert agent.xadd("news_raw", article("Chips"))
    assert agent.xlen("news_raw") == 1
    assert agent.xinfo_groups("news_raw")[0]["lag"] == 1
    before = snapshot(admin)
    refused(lambda: agent.execute_command("AGENT.FEED", "user:{1}"))
    refused(lambda: agent.execute_command("AGENT.TOPIC.SET", "chips", "Semiconductors."))
    refused(lambda: agent.execute_command("AGENT.TOPIC.DEL", "technology"))
    refused(lambda: agent.execute_command("AGENT.CLASSIFY", "a new chip"))
    refused(lambda: agent.execute_command("AGENT.FANOUT", "technology", "doc:{x}", "{}"))
    refused(lambda: agent.xadd("topic:technology", {"doc": "doc:{x}", "data": "{}"}))
    refused(lambda: agent.xreadgroup("cg_enrich", "c", {"news_raw": ">"}))
    refused(lambda: agent.get("doc:{x}"))
    assert snapshot(admin) == before
    agent.close()


def test_enricher_consumes_classifies_and_routes(server, admin):
    credentials = created(server, "enricher", "enrich-1")
    assert [g["name"] for g in admin.xinfo_groups("news_raw")] == ["cg_enrich"]
    admin.xadd("news_raw", article("Chips"))
    admin.execute_command("AGENT.SUBSCRIBE", "user:{1}", "technology")
    agent = as_user(credentials)
    [[stream, [(entry_id, fields)]]] = agent.xreadgroup("cg_enrich", "enrich-a", {"news_raw": ">"}, count=10)
    assert stream == "news_raw" and json.loads(fields["data"])["title"] == "Chips"
    best, scores, *_ = agent.execute_command("AGENT.CLASSIFY", json.loads(fields["data"])["title"])
    assert best in DEFAULT_TOPICS and scores[0] == best
    pipe = agent.pipeline(transaction=True)
    pipe.xadd(f"topic:{best}", {"doc": "doc:{chips}", "data": fields["data"]})
    pipe.xack("news_raw", "cg_enrich", entry_id)
    assert pipe.execute()[1] == 1
    assert agent.xpending("news_raw", "cg_enrich")["pending"] == 0
    before = snapshot(admin)
    refused(lambda: agent.execute_command("AGENT.FANOUT", best, "doc:{chips}", fields["data"]))
    refused(lambda: agent.execute_command("AGENT.FEED", "user:{1}"))
    refused(lambda: agent.execute_command("AGENT.SUBSCRIBE", "user:{1}", "sports"))
    refused(lambda: agent.execute_command("AGENT.TOPIC.SET", "chips", "Semiconductors."))
    refused(lambda: agent.config_set("agentic.feed-len", 5))
    refused(lambda: agent.get("doc:{chips}"))
    assert snapshot(admin) == before
    agent.close()


def test_fanout_worker_delivers_and_cannot_read_feeds(server, admin):
    credentials = created(server, "fanout", "fan-1")
    # One group per topic stream of the catalog (the ten defaults here).
    for slug in DEFAULT_TOPICS:
        assert [g["name"] for g in admin.xinfo_groups(f"topic:{slug}")] == ["cg_fanout"]
    admin.execute_command("AGENT.SUBSCRIBE", "user:{1}", "technology")
    admin.xadd("topic:technology", {"doc": "doc:{chips}", "data": '{"title":"Chips"}'})
    agent = as_user(credentials)
    [[_stream, [(entry_id, fields)]]] = agent.xreadgroup("cg_fanout", "fan-a", {"topic:technology": ">"})
    reply = agent.execute_command("AGENT.FANOUT", "technology", fields["doc"], fields["data"])
    assert reply[:2] == ["delivered", 1]
    assert agent.xack("topic:technology", "cg_fanout", entry_id) == 1
    assert admin.execute_command("AGENT.FEED", "user:{1}")[0][2] == "doc:{chips}"
    before = snapshot(admin)
    refused(lambda: agent.execute_command("AGENT.FEED", "user:{1}"))
    refused(lambda: agent.execute_command("AGENT.SUBSCRIBE", "user:{1}", "sports"))
    refused(lambda: agent.execute_command("AGENT.CLASSIFY", "a new chip"))
    refused(lambda: agent.xadd("news_raw", article("Chips")))
    refused(lambda: agent.execute_command("AGENT.TOPIC.RESET"))
    refused(lambda: agent.config_set("agentic.feed-len", 5))
    assert snapshot(admin) == before
    agent.close()


def test_reader_reads_feeds_and_writes_nothing(server, admin):
    credentials = created(server, "reader", "read-1")
    admin.execute_command("AGENT.SUBSCRIBE", "user:{1}", "technology")
    admin.execute_command("AGENT.FANOUT", "technology", "doc:{chips}", '{"title":"Chips"}', "STREAM", "topic:technology")
    agent = as_user(credentials)
    [[_id, topic, doc, payload]] = agent.execute_command("AGENT.FEED", "user:{1}", "COUNT", 5)
    assert (topic, doc, payload) == ("technology", "doc:{chips}", '{"title":"Chips"}')
    assert agent.execute_command("AGENT.INTERESTS", "user:{1}") == ["technology"]
    assert agent.get("doc:{chips}") == '{"title":"Chips"}'
    assert len(agent.xrange("topic:technology")) == 1
    before = snapshot(admin)
    refused(lambda: agent.execute_command("AGENT.FANOUT", "technology", "doc:{x}", "{}"))
    refused(lambda: agent.xadd("news_raw", article("Chips")))
    refused(lambda: agent.execute_command("AGENT.SUBSCRIBE", "user:{1}", "sports"))
    refused(lambda: agent.execute_command("AGENT.TOPIC.SET", "chips", "Semiconductors."))
    refused(lambda: agent.set("doc:{chips}", "changed"))
    refused(lambda: agent.delete("user:{1}"))
    assert snapshot(admin) == before
    agent.close()


def test_gateway_serves_feeds_and_cannot_change_the_catalog(server, admin):
    credentials = created(server, "gateway", "gw-1")
    agent = as_user(credentials)
    assert agent.execute_command("AGENT.SUBSCRIBE", "user:{2}", "sports") == 1
    pubsub = agent.pubsub()
    pubsub.subscribe("agentic:deliveries")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    admin.execute_command("AGENT.FANOUT", "sports", "doc:{match}", '{"title":"Match"}')
    message = pubsub.get_message(timeout=5)
    assert message["type"] == "message" and "user:{2}" in message["data"]
    pubsub.close()
    assert agent.execute_command("AGENT.FEED", "user:{2}")[0][2] == "doc:{match}"
    assert "fanout_calls" in agent.execute_command("AGENT.STATS")
    before = snapshot(admin)
    refused(lambda: agent.execute_command("AGENT.TOPIC.SET", "chips", "Semiconductors."))
    refused(lambda: agent.execute_command("AGENT.TOPIC.ADDEXAMPLES", "sports", "A goal."))
    refused(lambda: agent.execute_command("AGENT.TOPIC.DEL", "sports"))
    refused(lambda: agent.execute_command("AGENT.FANOUT", "sports", "doc:{x}", "{}"))
    refused(lambda: agent.config_set("agentic.feed-len", 5))
    refused(lambda: agent.set("doc:{match}", "changed"))
    refused(lambda: agent.xadd("topic:sports", {"data": "{}"}))
    other = agent.pubsub()
    # redis-py sends SUBSCRIBE without reading its reply: the refusal arrives with the next message.
    refused(lambda: (other.subscribe("other-channel"), other.get_message(timeout=5)))
    other.close()
    assert snapshot(admin) == before
    agent.close()


def test_sidecar_takes_batches_and_reads_no_key(server, admin):
    credentials = created(server, "sidecar", "gpu-1")
    admin.execute_command("AGENT.SUBSCRIBE", "user:{1}", "technology")
    admin.set("doc:{chips}", "{}")
    fingerprint = admin.execute_command("INFO", "agentic_classify")["agentic_model_fingerprint"]
    agent = as_user(credentials)
    assert agent.execute_command("AGENT.SIDECAR.NEXT", "gpu-1", "DEVICE", "cpu", "MODEL", fingerprint, "BLOCK", 10) is None
    before = snapshot(admin)
    refused(lambda: agent.execute_command("AGENT.FEED", "user:{1}"))
    refused(lambda: agent.get("doc:{chips}"))
    refused(lambda: agent.execute_command("AGENT.CLASSIFY", "a new chip"))
    refused(lambda: agent.execute_command("AGENT.STATS"))
    refused(lambda: agent.xrange("topic:technology"))
    assert snapshot(admin) == before
    agent.close()


def test_custom_stream_and_group_bound_the_enricher(server, admin):
    credentials = created(server, "enricher", "enrich-eu", "--stream", "news_raw:eu", "--group", "cg_eu")
    assert [g["name"] for g in admin.xinfo_groups("news_raw:eu")] == ["cg_eu"]
    assert not admin.exists("news_raw")
    admin.xadd("news_raw", article("Elsewhere"))
    agent = as_user(credentials)
    assert agent.xreadgroup("cg_eu", "a", {"news_raw:eu": ">"}, block=10) == []
    refused(lambda: agent.xrange("news_raw"))
    agent.close()


def test_revoke_closes_connections_and_the_password_stops_working(server, admin):
    credentials = created(server, "reader", "read-2")
    assert "user agent-read-2 " in server.aclfile.read_text()
    agent = as_user(credentials)
    result = provision(server, "revoke", "--name", "read-2")
    assert result.returncode == 0, result.stderr
    assert "1 connection(s) closed" in result.stdout
    with pytest.raises(redis.ConnectionError):
        agent.execute_command("AGENT.FEED", "user:{1}")
    agent.close()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(credentials["url"]).ping()
    assert admin.execute_command("ACL", "GETUSER", "agent-read-2") is None
    assert "agent-read-2" not in server.aclfile.read_text()
    # Revoking again, or a name that maps to no agent user, changes nothing.
    again = provision(server, "revoke", "--name", "read-2")
    assert again.returncode == 1 and "no user agent-read-2" in again.stderr


def test_revoke_cannot_reach_users_outside_the_prefix(server, admin):
    admin.execute_command("ACL", "SETUSER", "admin", "on", ">pw", "~*", "+@all")
    for name in ("admin", "default"):
        result = provision(server, "revoke", "--name", name)
        assert result.returncode == 1 and f"no user agent-{name}" in result.stderr
    assert sorted(admin.execute_command("ACL", "USERS")) == ["admin", "default"]
    assert redis.Redis(host="127.0.0.1", port=server.port, username="admin", password="pw").ping()


def test_existing_user_is_kept_unless_rotated(server, admin):
    first = created(server, "producer", "fetch-2")
    connection = as_user(first)
    again = provision(server, "create", "--role", "reader", "--name", "fetch-2")
    assert again.returncode == 1 and "exists" in again.stderr and again.stdout == ""
    assert connection.xadd("news_raw", {"a": "1"})  # still a producer, same password
    rotated = created(server, "reader", "fetch-2", "--rotate")
    assert rotated["password"] != first["password"]
    with pytest.raises(redis.ConnectionError):
        connection.ping()
    connection.close()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(first["url"]).ping()
    # The rotated user has the new role's rules only.
    reader = as_user(rotated)
    refused(lambda: reader.xadd("news_raw", {"a": "2"}))
    reader.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--role", "reader", "--name", "Bad Name"], "invalid --name"),
        (["create", "--role", "reader", "--name", "../admin"], "invalid --name"),
        (["create", "--role", "reader", "--name", ""], "invalid --name"),
        (["create", "--role", "enricher", "--name", "e", "--stream", "news_raw*"], "invalid --stream"),
        (["create", "--role", "enricher", "--name", "e", "--stream", "a b"], "invalid --stream"),
        (["create", "--role", "enricher", "--name", "e", "--group", "g roup"], "invalid --group"),
        (["create", "--role", "reader", "--name", "r", "--stream", "news_raw"], "not accepted"),
        (["create", "--role", "sidecar", "--name", "s", "--group", "g"], "not accepted"),
        (["create", "--role", "producer", "--name", "p", "--stream", "a", "--stream", "b"], "give --stream once"),
        (["revoke", "--name", "bad/name"], "invalid --name"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(server, admin, args, message):
    before = (snapshot(admin), sorted(admin.execute_command("ACL", "USERS")), server.aclfile.read_text())
    result = provision(server, *args)
    assert result.returncode == 1 and message in result.stderr and result.stdout == ""
    assert (snapshot(admin), sorted(admin.execute_command("ACL", "USERS")), server.aclfile.read_text()) == before


def test_unknown_role_is_a_usage_error(server, admin):
    result = provision(server, "create", "--role", "superuser", "--name", "x")
    assert result.returncode == 2 and "invalid choice" in result.stderr
    assert admin.execute_command("ACL", "USERS") == ["default"]


def test_a_stream_key_of_another_type_changes_nothing(server, admin):
    admin.set("topic:sports", "not a stream")
    result = provision(server, "create", "--role", "fanout", "--name", "fan-2")
    assert result.returncode == 1 and "topic:sports holds a string" in result.stderr
    # Checked before the first write: no group on the other topics, no user.
    assert admin.keys("*") == ["topic:sports"]
    assert admin.execute_command("ACL", "USERS") == ["default"]


@pytest.fixture(scope="module")
def cluster(server, tmp_path_factory):
    # `server` first: it skips when valkey-server, the module or the model is missing. Not the
    # conftest's session cluster: that one runs the pipeline, whose groups the tests would see.
    with running(
        Cluster(tmp_path_factory.mktemp("provision-cluster"), module_args(MODULE, TINY_MODEL), start_timeout=START_TIMEOUT_S)
    ) as cluster:
        yield cluster


class ClusterTarget:
    """What `provision()` needs: the cluster's first node as the admin URL."""

    def __init__(self, cluster: Cluster, aclfile: Path) -> None:
        self.url = cluster.url
        self.aclfile = aclfile


def test_on_a_cluster_every_node_gets_the_user_and_revoke_removes_it_everywhere(cluster, tmp_path):
    admin = RedisCluster(host="127.0.0.1", port=cluster.ports[0], decode_responses=True, protocol=2)
    # The nodes run without an aclfile (not persisted, said on stderr): created() checks an empty one.
    target = ClusterTarget(cluster, tmp_path / "none.acl")
    target.aclfile.write_text("")
    try:
        fanout = created(target, "fanout", "fan-c")
        for slug in DEFAULT_TOPICS:  # each on the primary of its slot
            assert [g["name"] for g in admin.xinfo_groups(f"topic:{slug}")] == ["cg_fanout"]
        credentials = created(target, "reader", "read-c")
        users = [f"user:{{{n}}}" for n in range(1, 31)]
        for user in users:
            admin.execute_command("AGENT.FANOUT", "technology", f"doc:{user[5:]}:1", '{"title":"Chips"}', "USERS", user)
        agent = RedisCluster.from_url(credentials["url"], decode_responses=True, protocol=2)
        for port in cluster.ports:
            node = cluster.node(port)
            assert node.execute_command("ACL", "GETUSER", "agent-read-c") is not None
            node.close()
        # Users on every shard, read through the cluster client's routing as the reader.
        for user in users:
            [[_id, _topic, _doc, body]] = agent.execute_command("AGENT.FEED", user)
            assert body == '{"title":"Chips"}'
        refused(lambda: agent.xadd("news_raw", {"id": "1"}))
        refused(lambda: agent.execute_command("AGENT.FANOUT", "technology", "doc:{1}:2", "{}", "USERS", "user:{1}"))
        result = provision(target, "revoke", "--name", "read-c")
        assert result.returncode == 0, result.stderr
        with pytest.raises(redis.RedisError):
            agent.execute_command("AGENT.FEED", users[0])
        agent.close()
        for port in cluster.ports:
            node = cluster.node(port)
            assert node.execute_command("ACL", "GETUSER", "agent-read-c") is None
            with pytest.raises(redis.AuthenticationError):
                redis.Redis(host="127.0.0.1", port=port, username="agent-read-c", password=credentials["password"]).ping()
            node.close()
        assert provision(target, "revoke", "--name", "fan-c").returncode == 0
        assert fanout["user"] == "agent-fan-c"
    finally:
        admin.close()
