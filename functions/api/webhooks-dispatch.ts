/**
 * The dispatch entry of the function, for hosted Supabase where no process runs between requests:
 * pg_cron calls it through pg_net every few seconds (supabase/migrations/20261201000400_webhooks.sql,
 * docs/webhooks.md) with the header `x-webhooks-dispatch-secret: $WEBHOOKS_DISPATCH_SECRET`. It
 * drains the outbox in batches for a bounded time, well inside the platform's CPU limit per request
 * (signing and JSON are the only CPU work; the rest is waiting on receivers and the database).
 */
import { ApiError } from '../../shared/errors.ts';
import type { Webhooks } from '../../shared/webhook-dispatcher.ts';

export const DISPATCH_HEADER = 'x-webhooks-dispatch-secret';
/** Wall time a call keeps claiming new batches; sends already under way finish after it. */
export const DISPATCH_BUDGET_MS = 10_000;

/** Compares in time independent of where the texts differ. */
function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

export async function dispatchEntry(
  req: Request,
  deps: { webhooks?: Webhooks; dispatchSecret?: string },
): Promise<{ attempted: number; batches: number }> {
  // Without a configured secret (or service) there is no entry: it answers as an unknown route.
  if (!deps.dispatchSecret || !deps.webhooks) throw new ApiError('NOT_FOUND', 'No dispatch entry is configured');
  if (!sameSecret(req.headers.get(DISPATCH_HEADER) ?? '', deps.dispatchSecret)) {
    throw new ApiError('UNAUTHORIZED', 'Wrong dispatch secret');
  }
  return await deps.webhooks.drain({ maxMs: DISPATCH_BUDGET_MS });
}
