/**
 * The api's limits, defined once. The SQL functions users may call through the Data API enforce
 * the same numbers, read from `private.api_limits()` (supabase/migrations/*_protection.sql);
 * tests/caps-catalog.test.ts fails when the two disagree.
 */
export const LIMITS = {
  shortText: 200,
  email: 320,
  phone: 50,
  notes: 10_000,
  searchTerm: 200,
  agentId: 100,
  jsonBytes: 16_384,
  jsonDepth: 10,
  batch: 100,
  pageSize: 100,
  /** Deeper than this, a page by offset reads every row it skips: page by `cursor` instead. */
  offset: 10_000,
} as const;
