/**
 * When a failed delivery is tried again: the published schedule (docs/webhooks.md), with jitter,
 * and the receiver's `Retry-After` on 429 and 503.
 */

/**
 * Seconds to wait after the 1st, 2nd, … failed attempt: 12 retries over about 2.8 days, 13
 * attempts in all. After the last one fails the delivery is failed and its endpoint disabled.
 */
export const RETRY_DELAYS_S = [
  5,
  30,
  2 * 60,
  10 * 60,
  30 * 60,
  60 * 60,
  2 * 3600,
  4 * 3600,
  8 * 3600,
  12 * 3600,
  16 * 3600,
  24 * 3600,
] as const;

/** Each delay is moved by up to ±20%, so receivers coming back are not hit by every retry at once. */
export const JITTER = 0.2;

/** The longest `Retry-After` honoured; a longer one waits this long. */
export const MAX_RETRY_AFTER_S = 24 * 3600;

/**
 * Milliseconds until the next attempt after `attempts` attempts have failed, or null when that
 * was the last. `delaysS` is the schedule (tests shorten it); `random` in [0, 1).
 */
export function retryDelayMs(
  attempts: number,
  delaysS: readonly number[] = RETRY_DELAYS_S,
  random: () => number = Math.random,
): number | null {
  if (attempts < 1 || attempts > delaysS.length) return null;
  const base = delaysS[attempts - 1] * 1000;
  return Math.round(base * (1 - JITTER + 2 * JITTER * random()));
}

/** A `Retry-After` header (seconds or an HTTP date) as milliseconds from `now`, bounded; null if absent or unreadable. */
export function retryAfterMs(header: string | null | undefined, now = Date.now()): number | null {
  if (!header) return null;
  const text = header.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return null;
    ms = at - now;
  }
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_S * 1000);
}
