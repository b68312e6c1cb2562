/**
 * Exponential backoff with full jitter: a delay drawn uniformly from
 * [0, min(max, base * 2^attempt)). Full jitter spreads the reconnects of
 * thousands of clients after a hub restart instead of bunching them.
 */
export const backoff = (attempt, { base = 1000, max = 30000 } = {}, random = Math.random) =>
  Math.floor(random() * Math.min(max, base * 2 ** attempt))
