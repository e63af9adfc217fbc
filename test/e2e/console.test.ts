import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import pino from 'pino';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { consoleDir } from '../../src/bin/package-root';
import { startService } from '../../src/bin/service';
import type { RunningService } from '../../src/cli/serve';
import type { RunDocument } from '../../src/domain/run-record';
import { callApi, docker, freePort, leftovers, REGISTRY, requireServices } from '../integration/helpers';
import { localRedisOptions, localRedisUrl } from '../helpers/redis';

/**
 * The web console end to end: `kiln serve` as src/bin/service.ts assembles it (API, worker and the
 * built console from dist/web), the real Redis (database 11, flushed before and after), Docker
 * Engine and registry, driven in headless Chromium (Debian's, through playwright-core). What a
 * person does: signs in with a token, sees a run submitted elsewhere appear, opens it with the
 * keyboard, watches its log and graph, cancels and re-runs; disables, enables and runs a task;
 * reads the triggers' decision log; on a phone-sized screen too. Every page: each control has an
 * accessible name and Tab reaches the main ones. Screenshots go to test/artifacts/.
 */

const REDIS_DB = 11;
const ADMIN = `admin-token-${process.pid}-console-0123456789`;
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(__dirname, '..', 'artifacts');
const logger = pino({ level: process.env.KILN_TEST_LOG ?? 'silent' }, pino.destination(2));

/** a; b and c after a; d after b and c. `a` prints a line, sleeps, prints another: the log is watched live. */
const DIAMOND = `version: v1.1.0
steps:
  - id: a
    cmd: busybox sh -c "echo first line from a; sleep 4; echo second line from a"
  - id: b
    cmd: busybox echo from b
    when: [a]
  - id: c
    cmd: busybox echo from c
    when: [a]
  - id: d
    cmd: busybox echo from d
    when: [b, c]
`;
const LONG = `version: v1.1.0
steps:
  - id: wait
    cmd: busybox sleep 60
`;
/** More lines than the page keeps, then more after a pause. */
const CHATTY = `version: v1.1.0
steps:
  - id: burst
    cmd: busybox seq 1 5200
  - id: more
    cmd: busybox sh -c "sleep 3; seq 5201 5400"
`;
const GREETING = `version: v1.1.0
steps:
  - id: greet
    cmd: busybox echo greeting={{.Values.greeting}}
`;

let service: RunningService;
let api: string;
let dataDir: string;
let redis: Redis;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const runIds: string[] = [];
/** Requests the page made to anywhere but the API's origin. */
const foreign: string[] = [];

const request = <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => callApi<T>(api, ADMIN, method, path, body);

async function submit(task: string): Promise<string> {
  const { status, body } = await request<{ runId: string }>('POST', '/v1/runs', { task });
  expect(status).toBe(202);
  runIds.push(body.runId);
  return body.runId;
}

