// The web dashboard in a real browser (Debian's chromium driven by playwright-core), served by
// the controller as a real process at /ui, with real agents (the built binary) as devices:
// log in, see the fleet, open the demo device, run a plan and see its diff and its job finish,
// the jobs and audit pages, and the phone-sized layout. Screenshots go to
// test-artifacts/dashboard/; IBEX_UPDATE_DOCS_SCREENSHOTS=1 also refreshes the two in docs/images.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { AgentProcess } from '../e2e/helpers/agent-process.js';
import { ControllerProcess } from '../e2e/helpers/controller-process.js';
import { waitFor } from '../e2e/helpers/exec.js';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import { repo } from '../e2e/helpers/repo.js';

/** The flags this machine's chromium needs: no sandbox as root, and no calls home (the network is closed). */
export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const artifacts = join(repo, 'test-artifacts', 'dashboard');
const MOTD = { files: { entries: [{ path: '/etc/motd', content: 'Managed by Ibex\n', mode: '0644' }] } };

describe('dashboard in chromium against a real controller and agents', () => {
  let db: TestDatabase;
  let ctl: ControllerProcess;
  const agents: Array<{ name: string; agent: AgentProcess; root: string }> = [];
  let browser: BrowserContext;
  let userData: string;
  let page: Page;
  const problems: string[] = [];

  async function addAgent(name: string, labels: Record<string, string>): Promise<{ name: string; agent: AgentProcess; root: string }> {
    const root = await mkdtemp(join(tmpdir(), `ibex-ui-${name}-`));
    const agent = new AgentProcess([], root);
    const tok = await ctl.json('/api/v1/enrollment-tokens', { method: 'POST', json: { description: name, labels } });
    const r = await agent.cli(['enroll', '--controller', `grpc://127.0.0.1:${ctl.grpcPort}`, '--token', tok.token, '--name', name]);
    assert.equal(r.code, 0, r.stderr);
    // Drift is reported within 2 s and left as it is, so the dashboard can show it.
    agent.start({ IBEX_AGENT_DRIFT_CHECK_INTERVAL_SEC: '2', IBEX_AGENT_HEAL_DRIFT: 'false' });
    const entry = { name, agent, root };
    agents.push(entry);
    return entry;
  }
  const device = (name: string) => ctl.json(`/api/v1/devices/${name}`);
  const shot = async (name: string) => {
    const path = join(artifacts, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    return path;
  };

  before(async () => {
    db = await createTestDatabase();
    ctl = new ControllerProcess({ databaseUrl: db.url, env: { IBEX_HEARTBEAT_INTERVAL_MS: '1000', IBEX_PRESENCE_FLUSH_MS: '200', IBEX_LOG_LEVEL: 'warn' } });
    await ctl.start();
    await mkdir(artifacts, { recursive: true });

    // A small fleet: the demo device (it will drift), one in sync, one offline.
    const demo = await addAgent('demo-agent', { demo: 'true', site: 'lab' });
    await addAgent('lab-router-1', { site: 'lab', role: 'router' });
    const gone = await addAgent('branch-gw-7', { site: 'branch', role: 'gateway' });
    for (const a of agents) await waitFor(`${a.name} online`, async () => (await device(a.name)).status === 'online', 30_000);
    for (const name of ['demo-agent', 'lab-router-1']) {
      await ctl.json(`/api/v1/devices/${name}/desired-state`, { method: 'PUT', json: { spec: MOTD, message: 'motd' } });
      await waitFor(`${name} in sync`, async () => (await device(name)).sync === 'in_sync', 30_000);
    }
    await gone.agent.stop();
    await waitFor('branch-gw-7 offline', async () => (await device('branch-gw-7')).status === 'offline', 30_000);
    // Someone edits the managed file on the demo device by hand: it drifts.
    await writeFile(join(demo.root, 'etc/motd'), 'edited by hand\n');
    await waitFor('demo-agent drifted', async () => (await device('demo-agent')).sync === 'drifted', 30_000);

    userData = await mkdtemp(join(tmpdir(), 'ibex-ui-chromium-'));
    browser = await chromium.launchPersistentContext(userData, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1280, height: 900 },
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    // Any script error or CSP violation on a page fails the test at the end.
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    for (const a of agents) await a.agent.stop('SIGKILL').catch(() => {});
    await ctl?.stop('SIGKILL').catch(() => {});
    if (ctl) await deleteRedisPrefix(testRedisUrl, ctl.redisPrefix);
    await db?.drop();
    for (const d of [userData, ...agents.map((a) => a.root)]) if (d) await rm(d, { recursive: true, force: true });
  });

  it('/ redirects to the dashboard, which asks for a token and refuses a wrong one', async () => {
    await page.goto(`${ctl.baseUrl}/`);
    assert.equal(new URL(page.url()).pathname, '/ui/');
    await page.getByLabel('API token').waitFor();
    await shot('01-login');
    await page.getByLabel('API token').fill(`ibx_${'z'.repeat(40)}`);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('does not accept this token').waitFor();
    await page.getByLabel('API token').fill('hello');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('starts with ibx_').waitFor();
  });

  it('logs in and shows the fleet: counts, and the demo device online in the table', async () => {
    await page.getByLabel('API token').fill(ctl.adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const table = page.getByTestId('device-table');
    const demoRow = table.locator('tr', { hasText: 'demo-agent' });
    await demoRow.getByText('online').waitFor();
    await demoRow.getByText('drifted').waitFor();
    await table.locator('tr', { hasText: 'branch-gw-7' }).getByText('offline').waitFor();
    await table.locator('tr', { hasText: 'lab-router-1' }).getByText('in sync').waitFor();
    assert.equal(await page.getByTestId('tile-online').locator('.tile-count').textContent(), '2');
    assert.equal(await page.getByTestId('tile-offline').locator('.tile-count').textContent(), '1');
    assert.equal(await page.getByTestId('tile-drifted').locator('.tile-count').textContent(), '1');
    assert.equal(await page.getByTestId('tile-failed').locator('.tile-count').textContent(), '0');
    await shot('02-fleet');

    // Filters: the Drifting tile lists only the drifting device; the label selector filters on the controller.
    await page.getByTestId('tile-drifted').click();
    await waitFor('only demo-agent listed', async () => (await table.locator('tbody tr').count()) === 1 && (await table.textContent())?.includes('demo-agent'));
    await page.getByTestId('tile-drifted').click();
    await page.getByLabel('Label selector').fill('role=gateway');
    await waitFor('only branch-gw-7 listed', async () => (await table.locator('tbody tr').count()) === 1 && (await table.textContent())?.includes('branch-gw-7'));
    await page.getByLabel('Label selector').fill('');
  });

  it('updates live: a device that goes offline turns offline without a reload', async () => {
    const router = agents.find((a) => a.name === 'lab-router-1')!;
    await router.agent.stop();
    const row = page.getByTestId('device-table').locator('tr', { hasText: 'lab-router-1' });
    await row.getByText('offline').waitFor({ timeout: 20_000 });
    router.agent.start({ IBEX_AGENT_DRIFT_CHECK_INTERVAL_SEC: '2', IBEX_AGENT_HEAL_DRIFT: 'false' });
    await row.getByText('online').waitFor({ timeout: 30_000 });
  });

  it('opens the demo device: revisions, sections with the drift, facts; Plan shows the diff and its job finishes', async () => {
    await page.getByTestId('device-table').getByRole('link', { name: 'demo-agent' }).click();
    await page.getByRole('heading', { name: 'demo-agent', level: 1 }).waitFor();
    const sections = page.getByTestId('section-table');
    await sections.locator('tr', { hasText: 'files' }).getByText('drifted').waitFor();
    await page.getByText('Interfaces').waitFor();
    await page.getByTestId('plan-button').click();
    const panel = page.getByTestId('plan-panel');
    await panel.getByText('1 step would run').waitFor({ timeout: 60_000 });
    await page.locator('.plan').getByText('succeeded').waitFor();
    const diff = await panel.locator('pre.diff').textContent();
    assert.match(diff ?? '', /-edited by hand/);
    assert.match(diff ?? '', /\+Managed by Ibex/);
    // The plan job is in the recent jobs, finished; its log opens in place.
    const jobRow = page.locator('.joblist li', { hasText: 'state.plan' }).first();
    await jobRow.getByText('succeeded').waitFor();
    await shot('03-device-plan');
    await jobRow.locator('button').click();
    await jobRow.locator('.joblog').waitFor();
  });

  it('the jobs page lists the finished plan job; its page shows progress, log and result', async () => {
    await page.getByRole('link', { name: 'Jobs', exact: true }).click();
    const row = page.getByTestId('jobs-table').locator('tr', { hasText: 'state.plan' }).first();
    await row.getByText('succeeded').waitFor();
    await row.getByText('demo-agent').waitFor();
    await shot('04-jobs');
    await row.getByRole('link', { name: 'state.plan' }).click();
    await page.getByRole('heading', { name: 'state.plan' }).waitFor();
    await page.getByText('Result').waitFor();
    await shot('05-job');
  });

  it('the audit log shows who changed what', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    const table = page.getByTestId('audit-table');
    await table.getByText('job.create').first().waitFor();
    await table.getByText('device.desired_state.set').first().waitFor();
    await page.getByLabel('Action').fill('device.*');
    await waitFor('only device events', async () => {
      const actions = await table.locator('tbody tr td:nth-child(2)').allTextContents();
      return actions.length > 0 && actions.every((a) => a.startsWith('device.'));
    });
    await shot('06-audit');
  });

  it('the rollouts page lists a rollout; its page shows a bar per wave, asks for approval and finishes after Approve', async () => {
    const spec = { files: { entries: [{ path: '/etc/motd', content: 'Rolled out\n', mode: '0644' }] } };
    const r = await ctl.json('/api/v1/rollouts', {
      method: 'POST',
      json: { name: 'lab motd', target: { kind: 'selector', selector: 'site=lab' }, payload: { kind: 'desired_state', spec }, strategy: { canary: { count: 1 }, approval: 'after_canary' } },
    });
    await waitFor('the canary done, approval asked', async () => (await ctl.json(`/api/v1/rollouts/${r.id}`)).status === 'waiting_approval', 60_000);
    await page.getByRole('link', { name: 'Rollouts' }).click();
    const row = page.getByTestId('rollouts-table').locator('tr', { hasText: 'lab motd' });
    await row.getByText('waiting approval').waitFor();
    await shot('06a-rollouts');
    await row.getByRole('link', { name: 'lab motd' }).click();
    await page.getByRole('heading', { name: 'lab motd' }).waitFor();
    await page.getByTestId('waves').getByText('needs approval').waitFor();
    await page.getByTestId('rollout-reason').getByText(/waits for approval/).waitFor();
    await shot('06b-rollout-waiting');
    await page.getByRole('button', { name: 'Approve next wave' }).click();
    await page.locator('.page-head .badge', { hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
    // The devices table refreshes on its own poll, a moment after the status.
    await waitFor('both devices shown succeeded', async () => (await page.getByTestId('rollout-devices').locator('tbody tr', { hasText: 'succeeded' }).count()) === 2, 10_000);
    await shot('06c-rollout-done');
    const actions = (await ctl.json('/api/v1/audit?targetType=rollout')).items.map((e: { action: string }) => e.action);
    assert.ok(actions.includes('rollout.approve'), actions.join(', '));
  });

  it('fits a phone-sized screen: no sideways scrolling on the fleet and device pages', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [path, name, ready] of [
      ['#/', '07-phone-fleet', 'demo-agent'],
      ['#/devices/demo-agent', '08-phone-device', 'Sections'],
    ] as const) {
      await page.goto(`${ctl.baseUrl}/ui/${path}`);
      await page.getByText(ready).first().waitFor();
      const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
      assert.ok(overflow <= 0, `${path} is ${overflow}px wider than the screen`);
      await shot(name);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('signs out, and no page logged a script error or a blocked resource', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').waitFor();
    assert.deepEqual(problems, []);
    if (process.env['IBEX_UPDATE_DOCS_SCREENSHOTS'] === '1') {
      await mkdir(join(repo, 'docs', 'images'), { recursive: true });
      await copyFile(join(artifacts, '02-fleet.png'), join(repo, 'docs', 'images', 'dashboard-fleet.png'));
      await copyFile(join(artifacts, '03-device-plan.png'), join(repo, 'docs', 'images', 'dashboard-device-plan.png'));
    }
  });
});
