/**
 * A log-bucketed histogram in the manner of HdrHistogram, with fixed memory.
 *
 * Values are non-negative integers in a unit the caller picks (the load test uses microseconds).
 * Values below `subBucketCount` (2^k, the smallest power of two >= 2 * 10^digits) are counted
 * exactly. A larger value v with most significant bit m is counted in a bucket of width
 * 2^(m - k + 1): every bucket spans at most 1 / (subBucketCount / 2) of its lowest value, so a
 * percentile read back as its bucket's highest value is within 10^-digits of the exact one, and
 * never below it. Values over `highestTrackableValue` are clamped to it and counted in
 * `clampedCount` (as are negative values, recorded as 0), so memory never grows.
 */

export interface HistogramOptions {
  /** Largest value kept apart; larger ones are clamped to it. An integer in [2, 2^50]. */
  readonly highestTrackableValue: number;
  /** Precision: every reported percentile is within a relative 10^-digits of the exact value. */
  readonly significantDigits: 1 | 2 | 3 | 4;
}

export interface HistogramSummary {
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/**
 * The 1-based rank of percentile `p` (0-100) among `total` sorted values: the smallest rank whose
 * share of values is at least p. The tiny slack keeps e.g. 99.9% of 1000 at rank 999 despite
 * binary floating point.
 */
export function percentileRank(p: number, total: number): number {
  return Math.min(total, Math.max(1, Math.ceil((p * total) / 100 - 1e-9)));
}

/** floor(log2(v)) for a positive safe integer, exact (Math.log2 alone may round up near 2^n). */
function msb(v: number): number {
  let m = Math.floor(Math.log2(v));
  while (2 ** m > v) m--;
  while (2 ** (m + 1) <= v) m++;
  return m;
}

/** A histogram as plain data (see `Histogram.toSparse`): `buckets` is index, count, index, count... */
export interface SparseHistogram {
  readonly highestTrackableValue: number;
  readonly significantDigits: number;
  readonly total: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
  readonly clamped: number;
  readonly buckets: readonly number[];
}

export class Histogram {
  readonly highestTrackableValue: number;
  readonly significantDigits: number;
  readonly #subBucketBits: number;
  readonly #subBucketCount: number;
  readonly #subBucketHalfCount: number;
  readonly #counts: Float64Array;
  #total = 0;
  #sum = 0;
  #min = Infinity;
  #max = 0;
  #clamped = 0;

  constructor(options: HistogramOptions) {
    const { highestTrackableValue: highest, significantDigits: digits } = options;
    if (!Number.isSafeInteger(highest) || highest < 2 || highest > 2 ** 50) {
      throw new RangeError(`highestTrackableValue must be an integer in [2, 2^50], got ${highest}`);
    }
    if (![1, 2, 3, 4].includes(digits)) {
      throw new RangeError(`significantDigits must be 1, 2, 3 or 4, got ${digits}`);
    }
    this.highestTrackableValue = highest;
    this.significantDigits = digits;
    this.#subBucketBits = Math.ceil(Math.log2(2 * 10 ** digits));
    this.#subBucketCount = 2 ** this.#subBucketBits;
    this.#subBucketHalfCount = this.#subBucketCount / 2;
    this.#counts = new Float64Array(this.#indexOf(highest) + 1);
  }

  /** Number of buckets: the histogram's fixed memory is 8 bytes per bucket. */
  get bucketCount(): number {
    return this.#counts.length;
  }

  #indexOf(v: number): number {
    if (v < this.#subBucketCount) return v;
    const shift = msb(v) - this.#subBucketBits + 1;
    const sub = Math.floor(v / 2 ** shift);
    return this.#subBucketCount + (shift - 1) * this.#subBucketHalfCount + (sub - this.#subBucketHalfCount);
  }