async function waitFinal(runId: string, ms = 30_000): Promise<RunDocument> {
  const until = Date.now() + ms;
  for (;;) {
    const { body } = await request<RunDocument>('GET', `/v1/runs/${runId}`);
    if (['Succeeded', 'Failed', 'Canceled', 'Error', 'Timeout', 'Expired'].includes(body.status)) return body;
    if (Date.now() > until) throw new Error(`run ${runId} still ${body.status} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function screenshot(p: Page, name: string): Promise<void> {
  await p.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/**
 * Every visible input, select, textarea and button has an accessible name, as the browser's
 * accessibility tree gives it (Playwright's aria snapshot: `- role "name"`).
 */
async function expectLabelledControls(p: Page): Promise<void> {
  const controls = p.locator('input, select, textarea, button');
  const nameless: string[] = [];
  for (let i = 0; i < (await controls.count()); i++) {
    const control = controls.nth(i);
    if (!(await control.isVisible())) continue;
    const first = (await control.ariaSnapshot()).split('\n')[0] ?? '';
    if (!/^- \w+ "[^"]+"/.test(first)) nameless.push(`${await control.evaluate((el) => el.outerHTML.slice(0, 120))} -> ${first}`);
  }
  expect(nameless).toEqual([]);
}

/*
 * Code run in the page, as text: the tests' tsconfig has Node's types, not the DOM's.
 */
/** The focused element: `#id`, or `tag:text` for links and buttons without an id; '' for none. */
const FOCUSED = `(() => {
  const el = document.activeElement;
  if (!el || el === document.body) return '';
  return el.id ? '#' + el.id : el.tagName.toLowerCase() + ':' + (el.getAttribute('aria-label') ?? el.textContent ?? '').trim().slice(0, 40);
})()`;
/** The focused element's outline style: 'none' where the focus would not be seen. */
const FOCUS_OUTLINE = `document.activeElement ? getComputedStyle(document.activeElement).outlineStyle : 'none'`;
/** How far the log is scrolled from its top and from its bottom, in pixels. */
const LOG_SCROLL = `(() => {
  const log = document.querySelector('[role=log]');
  return { top: log.scrollTop, fromBottom: log.scrollHeight - log.scrollTop - log.clientHeight };
})()`;
/** Where the page is wider than the window, it scrolls sideways. */
const WIDTHS = `({ scroll: document.documentElement.scrollWidth, body: document.body.scrollWidth, view: window.innerWidth })`;
const keepToken = (token: string): { content: string } => ({ content: `sessionStorage.setItem('kiln.token', ${JSON.stringify(token)});` });

/**
 * What Tab reaches from the top of the page, in order (FOCUSED of each stop); each stop must show
 * that it has the focus (an outline).
 */
async function tabStops(p: Page, max: number): Promise<string[]> {
  // Tab from the document's start (the body, focused for a moment): the skip link comes first.
  await p.evaluate(`document.body.tabIndex = -1; document.body.focus(); document.body.removeAttribute('tabindex'); window.scrollTo(0, 0)`);
  const stops: string[] = [];
  for (let i = 0; i < max; i++) {
    await p.keyboard.press('Tab');
    const stop = await p.evaluate<string>(FOCUSED);
    if (stop === '') break;
    stops.push(stop);
    expect([stop, await p.evaluate<string>(FOCUS_OUTLINE)]).not.toEqual([stop, 'none']);
  }
  return stops;
}

beforeAll(async () => {
  if (!existsSync(join(consoleDir(), 'index.html'))) {
    throw new Error(`the web console is not built (${consoleDir()}/index.html is missing): run \`npm run build:web\` (npm test builds it first)`);
  }
  if (!existsSync(CHROMIUM)) throw new Error(`no ${CHROMIUM}: run \`bash scripts/services.sh\` (as root), which installs Debian's chromium`);
  await requireServices();
  mkdirSync(ARTIFACTS, { recursive: true });
  redis = new Redis(localRedisOptions(REDIS_DB));
  await redis.flushdb();
  dataDir = mkdtempSync(join(tmpdir(), 'kiln-console-'));
  service = await startService(
    {
      api: true,
      worker: true,
      host: '127.0.0.1',
      port: await freePort(),
      redisUrl: localRedisUrl(REDIS_DB),
      dataDir,
      concurrency: 3,
      warmSandboxes: 2,
      platform: 'linux/amd64',
      pool: 'default',
      registry: REGISTRY,
      adminToken: ADMIN,
      dockerSocket: false,
      allowPrivateSources: true,
      pollTick: 5,
      policy: 'restricted',
      limits: { memoryBytes: 512 * 1024 ** 2, pids: 256 },
    },
    { KILN_SECRET_KEY: 'ef'.repeat(32) },
    logger,
  );
  api = service.url as string;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  // The page loads nothing but what its own origin serves.
  page.on('request', (req) => {
    if (!req.url().startsWith(`${api}/`) && !req.url().startsWith('data:')) foreign.push(req.url());
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await service?.stop(0);
  for (const runId of runIds) {
    const containers = await docker.listContainers({ all: true, filters: { label: [`kiln.run=${runId}`] } }).catch(() => []);
    for (const c of containers) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  }
  await redis?.flushdb();
  await redis?.quit();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

describe('the web console', () => {
  const consoleErrors: string[] = [];
  let diamond: string;

  it('asks for the token, then shows a run submitted through the API without a reload', async () => {
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    await page.goto(`${api}/`);
    await page.getByLabel('API token').waitFor();
    await expectLabelledControls(page);
    expect(await tabStops(page, 2)).toEqual(['#token', 'button:Sign in']);
    await screenshot(page, '01-token');
    await page.getByLabel('API token').fill('not-a-token-of-this-server');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('The API refused this token.').waitFor();
    await page.getByLabel('API token').fill(ADMIN);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Runs' }).waitFor();
    expect(await page.evaluate(`sessionStorage.getItem('kiln.token')`)).toBe(ADMIN);

    // A mark on the window: it survives only if the page is not reloaded.
    await page.evaluate('window.kilnMark = 1');
    diamond = await submit(DIAMOND);
    const row = page.locator(`tr[data-run="${diamond}"]`);
    await row.waitFor({ timeout: 10_000 });
    expect(await page.evaluate('window.kilnMark')).toBe(1);
    await expect(row.locator('.badge').textContent()).resolves.toMatch(/Queued|Started|Running/);

    await expectLabelledControls(page);
    const stops = await tabStops(page, 12);
    expect(stops[0]).toBe('a:Skip to content');
    expect(stops).toEqual(expect.arrayContaining(['a:Runs', 'a:Tasks', 'a:Triggers', '#filter-status', '#filter-task', '#filter-trigger', `a:${diamond}`]));
    await screenshot(page, '02-runs');
  }, 30_000);

  it('opens the run with the keyboard, streams its log live and draws its graph with the right edges', async () => {
    const link = page.locator(`tr[data-run="${diamond}"] th a`);
    await link.focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(`${api}/runs/${diamond}`);
    await page.getByRole('heading', { name: `Run ${diamond}` }).waitFor();
    // Focus moved to the new page's content, as a page load would.
    expect(await page.evaluate(FOCUSED)).toBe('#main');

    const log = page.getByRole('log');
    expect(await log.getAttribute('aria-live')).toBe('polite');
    await log.getByText('first line from a').waitFor({ timeout: 15_000 });
    // The second line was not there when the page had the first: it arrives over the stream.
    expect(await log.getByText('second line from a').count()).toBe(0);
    await log.getByText('second line from a').waitFor({ timeout: 15_000 });
    await expect(log.locator('.log-line', { hasText: 'second line from a' }).locator('.log-prefix').textContent()).resolves.toBe('a');

    const graph = page.getByTestId('step-graph');
    await graph.locator('[data-step="d"]').waitFor();
    const edges = await graph.locator('[data-edge]').evaluateAll((els) => els.map((e) => e.getAttribute('data-edge')).sort());
    expect(edges).toEqual(['a->b', 'a->c', 'b->d', 'c->d']);

    await page.locator('.title-row .badge', { hasText: 'Succeeded' }).waitFor({ timeout: 20_000 });
    await graph.locator('[data-status="Succeeded"]').nth(3).waitFor();
    expect(await graph.locator('[data-step]').evaluateAll((els) => els.map((e) => e.textContent))).toEqual(
      expect.arrayContaining([expect.stringContaining('Succeeded')]),
    );
    await log.getByText('from d').waitFor();
    await page.getByText('The log has ended (Succeeded).').waitFor();

    // The step filter and the search narrow the log.
    await page.getByLabel('Step', { exact: true }).selectOption('b');
    await expect(log.locator('.log-line').evaluateAll((els) => els.map((e) => e.getAttribute('data-step')))).resolves.toEqual(['b']);
    await page.getByLabel('Step', { exact: true }).selectOption('');
    await page.getByLabel('Search').fill('SECOND');
    await expect(log.locator('.log-line').count()).resolves.toBe(1);
    await expect(log.locator('mark').textContent()).resolves.toBe('second');
    await page.getByLabel('Search').fill('');

    await expectLabelledControls(page);
    const stops = await tabStops(page, 30);
    expect(stops).toEqual(expect.arrayContaining(['button:Re-run', '#log-step', '#log-search', 'button:Auto-scroll']));
    await screenshot(page, '03-run');
  }, 45_000);

  it("follows the log's end until the reader scrolls up, again once they are back, and keeps the last 5,000 lines", async () => {
    const chatty = await submit(CHATTY);
    await page.goto(`${api}/runs/${chatty}`);
    const log = page.getByRole('log');
    const line = (text: string) => log.locator('.log-text', { hasText: new RegExp(`^${text}$`) });
    await line('5200').waitFor({ timeout: 15_000 });
    await page.getByText(/Only the last 5,000 lines are kept here; \d[\d,]* earlier lines are not shown/).waitFor();
    expect(await log.locator('.log-line').count()).toBeLessThanOrEqual(5000);
    expect((await page.evaluate<{ fromBottom: number }>(LOG_SCROLL)).fromBottom).toBeLessThan(20);

    // The reader scrolls up: new lines no longer move the log.
    await log.evaluate((el) => el.scrollTo({ top: 0 }));
    const autoScroll = (pressed: boolean) => page.locator(`button[aria-pressed="${pressed}"]`, { hasText: 'Auto-scroll' });
    await autoScroll(false).waitFor();
    await page.getByText('Auto-scroll is paused').waitFor();
    await line('5400').waitFor({ timeout: 15_000 });
    expect((await page.evaluate<{ top: number }>(LOG_SCROLL)).top).toBe(0);

    // Back at the bottom, it follows again.
    await log.evaluate((el) => el.scrollTo({ top: el.scrollHeight }));
    await autoScroll(true).waitFor();
    await page.getByText('The log has ended (Succeeded).').waitFor({ timeout: 15_000 });
  }, 45_000);

  it('cancels a long run from its page', async () => {
    const long = await submit(LONG);
    await page.goto(`${api}/runs/${long}`);
    await page.getByTestId('step-graph').locator('[data-step="wait"][data-status="Running"]').waitFor({ timeout: 15_000 });
    await expectLabelledControls(page);
    expect(await tabStops(page, 10)).toEqual(expect.arrayContaining(['button:Cancel run', 'button:Re-run']));
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await page.locator('.title-row .badge', { hasText: 'Canceled' }).waitFor({ timeout: 20_000 });
    await expect(page.getByRole('button', { name: 'Cancel run' }).count()).resolves.toBe(0);
    expect((await waitFinal(long)).status).toBe('Canceled');
    await screenshot(page, '04-canceled');
  }, 45_000);

  it('re-runs a run from its page', async () => {
    await page.goto(`${api}/runs/${diamond}`);
    await page.getByRole('button', { name: 'Re-run' }).click();
    await page.waitForURL((url) => url.pathname.startsWith('/runs/') && url.pathname !== `/runs/${diamond}`);
    const rerun = decodeURIComponent(new URL(page.url()).pathname.slice('/runs/'.length));
    runIds.push(rerun);
    await page.getByRole('link', { name: `Re-run of ${diamond}` }).waitFor();
    const { body } = await request<RunDocument>('GET', `/v1/runs/${rerun}`);
    expect(body.trigger).toEqual(expect.objectContaining({ type: 'Manual', rerunOf: diamond }));
  }, 20_000);

  it('lists a task, shows its detail, disables and enables it, and runs it now with overrides', async () => {
    const created = await request('POST', '/v1/tasks', { name: 'console-greet', task: GREETING, values: { greeting: 'hello' } });
    expect(created.status).toBe(201);
    await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Tasks' }).click();
    await page.getByRole('heading', { name: 'Tasks' }).waitFor();
    const row = page.locator('tr[data-task="console-greet"]');
    await row.waitFor();
    await expectLabelledControls(page);
    expect(await tabStops(page, 10)).toEqual(expect.arrayContaining(['#task-filter', 'button:Refresh', 'a:console-greet']));
    await screenshot(page, '05-tasks');

    await row.getByRole('link', { name: 'console-greet' }).click();
    await page.getByRole('heading', { name: 'Task console-greet' }).waitFor();
    await page.getByRole('button', { name: 'Disable task' }).click();
    await page.locator('.title-row .badge', { hasText: 'Disabled' }).waitFor();
    expect((await request<{ status: string }>('GET', '/v1/tasks/console-greet')).body.status).toBe('Disabled');
    await expect(page.getByRole('button', { name: 'Run now' }).isDisabled()).resolves.toBe(true);
    await page.getByRole('button', { name: 'Enable task' }).click();
    await page.locator('.title-row .badge', { hasText: 'Enabled' }).waitFor();
    const saved = (await request<{ status: string; values: unknown; task: string }>('GET', '/v1/tasks/console-greet')).body;
    expect(saved).toEqual(expect.objectContaining({ status: 'Enabled', values: { greeting: 'hello' }, task: GREETING }));

    await expectLabelledControls(page);
    expect(await tabStops(page, 14)).toEqual(expect.arrayContaining(['button:Disable task', '#run-values', '#run-set', 'button:Run now']));
    await screenshot(page, '06-task');

    await page.getByLabel('Overrides (one KEY=VALUE a line, optional)').fill('greeting=from-the-console');
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.waitForURL((url) => url.pathname.startsWith('/runs/'));
    runIds.push(decodeURIComponent(new URL(page.url()).pathname.slice('/runs/'.length)));
    await page.getByRole('log').getByText('greeting=from-the-console').waitFor({ timeout: 20_000 });
    await page.getByRole('link', { name: 'console-greet' }).first().waitFor();
  }, 45_000);

  it("shows the triggers' decision log", async () => {
    // A webhook for a task that has no webhook secret: refused, and the log says why.
    const hook = await fetch(`${api}/v1/tasks/console-greet/hooks/github`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-github-event': 'push' }, body: '{}' });
    expect(hook.status).toBe(401);
    await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Triggers' }).click();
    await page.getByRole('heading', { name: 'Triggers' }).waitFor();
    const row = page.locator('table.trigger-events tbody tr').first();
    await row.waitFor();
    await expect(row.textContent()).resolves.toMatch(/webhook.*console-greet.*rejected.*the task has no webhook secret/);

    await page.getByLabel('Action').selectOption('started');
    await page.getByText('Nothing recorded that matches these filters.').waitFor();
    expect(new URL(page.url()).search).toBe('?action=started');
    await page.getByLabel('Action').selectOption('');

    await expectLabelledControls(page);
    expect(await tabStops(page, 10)).toEqual(expect.arrayContaining(['#trig-task', '#trig-source', '#trig-action', 'button:Refresh']));
    await screenshot(page, '07-triggers');
  }, 20_000);

  it('reflows on a 375 px wide screen without the page scrolling sideways', async () => {
    const narrow = await browser.newContext({ viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    try {
      await narrow.addInitScript(keepToken(ADMIN));
      const phone = await narrow.newPage();
      for (const [path, name] of [
        [`/runs/${diamond}`, '08-run-narrow'],
        ['/runs', '09-runs-narrow'],
        ['/tasks/console-greet', '10-task-narrow'],
      ] as const) {
        await phone.goto(`${api}${path}`);
        await phone.locator('main h1').waitFor();
        if (path.startsWith('/runs/')) await phone.getByTestId('step-graph').locator('[data-edge]').nth(3).waitFor();
        const width = await phone.evaluate<{ scroll: number; body: number; view: number }>(WIDTHS);
        expect(width.scroll).toBeLessThanOrEqual(width.view);
        expect(width.body).toBeLessThanOrEqual(width.view);
        await screenshot(phone, name);
      }
    } finally {
      await narrow.close();
    }
  }, 30_000);

  it('offers a reader no control it may not use', async () => {
    const created = await request<{ token: string }>('POST', '/v1/tokens', { name: 'console-reader', role: 'reader' });
    expect(created.status).toBe(201);
    const reader = await browser.newContext();
    try {
      await reader.addInitScript(keepToken(created.body.token));
      const p = await reader.newPage();
      await p.goto(`${api}/runs/${diamond}`);
      await p.getByRole('heading', { name: `Run ${diamond}` }).waitFor();
      await p.getByText('console-reader · reader').waitFor();
      await expect(p.getByRole('button', { name: /Cancel run|Re-run/ }).count()).resolves.toBe(0);
      await p.goto(`${api}/tasks/console-greet`);
      await p.getByRole('heading', { name: 'Task console-greet' }).waitFor();
      await expect(p.getByRole('button', { name: /Run now|Disable task|Enable task/ }).count()).resolves.toBe(0);
    } finally {
      await reader.close();
    }
  }, 20_000);

  it('asked for nothing elsewhere, left no error in the browser console and no container behind', async () => {
    expect(foreign).toEqual([]);
    // CSP violations are console errors too.
    expect(consoleErrors.filter((e) => !/401 \(Unauthorized\)/.test(e))).toEqual([]);
    for (const runId of runIds) {
      await waitFinal(runId);
      expect(await leftovers(runId)).toEqual([]);
    }
  }, 40_000);
});
