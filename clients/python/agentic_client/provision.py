"""agentic-provision: the message control plane for agents on valkey-agentic.

Given an agent's role, `create` makes the role's streams and consumer groups and an ACL user with
exactly the commands, keys and channels that role uses, and prints its credentials once; `revoke`
deletes the user and disconnects it. Users are named `agent-<name>`, so this tool can never touch
`default`, `admin` or the component users of ops/acl/users.acl.

    agentic-provision roles
    agentic-provision create --role enricher --name enrich-1 [--url redis://admin:pw@host:6379]
    agentic-provision create --role fanout --name fan-1 --rotate
    agentic-provision revoke --name enrich-1

The admin connection comes from --url, else $VALKEY_URL, else redis://127.0.0.1:6379. On a Valkey
Cluster every node gets the user (ACLs are per node) and every node must be up.
Exit status: 0 done, 1 refused or failed (nothing changed unless the message says so), 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster

USER_PREFIX = "agent-"
DEFAULT_URL = "redis://127.0.0.1:6379"
# What every client library sends when it connects (RESP3 handshake, names) and needs nothing else.
CONNECT = "+ping +hello +auth +client|setname +client|setinfo"
# What a cluster-aware client (redis-py's RedisCluster, iovalkey's Cluster) sends to learn the slots
# and to read from replicas; harmless on a single server. redis-py's RedisCluster also reads COMMAND
# (every command's key positions) when it starts: metadata only.
CLUSTER_ROUTING = "+cluster|slots +cluster|shards +readonly +command"
# Reading a stream through a consumer group so nothing read is lost when the agent dies:
# pending entries are re-read, claimed from dead consumers and acknowledged.
GROUP_CONSUMER = "+xreadgroup +xack +xgroup|create +xgroup|createconsumer +xpending +xclaim +xautoclaim +xinfo|groups +xinfo|stream +xlen"

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
# Stream names become ACL key patterns: glob characters (* ? [ ] \) would widen the rule, and
# spaces or control characters would split it.
STREAM_RE = re.compile(r"^[A-Za-z0-9:_.{}@#=+-]{1,200}$")
GROUP_RE = re.compile(r"^[A-Za-z0-9:_.@#=+-]{1,64}$")
CATALOG_KEY = "agentic:topics"
CLIENT_OPTIONS = {"decode_responses": True, "protocol": 2, "socket_timeout": 10}


@dataclass(frozen=True)
class Role:
    summary: str
    commands: str
    # Key patterns; "{streams}" is replaced by one `~<stream>` per stream of the role.
    keys: str = ""
    channels: str = ""
    # Streams the role reads or writes when --stream is not given; None: the topic streams of the
    # catalog (AGENT.TOPIC.LIST) at provisioning time, read with the wildcard `~topic:*`.
    streams: list[str] | None = field(default_factory=list)
    # The consumer group created on each stream (XGROUP CREATE ... 0 MKSTREAM); None: no group.
    group: str | None = None
    may_not: str = ""


# Derived from what each component sends (ops/acl/users.acl, agents-py-compat's enrich and fanout).
ROLES: dict[str, Role] = {
    "producer": Role(
        summary="writes raw articles to its stream (as agentic-fetcher writes news_raw) and watches its consumers' backlog",
        commands=f"{CONNECT} {CLUSTER_ROUTING} +xadd +xlen +xinfo|groups +xinfo|stream",
        keys="{streams}",
        streams=["news_raw"],
        may_not="read feeds, users or documents; classify; fan out; change topics or settings",
    ),
    "enricher": Role(
        summary="reads its stream with a consumer group, classifies each article and routes it to topic:<slug> (agents-py-compat enrich)",
        commands=f"{CONNECT} {CLUSTER_ROUTING} {GROUP_CONSUMER} +xadd +xtrim +multi +exec +discard +info +agent.classify +agent.topic.list",
        keys="{streams} ~topic:*",
        streams=["news_raw"],
        group="cg_enrich",
        may_not="fan out; read feeds or documents; change topics or settings",
    ),
    "fanout": Role(
        summary="reads the topic streams with a consumer group and delivers each entry with AGENT.FANOUT (agents-py-compat fanout)",
        commands=f"{CONNECT} {CLUSTER_ROUTING} {GROUP_CONSUMER} +agent.fanout +agent.topic.list +config|get",
        keys="{streams} ~doc:* ~user:*",
        streams=None,
        group="cg_fanout",
        may_not="read feeds; subscribe users; classify; write the raw stream; change topics or settings",
    ),
    "reader": Role(
        summary="reads users' feeds and interests, documents and topic streams; writes nothing",
        commands=f"{CONNECT} {CLUSTER_ROUTING} +agent.feed +agent.interests +agent.topic.list +get +xrange +xrevrange +xread",
        keys="%R~user:* %R~doc:* %R~topic:*",
        may_not="fan out; subscribe; write any key (the raw stream included); change topics or settings",
    ),
    "gateway": Role(
        summary="serves feeds to browsers (as agentic-gateway): feeds, interests, documents, topic streams, the delivery channel",
        commands=f"{CONNECT} {CLUSTER_ROUTING} +info +module|list +multi +exec +discard +agent.feed +agent.interests"
        " +agent.subscribe +agent.unsubscribe +agent.topic.list +agent.stats +xrange +xrevrange +xread +get"
        " +subscribe +unsubscribe +ssubscribe +sunsubscribe",
        keys="~user:* %R~topic:* %R~doc:*",
        channels="&agentic:deliveries &agentic:deliveries{*}",
        may_not="fan out; change the topic catalog; CONFIG; write documents or streams",
    ),
    "sidecar": Role(
        summary="classification sidecar (agentic-sidecar): takes batches and returns vectors",
        commands=f"{CONNECT} +agent.sidecar.next +agent.sidecar.result",
        may_not="any key: feeds, documents, streams; any other command",
    ),
}


class Refused(Exception):
    """Bad input or a state the tool will not change; the message says what to do."""


def user_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise Refused(f"invalid --name {name!r}: 1-63 characters of a-z 0-9 _ . -, starting with a letter or digit")
    return USER_PREFIX + name


def role_streams(role_name: str, role: Role, streams: list[str] | None, group: str | None) -> tuple[list[str] | None, str | None]:
    """The streams and group to provision, validated (None streams: the catalog's topic streams)."""
    if role.streams == [] and (streams or group is not None):
        raise Refused(f"role {role_name} uses no stream of its own: --stream and --group are not accepted")
    for stream in streams or []:
        if not STREAM_RE.match(stream):
            raise Refused(f"invalid --stream {stream!r}: 1-200 characters of A-Z a-z 0-9 : _ . {{ }} @ # = + -, no glob characters")
    if group is not None and not GROUP_RE.match(group):
        raise Refused(f"invalid --group {group!r}: 1-64 characters of A-Z a-z 0-9 : _ . @ # = + -")
    if role_name == "producer" and streams and len(streams) > 1:
        raise Refused("role producer writes one stream: give --stream once")
    return (streams or role.streams), (group if group is not None else role.group)


def acl_rules(role: Role, streams: list[str] | None) -> list[str]:
    keys: list[str] = []
    for pattern in role.keys.split():
        if pattern == "{streams}":
            keys += [f"~{s}" for s in streams] if streams is not None else ["~topic:*"]
        else:
            keys.append(pattern)
    # reset first: whatever the user had before (a --rotate of an older role), it gets exactly these.
    return ["reset", "on", "resetkeys", *keys, "resetchannels", *role.channels.split(), "-@all", *role.commands.split()]


class Deployment:
    """What the admin URL reaches: one server, or every node of a cluster. ACL users are per node,
    so on a cluster every node (primaries and replicas) gets the same user; streams and groups go
    to the primary serving their slot."""

    def __init__(self, url: str) -> None:
        self.url = url
        first = redis.Redis.from_url(url, **CLIENT_OPTIONS)
        try:
            self.cluster = first.info("cluster").get("cluster_enabled") == 1
            addresses = self._cluster_addresses(first) if self.cluster else []
        except redis.RedisError as e:
            first.close()
            raise Refused(f"cannot use {redact(url)}: {e}") from None
        if not self.cluster:
            self.nodes = {redact(url): first}
            self.keys: redis.Redis | RedisCluster = first
            return
        first.close()
        self.nodes = {f"{host}:{port}": redis.Redis.from_url(node_url(url, host, port), **CLIENT_OPTIONS) for host, port in addresses}
        self.keys = RedisCluster.from_url(url, **CLIENT_OPTIONS)

    @staticmethod
    def _cluster_addresses(client: redis.Redis) -> list[tuple[str, int]]:
        addresses = []
        for line in client.execute_command("CLUSTER", "NODES").splitlines():
            fields = line.split()
            address, flags = fields[1].split("@")[0], set(fields[2].split(","))
            if flags & {"fail", "fail?", "handshake", "noaddr"}:
                # A node that misses the change would keep (or lack) the user after it recovers.
                raise Refused(f"cluster node {address} is {fields[2]}: nothing changed, retry when every node is up")
            host, _, port = address.rpartition(":")
            addresses.append((host, int(port)))
        return addresses

    def every_node(self, *command: str) -> dict[str, object]:
        return {name: node.execute_command(*command) for name, node in self.nodes.items()}

    def catalog_streams(self) -> list[str]:
        if self.cluster:
            # AGENT.TOPIC.LIST names no key: ask the node serving the catalog, others answer MOVED.
            reply = self.keys.get_redis_connection(self.keys.get_node_from_key(CATALOG_KEY)).execute_command("AGENT.TOPIC.LIST")
        else:
            reply = self.keys.execute_command("AGENT.TOPIC.LIST")
        return [f"topic:{fields[1]}" for fields in reply]

    def persist(self, err) -> None:
        for name, node in self.nodes.items():
            print(f"{name}: {persist(node)}", file=err)

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()
        self.keys.close()


def node_url(url: str, host: str, port: int) -> str:
    """The admin URL with another node's address: same credentials, scheme and TLS options."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit((parts.scheme, f"{userinfo}@{address}" if userinfo else address, parts.path, parts.query, ""))


def redact(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def credentials_url(admin_url: str, user: str, password: str) -> str:
    parts = urlsplit(admin_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    # Only the scheme and address: the admin URL's query may carry its own options (certificates).
    return urlunsplit((parts.scheme or "redis", netloc, parts.path if parts.path not in ("", "/") else "", "", ""))


def persist(client: redis.Redis) -> str:
    """ACL SAVE when the server has an aclfile; says what happened either way."""
    try:
        aclfile = client.config_get("aclfile").get("aclfile", "")
    except redis.RedisError as e:
        return f"not persisted: CONFIG GET aclfile refused ({e}); run ACL SAVE yourself if the server has an aclfile"
    if not aclfile:
        return "not persisted: the server has no aclfile, the user is lost when it restarts"
    try:
        client.execute_command("ACL", "SAVE")
    except redis.RedisError as e:
        return f"NOT persisted: ACL SAVE to {aclfile} failed: {e}"
    return f"persisted: ACL SAVE wrote {aclfile}"


def create(args: argparse.Namespace, out, err) -> int:
    role_name = args.role
    role = ROLES[role_name]
    user = user_name(args.name)
    streams, group = role_streams(role_name, role, args.stream, args.group)
    deployment = Deployment(args.url)
    try:
        exists = any(reply is not None for reply in deployment.every_node("ACL", "GETUSER", user).values())
        if exists and not args.rotate:
            raise Refused(f"user {user} exists: nothing changed (--rotate replaces its password and rules, revoke deletes it)")
        # Provisioned now; topic streams added later are created by the agent's own
        # XGROUP CREATE ... MKSTREAM, which `~topic:*` allows.
        group_streams = deployment.catalog_streams() if streams is None else streams
        if group is not None:
            # Checked before anything is written: a key of another type would fail halfway.
            for stream in group_streams:
                kind = deployment.keys.type(stream)
                if kind not in ("none", "stream"):
                    raise Refused(f"{stream} holds a {kind}, not a stream: nothing changed")
            for stream in group_streams:
                try:
                    deployment.keys.xgroup_create(stream, group, id="0", mkstream=True)
                    print(f"created consumer group {group} on {stream}", file=err)
                except redis.ResponseError as e:
                    if "BUSYGROUP" not in str(e):
                        raise
                    print(f"consumer group {group} on {stream} already exists", file=err)
        password = secrets.token_urlsafe(32)
        deployment.every_node("ACL", "SETUSER", user, *acl_rules(role, streams), f">{password}")
        if exists:
            # A rotated credential must not live on in connections opened with the old one.
            killed = sum(kill_connections(deployment, user).values())
            print(f"rotated {user}: {killed} connection(s) with the old password closed", file=err)
        deployment.persist(err)
    finally:
        deployment.close()
    # The only place the password ever appears: it is not stored anywhere by this tool.
    print(f"user: {user}", file=out)
    print(f"password: {password}", file=out)
    print(f"url: {credentials_url(args.url, user, password)}", file=out)
    return 0


def kill_connections(deployment: Deployment, user: str) -> dict[str, int]:
    killed = {}
    for name, node in deployment.nodes.items():
        try:
            killed[name] = node.execute_command("CLIENT", "KILL", "USER", user)
        except redis.ResponseError as e:
            # A node that never had the user (an earlier partial run): nothing to close there.
            if "No such user" not in str(e):
                raise
            killed[name] = 0
    return killed


def revoke(args: argparse.Namespace, out, err) -> int:
    user = user_name(args.name)
    deployment = Deployment(args.url)
    try:
        has_user = [name for name, reply in deployment.every_node("ACL", "GETUSER", user).items() if reply is not None]
        if not has_user:
            raise Refused(f"no user {user}: nothing to revoke")
        for name in has_user:
            # Off first so no new connection can authenticate between the kill and the delete.
            deployment.nodes[name].execute_command("ACL", "SETUSER", user, "off")
        killed = sum(kill_connections(deployment, user).values())
        for name in has_user:
            deployment.nodes[name].execute_command("ACL", "DELUSER", user)
        deployment.persist(err)
    finally:
        deployment.close()
    print(f"revoked {user}: deleted, {killed} connection(s) closed", file=out)
    return 0


def roles(_args: argparse.Namespace, out, _err) -> int:
    for name, role in ROLES.items():
        print(f"{name}: {role.summary}", file=out)
        if role.streams is None:
            print(f"  streams: topic:<slug> of every catalog topic, group {role.group}", file=out)
        elif role.streams:
            group = f", group {role.group}" if role.group else ""
            print(f"  streams: {' '.join(role.streams)}{group}", file=out)
        print(f"  may not: {role.may_not}", file=out)
        print(f"  ACL: {' '.join(acl_rules(role, role.streams))}", file=out)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agentic-provision", description="Provision agents' streams, groups and ACL users on valkey-agentic.")
    sub = p.add_subparsers(dest="command", required=True)
    default_url = os.environ.get("VALKEY_URL", DEFAULT_URL)
    c = sub.add_parser("create", help="create a role's streams, groups and ACL user; print its credentials once")
    c.add_argument("--role", required=True, choices=sorted(ROLES))
    c.add_argument("--name", required=True, help=f"the agent's name; the ACL user is {USER_PREFIX}<name>")
    # The default is not shown in --help: $VALKEY_URL may hold a password.
    c.add_argument("--url", default=default_url, help=f"an admin connection (default $VALKEY_URL or {DEFAULT_URL})")
    c.add_argument("--stream", action="append", help="a stream of the role instead of its default (repeatable for fanout)")
    c.add_argument("--group", help="the consumer group instead of the role's default")
    c.add_argument("--rotate", action="store_true", help="replace an existing user's password and rules")
    c.set_defaults(func=create)
    r = sub.add_parser("revoke", help="delete an agent's ACL user and close its connections")
    r.add_argument("--name", required=True)
    r.add_argument("--url", default=default_url)
    r.set_defaults(func=revoke)
    sub.add_parser("roles", help="print every role's rules").set_defaults(func=roles)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args, sys.stdout, sys.stderr)
    except Refused as e:
        print(f"agentic-provision: {e}", file=sys.stderr)
        return 1
    except redis.RedisError as e:
        print(f"agentic-provision: Valkey refused or failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
