// Type errors fail `npm test`, visibly: vitest strips types without checking them, so the type tests
// in client-types.test.ts (and every other file) would pass whatever the types said. This runs the
// TypeScript compiler over the project, and proves on a deliberate mistake that it would notice.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('..', import.meta.url).pathname;
const tsc = (...args: string[]) =>
  spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), ...args], {
    cwd: root,
    encoding: 'utf8',
  });

describe('types', () => {
  it('the whole project type-checks (tsc -p .)', () => {
    const r = tsc('-p', '.');
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 60_000);

  it('a wrong payload for the typed client is a compile error', () => {
    const dir = mkdtempSync(join(root, 'tests', '.typecheck-'));
    try {
      writeFileSync(
        join(dir, 'wrong.ts'),
        `import type { ApiClient } from '../../shared/client.ts';
declare const client: ApiClient;
export const wrong = () => client.leads.list({ limit: '25' });
`,
      );
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({ extends: '../../tsconfig.json', include: ['wrong.ts'], exclude: [] }),
      );
      const r = tsc('-p', join(dir, 'tsconfig.json'));
      expect(r.status).not.toBe(0);
      expect(r.stdout).toMatch(/wrong\.ts\(3,\d+\): error TS2322/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
