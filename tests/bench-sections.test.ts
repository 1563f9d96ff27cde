// bench/sections.mjs: BENCHMARKS.md as named sections. A full run starts the file afresh; a partial
// run (BENCH_ONLY) replaces only its own sections; every listed section module can be run.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SECTIONS, writeSections } from '../bench/sections.mjs';

const dir = mkdtempSync(join(tmpdir(), 'bench-sections-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bench sections', () => {
  it('a partial run rewrites only its own section and keeps the others byte for byte', () => {
    const file = join(dir, 'partial.md');
    writeSections(file, { main: '## Main\n\nold main\n', scale: '## Scale\n\nold scale\n' }, { fresh: true });
    const before = readFileSync(file, 'utf8');
    writeSections(file, { scale: '## Scale\n\nnew scale\n' });
    const after = readFileSync(file, 'utf8');
    expect(after).toContain('new scale');
    expect(after).not.toContain('old scale');
    const mainOf = (text: string) => /<!-- main:start -->[\s\S]*<!-- main:end -->/.exec(text)?.[0];
    expect(mainOf(after)).toBe(mainOf(before));
    expect(after.indexOf('<!-- main:start -->')).toBeLessThan(after.indexOf('<!-- scale:start -->'));
  });

  it('a full run drops what an earlier file held outside this run', () => {
    const file = join(dir, 'fresh.md');
    writeFileSync(file, '# Benchmarks\n\npasted by hand\n');
    writeSections(file, {}, { fresh: true });
    writeSections(file, { pooled: '## Pooled\n' });
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain('pasted by hand');
    expect(text).toContain('<!-- pooled:start -->');
  });

  it('every listed section is a module with a section() to run', async () => {
    expect(new Set(SECTIONS.map((s: { name: string }) => s.name)).size).toBe(SECTIONS.length);
    for (const { module } of SECTIONS as { module: string }[]) {
      const mod = await import(new URL(module, new URL('../bench/sections.mjs', import.meta.url)).href);
      expect(typeof mod.section, module).toBe('function');
    }
  });
});
