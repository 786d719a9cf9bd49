// End-to-end test of the feed UI against real processes: valkey-server with the module, the tiny
// test model and the in-server pipeline; agentic-gateway serving the built UI; agentic-fetcher
// replaying articles; headless Chromium driving the pages. Prints each check; exits 1 on failure.
//
// Needs: npm run build (dist/), target/release/{libagentic.so,agentic-gateway,agentic-fetcher},
// model/out/tiny (make tiny-model), valkey-server, and Chromium ($CHROMIUM or /usr/bin/chromium).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { freePort, logTail, start, stop, waitFor } from './processes.mjs';
import { RespClient } from './resp.mjs';

const uiDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const repo = path.resolve(uiDir, '../..');
const release = path.join(repo, 'target/release');
const paths = {
  module: path.join(release, 'libagentic.so'),
  gateway: path.join(release, 'agentic-gateway'),
  fetcher: path.join(release, 'agentic-fetcher'),
  model: path.join(repo, 'model/out/tiny'),
  dist: path.join(uiDir, 'dist'),
  chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  screenshots: path.join(uiDir, 'e2e/screenshots'),
};
const USER = 'alice';
const AUTH_SECRET = 'e2e-secret';

// Invented articles on different subjects; the tiny model assigns each a topic (arbitrary but
// deterministic), which the test asks Valkey for before ingesting anything.
const CANDIDATES = [
  [
    'Harbour City win the cup final on penalties',
    'The home side came from behind twice before their goalkeeper saved the decisive kick in front of a sold-out stadium.',
  ],
  [
    'Central bank leaves its key rate unchanged',
    'Policymakers held borrowing costs steady and signalled that cuts may follow if inflation keeps easing over the summer.',
  ],
  [
    'New vaccine trial reports strong protection',
    'Researchers said the two-dose schedule prevented most severe infections among the ten thousand volunteers in the study.',
  ],
  [
    'Record heatwave grips the southern coast',
    'Temperatures passed 44 degrees for a third day as authorities opened cooling centres and warned of wildfire risk.',
  ],
  [
    'Chipmaker unveils a faster laptop processor',
    'The company says the new design doubles battery life and speeds up machine learning tasks on thin notebooks.',
  ],
  [
    'Parliament passes the budget after a long night',
    'Opposition members walked out before the final vote on spending for schools, hospitals and the armed forces.',
  ],
  [
    'Telescope spots water vapour on a distant planet',
    'Astronomers measured the atmosphere as the planet crossed its star, a first for a world of that size.',
  ],
  [
    'Teachers vote to accept a new pay offer',
    'The union said the deal ends months of strikes and gives schools money to hire more classroom assistants.',
  ],
  [
    'Summer blockbuster breaks opening weekend record',
    'The animated sequel earned more at the box office than any film this year, delighting cinema owners.',
  ],
  [
    'Carmaker to cut two thousand jobs as sales slow',
    'The group will close one assembly plant and merge two divisions, its chief executive told shareholders.',
  ],
  [
    'Marathon runner sets a new course record',
    'She finished more than a minute ahead of the field despite strong winds along the river for the final ten kilometres.',
  ],
  [
    'Oil prices fall as producers agree to pump more',
    'Brent crude dropped four percent after the cartel raised output targets for the rest of the year.',
  ],
];

let failures = 0;
const step = (text) => console.log(`\n== ${text}`);
function check(condition, text, detail = '') {
  if (condition) {
    console.log(`ok   ${text}`);
  } else {
    failures++;
    console.log(`FAIL ${text}${detail ? `: ${detail}` : ''}`);
    throw new Error(`check failed: ${text}`);
  }
}

/** `{ port: 1 }` -> `['--port', '1']`. */
const flags = (options) => Object.entries(options).flatMap(([name, value]) => [`--${name}`, String(value)]);

/** The text the pipeline classifies: trimmed title, ". ", trimmed text (module/src/pipeline.rs). */
const textToClassify = ({ title, text }) => [title.trim(), text.trim()].filter(Boolean).join('. ');

