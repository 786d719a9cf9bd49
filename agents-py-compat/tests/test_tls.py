"""The agents over TLS (rediss://; the CA and the client certificate in the URL's ssl_ca_certs, ssl_certfile and
ssl_keyfile), as their ACL user, to a server that asks clients for a certificate (Valkey's default)."""

import pytest
import redis
from agent_thread import run_agent

from agentic_agents import user_seeder


def test_agents_work_over_tls_and_check_the_servers_certificate(valkey, valkey_server, make_config):
    # The URL names only the TLS port: the seeder's users exist only if TLS worked.
    run_agent(user_seeder.run, make_config(valkey_url=valkey_server.tls_url, seed_users=5, seed_rate=0))
    assert valkey.get("latest_uid") == "4"
    untrusting = redis.Redis.from_url(valkey_server.tls_url.split("?", 1)[0])
    with pytest.raises(redis.ConnectionError, match="certificate"):
        untrusting.ping()
    # Trusting the server but without a client certificate: the server ends the handshake.
    anonymous = redis.Redis.from_url(valkey_server.tls_url.split("&ssl_certfile", 1)[0])
    with pytest.raises(redis.ConnectionError):
        anonymous.ping()
