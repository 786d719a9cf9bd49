// The module's commands from Node (iovalkey's Cluster client) against a real 3-primary Valkey
// Cluster: users spread over the shards, fan-out sent to every primary, feeds read and blocked on
// through the client's routing, classification on every node, per-node stats.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster } from 'iovalkey';
import { SLOT_RANGES, missingPrerequisite, startCluster, statsMap, waitUntil } from './harness.js';

const skip = missingPrerequisite();
const USERS = 30;
const userKey = (n) => `user:{${n}}`;

describe('3-primary cluster', { skip: skip ?? false }, () => {
  let cluster;
  let client;
  let reader;
  let primaries; // one plain client per primary, in SLOT_RANGES order
  const docs = []; // per primary: a document key of its slots

  const clusterClient = () => new Cluster([{ host: '127.0.0.1', port: cluster.ports[0] }], {
    redisOptions: { maxRetriesPerRequest: 1 },
    clusterRetryStrategy: () => null,
  });

  /** The primary serving `key`, from the slot ranges the harness assigned. */
  const primaryOf = async (key) => {
    const slot = await client.call('CLUSTER', 'KEYSLOT', key);
    return primaries[SLOT_RANGES.findIndex(([first, last]) => slot >= first && slot <= last)];
  };

  before(async () => {
    cluster = await startCluster();
    client = clusterClient();
    reader = clusterClient();
    await Promise.all([client, reader].map((c) => new Promise((ok, fail) => {
      c.once('ready', ok);
      c.once('error', fail);
    })));
    const byPort = new Map(client.nodes('master').map((n) => [n.options.port, n]));
    primaries = cluster.ports.map((port) => byPort.get(port));
    assert.equal(primaries.filter(Boolean).length, 3);
    for (let i = 0; docs.length < 3; i++) {
      const key = `doc:{n${i}}`;
      const node = primaries.indexOf(await primaryOf(key));
      if (docs[node] === undefined) docs[node] = key;
      if (i > 1000) throw new Error('no document key found for some primary');
    }
  });

  after(async () => {
    client?.disconnect();
    reader?.disconnect();
    await cluster?.stop();
  });

  test('AGENT.SUBSCRIBE is routed by the user key, users land on every shard', async () => {
    for (let n = 1; n <= USERS; n++) {
      assert.equal(await client.call('AGENT.SUBSCRIBE', userKey(n), 'technology'), 1);
    }
    assert.deepEqual(await client.call('AGENT.INTERESTS', userKey(7)), ['technology']);
    const sizes = await Promise.all(primaries.map((p) => p.dbsize()));
    assert.equal(sizes.reduce((a, b) => a + b, 0), USERS);
    assert.ok(sizes.every((s) => s > 0), `users per primary: ${sizes}`);
  });

  test('AGENT.FANOUT sent to every primary, each with a document of its slots, reaches every subscriber once', async () => {
    let delivered = 0;
    for (const [i, primary] of primaries.entries()) {
      const [, n, , duplicates] = await primary.call('AGENT.FANOUT', 'technology', docs[i], JSON.stringify({ title: `Story ${i}` }));
      assert.equal(duplicates, 0);
      assert.ok(n > 0);
      delivered += n;
    }
    // A primary delivers to the subscribers it serves: together, every user exactly once.
    assert.equal(delivered, USERS);
    for (let n = 1; n <= USERS; n++) {
      const [[, topic, doc, body], ...rest] = await client.call('AGENT.FEED', userKey(n), 'COUNT', 10);
      assert.equal(rest.length, 0);
      assert.equal(topic, 'technology');
      const home = primaries.indexOf(await primaryOf(userKey(n)));
      assert.equal(doc, docs[home]);
      // A document of another slot than the user's comes back nil: read it with GET.
      const expected = JSON.stringify({ title: `Story ${home}` });
      assert.ok(body === null || body === expected);
      assert.equal(await client.get(doc), expected);
    }
  });

  test('AGENT.FEED BLOCK through the cluster client is woken by a routed USERS fan-out', async () => {
    const user = userKey(7);
    const doc = 'doc:{7}:live'; // the user's tag: same slot, so the feed carries the body
    const blocked = reader.call('AGENT.FEED', user, 'AFTER', '$', 'BLOCK', 10000);
    const node = await primaryOf(user);
    await waitUntil(async () => /blocked_clients:1\r\n/.test(await node.info('clients')), 'the blocked AGENT.FEED', 5000);
    assert.deepEqual(await client.call('AGENT.FANOUT', 'technology', doc, '{"title":"Live"}', 'USERS', user), ['delivered', 1, 'duplicates', 0]);
    const entries = await blocked;
    assert.deepEqual(entries.map(([, topic, d, body]) => [topic, d, body]), [['technology', doc, '{"title":"Live"}']]);
  });

  test('AGENT.FANOUT USERS across slots is refused with CROSSSLOT and writes nothing', async () => {
    await assert.rejects(client.call('AGENT.FANOUT', 'technology', 'doc:{7}:x', '{}', 'USERS', userKey(7), userKey(8)), /CROSSSLOT/);
    assert.equal(await client.exists('doc:{7}:x'), 0);
  });

  test('AGENT.CLASSIFY answers on every primary with the tiny model', async () => {
    for (const primary of primaries) {
      // A node answers TRYAGAIN until its copy of the catalog arrives over the bus.
      let reply;
      await waitUntil(async () => {
        reply = await primary.call('AGENT.CLASSIFY', 'The striker scored twice in the final');
        return true;
      }, 'the catalog on every node', 10000);
      const [best, scores, tier] = reply;
      assert.equal(scores[0], best);
      assert.equal(scores.length, 20);
      assert.ok(['static', 'model'].includes(tier));
    }
  });

  test('AGENT.STATS on each primary counts that node\'s work', async () => {
    const stats = await Promise.all(primaries.map(async (p) => statsMap(await p.call('AGENT.STATS'))));
    const sum = (name) => stats.reduce((total, s) => total + s.get(name), 0);
    assert.equal(sum('subscribe_calls'), USERS);
    assert.equal(sum('fanout_calls'), 4);
    assert.equal(sum('fanout_deliveries'), USERS + 1);
    assert.equal(sum('feed_blocked_reads'), 1);
    assert.ok(stats.every((s) => s.get('fanout_calls') >= 1 && s.get('classify_calls') >= 1));
    assert.ok(sum('feed_docs_elsewhere') > 0);
  });
});
