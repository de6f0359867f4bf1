/**
 * T, the clock tolerance (issue 18 section 4). The record's time (package field 4) is the
 * server's word; the signing client refuses a record whose time differs from its own clock by
 * more than T, the server refuses a first message for a record older than T, and a verifier fails
 * a proxy signature dated later than a revocation minus T (a server may have backdated it by up
 * to T unnoticed). docs/FORMATS.md, "Clock tolerance T".
 */
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 120;

/** Seconds the record's time is ahead of (positive) or behind (negative) the clock. */
export function recordSkewSeconds(recordTime: number, clock: Date): number {
  return recordTime - Math.floor(clock.getTime() / 1000);
}

/** Why a record dated `recordTime` must not be signed at `clock`, or undefined when it is within T. */
export function clockSkewProblem(recordTime: number, clock: Date, toleranceSeconds: number): string | undefined {
  const skew = recordSkewSeconds(recordTime, clock);
  if (Math.abs(skew) <= toleranceSeconds) return undefined;
  const when = new Date(recordTime * 1000).toISOString();
  return `the record is dated ${when}, ${Math.abs(skew)} s ${skew > 0 ? 'ahead of' : 'behind'} this computer's clock (${clock.toISOString()}): more than the clock tolerance of ${toleranceSeconds} s`;
}