  #lowestAt(index: number): number {
    if (index < this.#subBucketCount) return index;
    const k = index - this.#subBucketCount;
    const shift = Math.floor(k / this.#subBucketHalfCount) + 1;
    return (this.#subBucketHalfCount + (k % this.#subBucketHalfCount)) * 2 ** shift;
  }

  #highestAt(index: number): number {
    if (index < this.#subBucketCount) return index;
    const shift = Math.floor((index - this.#subBucketCount) / this.#subBucketHalfCount) + 1;
    return this.#lowestAt(index) + 2 ** shift - 1;
  }

  /** The smallest value counted in the same bucket as `value` (after clamping). */
  lowestEquivalentValue(value: number): number {
    return this.#lowestAt(this.#indexOf(this.#clamp(value)));
  }

  /** The largest value counted in the same bucket as `value` (after clamping). */
  highestEquivalentValue(value: number): number {
    return this.#highestAt(this.#indexOf(this.#clamp(value)));
  }

  #clamp(value: number): number {
    return Math.min(this.highestTrackableValue, Math.max(0, Math.round(value)));
  }

  /** Records `value` (rounded to an integer) `count` times. Throws on a non-finite value. */
  record(value: number, count = 1): void {
    if (!Number.isFinite(value)) throw new RangeError(`value must be finite, got ${value}`);
    if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`count must be >= 1, got ${count}`);
    const v = this.#clamp(value);
    if (v !== Math.round(value)) this.#clamped += count;
    this.#counts[this.#indexOf(v)]! += count;
    this.#total += count;
    this.#sum += v * count;
    if (v < this.#min) this.#min = v;
    if (v > this.#max) this.#max = v;
  }

  get count(): number {
    return this.#total;
  }

  /** Values that were out of range and recorded as 0 or `highestTrackableValue`. */
  get clampedCount(): number {
    return this.#clamped;
  }

  /** Smallest recorded value (exact); 0 when empty. */
  get min(): number {
    return this.#total === 0 ? 0 : this.#min;
  }

  /** Largest recorded value (exact); 0 when empty. */
  get max(): number {
    return this.#max;
  }

  /** Mean of the recorded values (exact, from their sum); 0 when empty. */
  get mean(): number {
    return this.#total === 0 ? 0 : this.#sum / this.#total;
  }

  /**
   * The value at percentile `p` (0-100): the highest value of the bucket that holds the value of
   * rank `percentileRank(p, count)`, capped at the exact maximum. 0 when empty; p = 0 is the min.
   */
  percentile(p: number): number {
    if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be in [0, 100], got ${p}`);
    if (this.#total === 0) return 0;
    if (p === 0) return this.#min;
    const rank = percentileRank(p, this.#total);
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.min(this.#highestAt(i), this.#max);
    }
    return this.#max;
  }

  summary(): HistogramSummary {
    return {
      count: this.count,
      min: this.min,
      mean: this.mean,
      p50: this.percentile(50),
      p90: this.percentile(90),
      p99: this.percentile(99),
      p999: this.percentile(99.9),
      max: this.max,
    };
  }

  /** Adds every value of `other`, which must have the same range and precision. */
  merge(other: Histogram): void {
    if (
      other.highestTrackableValue !== this.highestTrackableValue ||
      other.significantDigits !== this.significantDigits
    ) {
      throw new RangeError("can only merge histograms of the same range and precision");
    }
    if (other.#total === 0) return;
    for (let i = 0; i < this.#counts.length; i++) this.#counts[i]! += other.#counts[i]!;
    this.#total += other.#total;
    this.#sum += other.#sum;
    this.#clamped += other.#clamped;
    this.#min = Math.min(this.#min, other.#min);
    this.#max = Math.max(this.#max, other.#max);
  }

  /**
   * The histogram as plain data (its non-empty buckets and exact aggregates), to send to another
   * process; `addSparse` on a histogram of the same range and precision adds it there.
   */
  toSparse(): SparseHistogram {
    const buckets: number[] = [];
    for (let i = 0; i < this.#counts.length; i++) {
      const c = this.#counts[i]!;
      if (c !== 0) buckets.push(i, c);
    }
    return {
      highestTrackableValue: this.highestTrackableValue,
      significantDigits: this.significantDigits,
      total: this.#total,
      sum: this.#sum,
      min: this.#total === 0 ? 0 : this.#min,
      max: this.#max,
      clamped: this.#clamped,
      buckets,
    };
  }

  /** Adds the values of `toSparse()` output; throws on another range or precision, or bad data. */
  addSparse(s: SparseHistogram): void {
    if (
      s.highestTrackableValue !== this.highestTrackableValue ||
      s.significantDigits !== this.significantDigits
    ) {
      throw new RangeError("can only add a sparse histogram of the same range and precision");
    }
    if (s.total === 0) return;
    if (s.buckets.length % 2 !== 0) throw new RangeError("sparse buckets must be index, count pairs");
    let n = 0;
    for (let k = 0; k < s.buckets.length; k += 2) {
      const i = s.buckets[k]!;
      const c = s.buckets[k + 1]!;
      if (!Number.isSafeInteger(i) || i < 0 || i >= this.#counts.length || !(c > 0)) {
        throw new RangeError(`bad sparse bucket ${i}: ${c}`);
      }
      n += c;
    }
    if (n !== s.total) throw new RangeError(`sparse buckets hold ${n} values, total says ${s.total}`);
    for (let k = 0; k < s.buckets.length; k += 2) this.#counts[s.buckets[k]!]! += s.buckets[k + 1]!;
    this.#total += s.total;
    this.#sum += s.sum;
    this.#clamped += s.clamped;
    this.#min = Math.min(this.#min, s.min);
    this.#max = Math.max(this.#max, s.max);
  }

  /** Forgets every value; memory stays allocated. */
  reset(): void {
    this.#counts.fill(0);
    this.#total = 0;
    this.#sum = 0;
    this.#min = Infinity;
    this.#max = 0;
    this.#clamped = 0;
  }
}
