// The docs stand alone: docs/api.md documents every action of ACTIONS (generated blocks up to date,
// and a hand-written row per action), every relative link in the Markdown resolves inside the
// repository, and nothing refers to a path outside it.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderApiDoc } from '../scripts/api-reference.ts';
import { ERROR_STATUS } from '../shared/errors.ts';
import { ACTIONS } from '../shared/schemas.ts';

const root = new URL('..', import.meta.url).pathname;
const read = (p: string) => readFileSync(join(root, p), 'utf8');
const page = read('docs/api.md');
const handWritten = page.replace(/<!-- generated:([\w-]+) -->[\s\S]*?<!-- \/generated:\1 -->/g, '');
const actions = Object.entries(ACTIONS).flatMap(([r, as]) => Object.keys(as).map((a) => [r, a] as const));

/** GitHub's anchor of a heading. */
const slug = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\- ]/gu, '').replace(/ /g, '-');

/** Every file of the repository, without dependencies, build output and local data. */
function files(dir = root): string[] {
  return readdirSync(dir).flatMap((f) => {
    // What .gitignore keeps out, including build and typecheck folders other tests create and
    // delete while this walk runs.
    if (['node_modules', '.git', '.data', 'dist', '.temp'].includes(f) || /^\.(build|typecheck)-/.test(f)) return [];
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [relative(root, p)];
  });
}

describe('docs/api.md', () => {
  it('its generated blocks are what `npm run docs` writes from the current code', () => {
    expect(renderApiDoc(page) === page, 'docs/api.md is stale: run npm run docs').toBe(true);
  });

  it.each(actions)('documents %s / %s in the action reference and by hand', (resource, action) => {
    expect(page).toContain(`### \`${resource}\` / \`${action}\``);
    const section = handWritten.split(/\n(?=##+ )/).find((s) => s.startsWith(`### \`${resource}\`\n`));
    expect(section, `no hand-written section "### \`${resource}\`"`).toBeDefined();
    expect(section, `no row for ${action} in the ${resource} table`).toContain(`| \`${action}\` |`);
  });

  it('explains every error code by hand', () => {
    for (const code of Object.keys(ERROR_STATUS)) expect(handWritten, code).toContain(`| \`${code}\` | `);
  });

  it('every in-page link names a heading of the page', () => {
    const anchors = new Set([...page.matchAll(/^#+ (.+)$/gm)].map((m) => slug(m[1])));
    const links = [...handWritten.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]);
    expect(links.length).toBeGreaterThan(10);
    expect(links.filter((l) => !anchors.has(l))).toEqual([]);
  });
});

describe('the repository stands alone', () => {
  const markdown = files().filter((f) => f.endsWith('.md'));

  it('every relative link in the Markdown files resolves to a file in the repository', () => {
    const broken = markdown.flatMap((f) =>
      [...read(f).matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1])
        .filter((l) => !/^(https?:|mailto:|#)/.test(l))
        .filter((l) => {
          const target = join(root, dirname(f), l.split('#')[0]);
          return !target.startsWith(root) || !existsSync(target);
        })
        .map((l) => `${f}: ${l}`)
    );
    expect(broken).toEqual([]);
  });

  // The team's spec beside the checkout, and this machine's work directories.
  const OUTSIDE = new RegExp(['\\.\\./shared/CONTRACT', 'CONTRACT\\.md', '/work/(shared|brief|wt|main)/'].join('|'));

  it('no file refers to a path outside the repository', () => {
    const outside = files()
      .filter((f) => !/\.(png|jpg|ico|woff2?)$/.test(f))
      .filter((f) => OUTSIDE.test(read(f)))
      .filter((f) => f !== 'tests/docs.test.ts');
    expect(outside).toEqual([]);
  });

  it('the README is a quick start that links to the reference', () => {
    const readme = read('README.md');
    expect(readme).toContain('](docs/api.md');
    expect(readme).toMatch(/## Quick start/);
    // The per-action reference lives in docs/api.md only.
    expect(readme).not.toMatch(/^\| (stats|history|mute-status|by-lead) \|/m);
  });
});
