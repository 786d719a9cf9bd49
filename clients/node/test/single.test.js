// The module's commands from Node (iovalkey) against one real valkey-server with libagentic.so.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { missingPrerequisite, nodeClient, startServer, statsMap, waitUntil } from './harness.js';

const skip = missingPrerequisite();

describe('single server', { skip: skip ?? false }, () => {
  let server;
  let client;
  const extra = [];

  before(async () => {
    server = await startServer();
    client = nodeClient(server.port);
  });

  after(async () => {
    for (const c of [client, ...extra]) c?.disconnect();
    await server?.stop();
  });

  test('AGENT.SUBSCRIBE counts new topics, AGENT.INTERESTS lists them sorted', async () => {
    assert.equal(await client.call('AGENT.SUBSCRIBE', 'user:{1}', 'technology', 'sports'), 2);
    assert.equal(await client.call('AGENT.SUBSCRIBE', 'user:{1}', 'sports', 'science'), 1);
    assert.equal(await client.call('AGENT.SUBSCRIBE', 'user:{2}', 'technology'), 1);
    assert.deepEqual(await client.call('AGENT.INTERESTS', 'user:{1}'), ['science', 'sports', 'technology']);
  });

  test('AGENT.FANOUT delivers once per subscriber, stores the document and appends the stream', async () => {
    const payload = JSON.stringify({ title: 'A new chip' });
    assert.deepEqual(
      await client.call('AGENT.FANOUT', 'technology', 'doc:{a1}', payload, 'STREAM', 'topic:technology'),
      ['delivered', 2, 'duplicates', 0],
    );
    // The same document again: the seen-filters turn it into duplicates, no second feed entry.
    assert.deepEqual(await client.call('AGENT.FANOUT', 'technology', 'doc:{a1}', payload), ['delivered', 0, 'duplicates', 2]);
    assert.equal(await client.get('doc:{a1}'), payload);
    const [[, fields]] = await client.xrange('topic:technology', '-', '+');
    assert.deepEqual(fields, ['doc', 'doc:{a1}', 'data', payload]);
    // USERS: only the listed user, subscribed or not.
    assert.deepEqual(
      await client.call('AGENT.FANOUT', 'sports', 'doc:{a2}', '{"title":"Match"}', 'USERS', 'user:{2}'),
      ['delivered', 1, 'duplicates', 0],
    );
  });

  test('AGENT.FANOUT refuses bad input and writes nothing', async () => {
    await assert.rejects(client.call('AGENT.FANOUT', 'Not A Topic', 'doc:{bad}', '{}'), /topic/i);
    await assert.rejects(client.call('AGENT.FANOUT', 'technology', 'doc:{bad}', ''), /payload|empty/i);
    assert.equal(await client.exists('doc:{bad}'), 0);
  });

  test('AGENT.FEED reads newest first, pages with BEFORE and tails with AFTER', async () => {
    await client.call('AGENT.FANOUT', 'technology', 'doc:{a3}', '{"title":"Later"}');
    const feed = await client.call('AGENT.FEED', 'user:{1}', 'COUNT', 10);
    assert.deepEqual(feed.map(([, topic, doc, body]) => [topic, doc, body]), [
      ['technology', 'doc:{a3}', '{"title":"Later"}'],
      ['technology', 'doc:{a1}', '{"title":"A new chip"}'],
    ]);
    assert.match(feed[0][0], /^\d+-\d+$/);
    const older = await client.call('AGENT.FEED', 'user:{1}', 'COUNT', 10, 'BEFORE', feed[0][0]);
    assert.deepEqual(older.map((e) => e[2]), ['doc:{a1}']);
    const newer = await client.call('AGENT.FEED', 'user:{1}', 'AFTER', feed[1][0]);
    assert.deepEqual(newer.map((e) => e[2]), ['doc:{a3}']);
    assert.deepEqual(await client.call('AGENT.FEED', 'user:{never}'), []);
  });

  test('AGENT.FEED BLOCK is woken by a fan-out to that user, and times out empty', async () => {
    const reader = nodeClient(server.port);
    extra.push(reader);
    const blocked = reader.call('AGENT.FEED', 'user:{2}', 'AFTER', '$', 'BLOCK', 10000);
    // Fan out only once the read is really parked on the server, else it would not test waking.
    await waitUntil(async () => /blocked_clients:1\r\n/.test(await client.info('clients')), 'the blocked AGENT.FEED', 5000);
    const started = Date.now();
    await client.call('AGENT.FANOUT', 'technology', 'doc:{a4}', '{"title":"Live"}');
    const entries = await blocked;
    assert.ok(Date.now() - started < 5000);
    assert.deepEqual(entries.map(([, topic, doc, body]) => [topic, doc, body]), [['technology', 'doc:{a4}', '{"title":"Live"}']]);
    const timedOut = Date.now();
    assert.deepEqual(await reader.call('AGENT.FEED', 'user:{2}', 'AFTER', '$', 'BLOCK', 100), []);
    assert.ok(Date.now() - timedOut >= 90);
  });

  test('AGENT.CLASSIFY with the tiny model: best topic, every score, the tier; TOPICS restricts', async () => {
    const [best, scores, tier] = await client.call('AGENT.CLASSIFY', 'Oil prices fell after OPEC agreed to raise output');
    assert.equal(scores.length, 20); // the ten default topics, slug and score each
    assert.equal(scores[0], best);
    const values = scores.filter((_, i) => i % 2 === 1).map(Number);
    assert.deepEqual([...values].sort((a, b) => b - a), values);
    assert.ok(['static', 'model'].includes(tier));
    const [restricted, only] = await client.call('AGENT.CLASSIFY', 'The match ended in a draw', 'TOPICS', 'sports', 'politics');
    assert.ok(['sports', 'politics'].includes(restricted));
    assert.equal(only.length, 4);
    await assert.rejects(client.call('AGENT.CLASSIFY', 'text', 'TOPICS', 'no-such-topic'), /topic/i);
  });

  test('AGENT.STATS counts what the tests did', async () => {
    const stats = statsMap(await client.call('AGENT.STATS'));
    assert.ok(stats.size > 50);
    assert.equal(stats.get('fanout_calls'), 5);
    assert.equal(stats.get('fanout_deliveries'), 7); // a1: 2, a2: 1, a3: 2, a4: 2
    assert.equal(stats.get('fanout_duplicates_skipped'), 2);
    assert.equal(stats.get('subscribe_calls'), 3);
    assert.equal(stats.get('feed_blocked_reads'), 2);
    assert.equal(stats.get('feed_read_timeouts'), 1);
    assert.ok(stats.get('classify_calls') >= 2);
  });
});
