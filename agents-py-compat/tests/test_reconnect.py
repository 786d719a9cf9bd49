"""Agents outlive their Valkey: a restart (here without persistence, so the consumer group is gone
too) costs a retry, not the process."""

import json
import logging

from agent_thread import AgentThread, wait_until
from conftest import ValkeyServer, skip_without_server

from agentic_agents import fanout
from agentic_agents.config import Config
from agentic_agents.module import user_key


def test_fanout_carries_on_after_valkey_restarts(tmp_path):
    skip_without_server()
    server = ValkeyServer(tmp_path)
    server.start()
    agent = None
    try:
        client = server.client()
        client.execute_command("AGENT.SUBSCRIBE", user_key(1), "sports")
        agent = AgentThread(fanout.run, Config(valkey_url=server.url)).start()
        client.xadd("topic:sports", {"doc": "doc:{before}", "data": json.dumps({"id": "before"})})
        wait_until(lambda: agent.sample("feed_push_total") == 1, message="the first delivery")
        client.close()

        server.stop()
        server.start(server.port)
        client = server.client()
        client.execute_command("AGENT.SUBSCRIBE", user_key(1), "sports")
        client.xadd("topic:sports", {"doc": "doc:{after}", "data": json.dumps({"id": "after"})})
        wait_until(lambda: agent.sample("feed_push_total") == 2, timeout=15, message="a delivery after the restart")
        assert [entry[2] for entry in client.execute_command("AGENT.FEED", user_key(1))] == ["doc:{after}"]
        client.close()
    finally:
        if agent is not None:
            agent.stop_and_join()
        server.stop()


def test_logs_show_the_server_without_credentials(valkey_server, caplog):
    import threading

    from agentic_agents.connection import connect

    with caplog.at_level(logging.INFO, logger="agentic_agents.connection"):
        connect(valkey_server.url, threading.Event()).close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"127.0.0.1:{valkey_server.port}" in logged
    assert "pw-agents" not in logged and "agents:" not in logged
