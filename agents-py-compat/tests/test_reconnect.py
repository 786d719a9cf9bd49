"""Agents outlive their Valkey: a restart (here without persistence, so the consumer group is gone
too) costs a retry, not the process."""

import json

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
