// tests/authz-matrix.md as data: its rows (action, then one expected answer per column) and the
// columns' caller/target cases, read by the envelope matrix and the REST door's matrix alike.
import { readFileSync } from 'node:fs';

export const MATRIX: string[][] = readFileSync(new URL('./authz-matrix.md', import.meta.url), 'utf8')
  .split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| resource/action') && !/^\| *-/.test(l))
  .map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));

export const MATRIX_COLUMNS = [
  'none',
  'malformed',
  'badSignature',
  'expired',
  'anon',
  'A:own',
  'A:other',
  'B:own',
  'B:other',
  'admin:own',
  'admin:other',
  'adminMode:own',
  'adminMode:other',
] as const;
