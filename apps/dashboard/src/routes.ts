import type { ComponentType } from 'react';
import { AuditPage } from './pages/AuditPage';
import { DevicePage } from './pages/DevicePage';
import { FleetPage } from './pages/FleetPage';
import { JobPage } from './pages/JobPage';
import { JobsPage } from './pages/JobsPage';
import { RolloutPage } from './pages/RolloutPage';
import { RolloutsPage } from './pages/RolloutsPage';

export interface Route {
  /** `/devices/:name`; params are passed to the page as props. */
  path: string;
  page: ComponentType<{ params: Record<string, string> }>;
  /** In the navigation bar when set (pages reached from others have none). */
  nav?: string;
}

/** Every page of the dashboard. A new page is one file in pages/ and one line here (apps/cli/README.md). */
export const routes: Route[] = [
  { path: '/', page: FleetPage, nav: 'Fleet' },
  { path: '/devices/:name', page: DevicePage },
  { path: '/jobs', page: JobsPage, nav: 'Jobs' },
  { path: '/jobs/:id', page: JobPage },
  { path: '/rollouts', page: RolloutsPage, nav: 'Rollouts' },
  { path: '/rollouts/:id', page: RolloutPage },
  { path: '/audit', page: AuditPage, nav: 'Audit log' },
];