function requirePrerequisites() {
  const missing = [
    [paths.module, 'cargo build --release -p agentic'],
    [paths.gateway, 'cargo build --release -p agentic-gateway'],
    [paths.fetcher, 'cargo build --release -p agentic-fetcher'],
    [path.join(paths.model, 'model.onnx'), 'make tiny-model'],
    [path.join(paths.dist, 'index.html'), 'npm run build (in gateway/ui)'],
    [paths.chromium, 'apt-get install -y chromium (or set CHROMIUM)'],
  ].filter(([file]) => !existsSync(file));
  for (const [file, fix] of missing) console.log(`missing ${file}: ${fix}`);
  if (missing.length > 0) throw new Error('prerequisites missing');
}

async function main() {
  requirePrerequisites();
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'agentic-ui-e2e-'));
  await mkdir(paths.screenshots, { recursive: true });
  const processes = [];
  let browser;
  let valkey;
  try {
    const valkeyPort = await freePort();
    const gatewayPort = await freePort();
    const valkeyUrl = `redis://127.0.0.1:${valkeyPort}`;
    const base = `http://127.0.0.1:${gatewayPort}`;

    step('start valkey-server with the module, the tiny model and the pipeline');
    processes.push(
      start(
        'valkey-server',
        'valkey-server',
        [
          ...flags({ port: valkeyPort, bind: '127.0.0.1', save: '', appendonly: 'no', dir: tmp }),
          // classify-tier model: the test asks AGENT.CLASSIFY for each candidate's topic first and
          // expects the pipeline to agree, which the cascade's load-dependent escalation would not
          // guarantee.
          ...['--loadmodule', paths.module, 'model-dir', paths.model, 'classify-tier', 'model', 'pipeline', 'yes', 'seen-fp-ppm', '1'],
        ],
        path.join(tmp, 'valkey.log'),
      ),
    );
    valkey = await waitFor('valkey-server to accept connections', () => RespClient.connect(valkeyPort), 10_000, 100);
    check((await valkey.command('PING')) === 'PONG', `valkey-server answers on port ${valkeyPort}`);
    await waitFor('the model to load', async () => Array.isArray(await valkey.command('AGENT.CLASSIFY', 'warm up')), 20_000, 200);
    check(true, 'AGENT.CLASSIFY works (model loaded)');

    step("classify the candidate articles to know each one's topic");
    const byTopic = new Map();
    for (const [i, [title, text]] of CANDIDATES.entries()) {
      const [topic] = await valkey.command('AGENT.CLASSIFY', textToClassify({ title, text }));
      const article = { id: `e2e-${i + 1}`, title, text, link: `https://news.example/e2e/${i + 1}` };
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), article]);
    }
    const ranked = [...byTopic.entries()].sort((a, b) => b[1].length - a[1].length);
    console.log(`topics: ${ranked.map(([topic, list]) => `${topic} x${list.length}`).join(', ')}`);
    check(ranked.length >= 2, 'the candidates cover at least two topics');
    // The n-th article of a topic; past the candidates, the same text under a new id (same topic).
    const nth = ([, list], n) => list[n] ?? { ...list[0], id: `${list[0].id}-copy${n}` };
    const topicA = ranked[0][0];
    const topicB = ranked[1][0];
    const [articleA1, articleA2] = [nth(ranked[0], 0), nth(ranked[0], 1)];
    const [articleB1, articleB2] = [nth(ranked[1], 0), nth(ranked[1], 1)];
    console.log(`topic A = ${topicA} (${articleA1.id}, ${articleA2.id}), topic B = ${topicB} (${articleB1.id}, ${articleB2.id})`);

    step('start agentic-gateway serving the built UI');
    const startGateway = async () => {
      const gateway = start(
        'agentic-gateway',
        paths.gateway,
        ['--valkey', valkeyUrl, '--listen', `127.0.0.1:${gatewayPort}`, '--ui-dir', paths.dist, '--demo-users', USER],
        path.join(tmp, `gateway-${processes.length}.log`),
      );
      processes.push(gateway);
      await waitFor('the gateway /healthz to answer 200', async () => (await fetch(`${base}/healthz`)).ok, 15_000, 200);
      return gateway;
    };
    let gateway = await startGateway();
    check(true, `gateway healthy on ${base}`);

    let replays = 0;
    const ingest = async (...articles) => {
      const file = path.join(tmp, `articles-${++replays}.jsonl`);
      await writeFile(file, articles.map((a) => JSON.stringify(a)).join('\n') + '\n');
      const fetcher = start(
        'agentic-fetcher',
        paths.fetcher,
        ['replay', '--valkey', valkeyUrl, '--file', file, '--rate', '50', '--metrics-addr', ''],
        path.join(tmp, `fetcher-${replays}.log`),
      );
      processes.push(fetcher);
      const { code } = await fetcher.exited;
      check(code === 0, `fetcher replayed ${articles.map((a) => a.id).join(', ')}`, `exit ${code}\n${logTail(fetcher)}`);
    };
    const apiJson = async (url) => (await fetch(`${base}${url}`)).json();
    const userFeedDocs = async () => (await apiJson(`/api/users/${USER}/feed?count=100`)).entries.map((e) => e.doc);
    const docKey = (article) => `doc:{${article.id}}`;

    step('launch headless Chromium');
    browser = await chromium.launch({ executablePath: paths.chromium, args: ['--no-sandbox'], headless: true });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const pageErrors = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    const socketUrls = [];
    page.on('websocket', (socket) => socketUrls.push(socket.url()));
    page.on('console', (message) => {
      if (message.type() === 'error') console.log(`     (browser console error: ${message.text()})`);
    });
    const entry = (article) => page.locator(`[data-testid="feed-entry"][data-doc="${docKey(article)}"]`);
    const waitLive = () => page.locator('[data-testid="connection-status"][data-state="live"]').waitFor({ timeout: 10_000 });

    step('home page');
    await page.goto(`${base}/`);
    await page.getByRole('link', { name: USER, exact: true }).waitFor();
    check(true, `home page lists the demo user ${USER}`);
    const topicCount = (await apiJson('/api/topics')).topics.length;
    await page.locator('[data-testid="topic-links"] li').first().waitFor();
    check((await page.locator('[data-testid="topic-links"] li').count()) === topicCount, `home page links all ${topicCount} topics`);

    step(`${USER}'s feed: subscribe to ${topicA} in the interests editor`);
    await page.getByRole('link', { name: USER, exact: true }).click();
    await page.waitForURL(`${base}/u/${USER}`);
    await waitLive();
    check(true, 'connection status says live');
    await page.getByTestId(`interest-${topicA}`).check();
    await page.getByTestId('interests-save').click();
    await page.getByTestId('interests-saved').waitFor();
    const interestsA = (await apiJson(`/api/users/${USER}/interests`)).interests;
    check(JSON.stringify(interestsA) === JSON.stringify([topicA]), `interests saved as [${topicA}]`, JSON.stringify(interestsA));

    step(`ingest ${articleA1.id} (${topicA}): it arrives live`);
    await ingest(articleA1);
    await entry(articleA1).waitFor({ timeout: 20_000 });
    check((await entry(articleA1).getAttribute('data-topic')) === topicA, `${articleA1.id} is on the page with topic ${topicA}`);
    check((await entry(articleA1).locator('a').getAttribute('href')) === articleA1.link, 'its title links to the article');
    await page.screenshot({ path: path.join(paths.screenshots, 'feed.png') });
    console.log(`     screenshot ${path.join(paths.screenshots, 'feed.png')}`);

    step(`switch interests to ${topicB} only`);
    await page.getByTestId(`interest-${topicA}`).uncheck();
    await page.getByTestId(`interest-${topicB}`).check();
    await page.getByTestId('interests-save').click();
    await page.getByTestId('interests-saved').waitFor();
    const interestsB = (await apiJson(`/api/users/${USER}/interests`)).interests;
    check(JSON.stringify(interestsB) === JSON.stringify([topicB]), `interests saved as [${topicB}]`, JSON.stringify(interestsB));

    step(`scrolled down, ingest ${articleA2.id} (${topicA}) then ${articleB1.id} (${topicB})`);
    // Room to scroll past the top of the feed, so that arrivals are held behind the banner.
    await page.evaluate(() => {
      document.body.style.paddingBottom = '3000px';
      window.scrollTo(0, 1500);
    });
    await ingest(articleA2, articleB1);
    const banner = page.getByTestId('new-banner');
    await banner.waitFor({ timeout: 20_000 });
    check((await banner.textContent()).includes('1 new'), 'a "1 new" banner appears instead of the entry', await banner.textContent());
    check((await entry(articleB1).count()) === 0, `${articleB1.id} is held back while scrolled down`);
    await banner.click();
    await entry(articleB1).waitFor();
    check(true, `clicking the banner shows ${articleB1.id}`);
    await waitFor('the page to scroll back to the top', () => page.evaluate(() => window.scrollY === 0), 5_000);
    check(true, 'and scrolls to the top');
    // A2 went through the pipeline before B1 (fan-outs complete in arrival order); its topic stream proves it.
    const topicADocs = (await apiJson(`/api/topics/${topicA}/feed?count=100`)).entries.map((e) => e.doc);
    check(topicADocs.includes(docKey(articleA2)), `${articleA2.id} was processed (it is in topic:${topicA})`);
    await page.waitForTimeout(500);
    check((await entry(articleA2).count()) === 0, `${articleA2.id} (${topicA}, no longer an interest) is not on the page`);
    check(!(await userFeedDocs()).includes(docKey(articleA2)), `${articleA2.id} is not in ${USER}'s feed either`);

    step('reload: the feed comes back whole, without duplicates');
    await page.reload();
    await waitLive();
    await entry(articleB1).waitFor();
    const ids = await page.locator('[data-testid="feed-entry"]').evaluateAll((els) => els.map((el) => el.getAttribute('data-entry-id')));
    const expected = await userFeedDocs();
    check(
      ids.length === expected.length && ids.length === 2,
      `${ids.length} entries shown, as many as the feed holds`,
      `shown ${ids}, feed ${expected}`,
    );
    check(new Set(ids).size === ids.length, 'no entry id is shown twice', ids.join(', '));
    const shownDocs = await page.locator('[data-testid="feed-entry"]').evaluateAll((els) => els.map((el) => el.getAttribute('data-doc')));
    check(
      JSON.stringify(shownDocs) === JSON.stringify([docKey(articleB1), docKey(articleA1)]),
      'newest first: B1 above A1',
      shownDocs.join(', '),
    );

    step('gateway restart: the page reconnects and resumes, missing nothing, repeating nothing');
    const newestBeforeStop = await entry(articleB1).getAttribute('data-entry-id');
    await stop(gateway);
    await page.locator('[data-testid="connection-status"][data-state="reconnecting"]').waitFor({ timeout: 10_000 });
    check(true, 'connection status says reconnecting while the gateway is down');
    await ingest(articleB2);
    await waitFor(
      `${articleB2.id} to reach ${USER}'s feed in Valkey`,
      async () => {
        const docs = await valkey.command('AGENT.FEED', `user:{${USER}}`, 'COUNT', '10');
        return docs.some(([, , doc]) => doc === docKey(articleB2));
      },
      10_000,
      100,
    );
    gateway = await startGateway();
    await waitLive();
    check(true, 'live again after the gateway restarted');
    check(
      socketUrls.at(-1).endsWith(`/ws/users/${USER}?after=${newestBeforeStop}`),
      'it reconnected with after=<newest id seen>',
      socketUrls.at(-1),
    );
    await entry(articleB2).waitFor({ timeout: 10_000 });
    const resumedDocs = await page.locator('[data-testid="feed-entry"]').evaluateAll((els) => els.map((el) => el.getAttribute('data-doc')));
    const expectedDocs = [docKey(articleB2), docKey(articleB1), docKey(articleA1)];
    check(
      JSON.stringify(resumedDocs) === JSON.stringify(expectedDocs),
      `the entry written while disconnected arrived, once: ${resumedDocs.join(', ')}`,
      `expected ${expectedDocs.join(', ')}`,
    );

    step(`topic page /t/${topicA}`);
    await page.goto(`${base}/t/${topicA}`);
    await waitLive();
    await entry(articleA2).waitFor();
    check((await entry(articleA1).count()) === 1, `the topic feed shows ${articleA1.id} and ${articleA2.id}`);

    step('a gateway with --auth-secret: the token of the link is kept for the session');
    const authPort = await freePort();
    const authBase = `http://127.0.0.1:${authPort}`;
    processes.push(
      start(
        'agentic-gateway --auth-secret',
        paths.gateway,
        ['--valkey', valkeyUrl, '--listen', `127.0.0.1:${authPort}`, '--ui-dir', paths.dist, '--auth-secret', AUTH_SECRET],
        path.join(tmp, 'gateway-auth.log'),
      ),
    );
    await waitFor('the auth gateway /healthz to answer 200', async () => (await fetch(`${authBase}/healthz`)).ok, 15_000, 200);
    const { stdout } = await promisify(execFile)(paths.gateway, ['token', '--secret', AUTH_SECRET, '--user', USER]);
    const token = stdout.trim();
    const authContext = await browser.newContext();
    const authPage = await authContext.newPage();
    authPage.on('pageerror', (error) => pageErrors.push(error.message));
    await authPage.goto(`${authBase}/u/${USER}?token=${encodeURIComponent(token)}`);
    await authPage.locator('[data-testid="connection-status"][data-state="live"]').waitFor({ timeout: 10_000 });
    await authPage.locator(`[data-testid="feed-entry"][data-doc="${docKey(articleB1)}"]`).waitFor();
    check(true, 'with ?token= the feed opens and shows its entries');
    check(!authPage.url().includes('token='), 'the token is taken out of the address bar', authPage.url());
    await authPage.getByTestId(`interest-${topicB}`).waitFor();
    check(await authPage.getByTestId(`interest-${topicB}`).isChecked(), 'interests load with the Bearer token');
    await authPage.goto(`${authBase}/u/${USER}`);
    await authPage.locator(`[data-testid="feed-entry"][data-doc="${docKey(articleB1)}"]`).waitFor();
    check(true, 'the next page load in the session still sends it');
    await authContext.close();
    const anonymous = await browser.newPage();
    await anonymous.goto(`${authBase}/u/${USER}`);
    await anonymous.getByTestId('interests-error').waitFor();
    check(true, `without a token the page says why: ${await anonymous.getByTestId('interests-error').textContent()}`);
    await anonymous.close();

    step('operations page, while synthetic articles flow and a feed page is open');
    const generator = start(
      'agentic-fetcher generate',
      paths.fetcher,
      ['generate', '--valkey', valkeyUrl, '--rate', '20', '--count', '200', '--seed', '7', '--metrics-addr', ''],
      path.join(tmp, 'generate.log'),
    );
    processes.push(generator);
    const reader = await browser.newPage();
    reader.on('pageerror', (error) => pageErrors.push(error.message));
    await reader.goto(`${base}/u/${USER}`);
    await page.goto(`${base}/ops`);
    const points = (id) => page.getByTestId(id).getAttribute('data-points').then(Number);
    await waitFor(
      'the charts to have 10 s of points',
      async () => (await points('chart-throughput')) >= 40 && (await points('chart-memory')) >= 10,
      30_000,
      250,
    );
    for (const id of ['chart-throughput', 'chart-latency', 'chart-backlog', 'chart-memory']) {
      check((await points(id)) > 0, `${id} has ${await points(id)} points`);
    }
    const classifiedPath = await page.getByTestId('chart-throughput').locator('path').first().getAttribute('d');
    check(/L/.test(classifiedPath), 'the throughput chart draws a line', classifiedPath);
    const sidecars = await page.getByTestId('chart-sidecars').textContent();
    check(sidecars.includes("no sidecars: classification runs on the module's CPU pool"), 'the sidecar panel says there are none');
    const current = await page.getByTestId('ops-current').textContent();
    check(current.includes('ready') && current.includes('tract-onnx-cpu'), 'the current values show the model status and backend', current);
    await page.screenshot({ path: path.join(paths.screenshots, 'ops.png'), fullPage: true });
    console.log(`     screenshot ${path.join(paths.screenshots, 'ops.png')}`);
    await stop(generator);

    check(pageErrors.length === 0, 'no uncaught errors in the pages', pageErrors.join('; '));
  } catch (error) {
    if (!error.message.startsWith('check failed')) {
      failures++;
      console.log(`FAIL ${error.message}`);
    }
    for (const proc of processes) console.log(`\n-- last lines of ${proc.name} (${proc.logFile}):\n${logTail(proc)}`);
  } finally {
    valkey?.close();
    await browser?.close().catch(() => {});
    for (const proc of processes.reverse()) await stop(proc);
    if (failures === 0) await rm(tmp, { recursive: true, force: true });
  }
  console.log(failures === 0 ? '\nend-to-end: all checks passed' : `\nend-to-end: FAILED (logs kept in ${tmp})`);
  process.exitCode = failures === 0 ? 0 : 1;
}

await main();
