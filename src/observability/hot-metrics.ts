import type { Counter, Metric, Registry } from 'prom-client';

/**
 * Counters and histograms for the token path, which touches six series per request. A labelled
 * prom-client child validates and hashes its labels on every `inc` and `observe` (caching the
 * child from `.labels()` does not avoid it): about 0.3-0.4 us each, 1-3% of a token request.
 * These keep plain numbers instead and hand them to prom-client when it collects (a scrape), so a
 * request only adds to a field. The text at /metrics is the same, series for series.
 */

/** One counter series: increments add to a number that prom-client gets at the next scrape. */
export class CountSeries {
  private pending = 0;
  constructor(private readonly child: { inc(value: number): void }) {}

  inc(value = 1): void {
    this.pending += value;
  }

  /** Hands what was counted since the last scrape to prom-client. */
  flush(): void {
    if (this.pending === 0) return;
    this.child.inc(this.pending);
    this.pending = 0;
  }
}

/**
 * The series of prom-client counters built with `collect: () => buffer.flush()`: a scrape (or a
 * `get()`) of any of them first moves every pending count in.
 */
export class CountBuffer {
  private readonly series = new Map<string, CountSeries>();

  /** The buffered series of `counter` with these label values (one per label set); keep it. */
  of<T extends string>(counter: Counter<T>, ...labels: string[]): CountSeries {
    const key = `${(counter as unknown as { name: string }).name}\0${labels.join('\0')}`;
    let series = this.series.get(key);
    if (!series) this.series.set(key, (series = new CountSeries(counter.labels(...labels))));
    return series;
  }

  flush(): void {
    for (const series of this.series.values()) series.flush();
  }
}

interface HistogramConfig<T extends string> {
  name: string;
  help: string;
  labelNames: readonly T[];
  buckets: readonly number[];
  registers: readonly Registry[];
}

/** One label set of a LocalHistogram. */
export class HistogramSeries {
  /** Per bucket, the observations that fell in it (not cumulative); the last is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    private readonly bounds: readonly number[],
    readonly labels: Readonly<Record<string, string>>,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    (this.counts as unknown as number[])[i]! += 1;
    this.sum += value;
    this.count += 1;
  }
}

/**
 * A histogram that prom-client's registry serializes as its own (`_bucket` with `le`, `_sum`,
 * `_count`, in prom-client's order), whose series are plain objects found once by the caller.
 * Only what the server uses: `labels()` once per label set, `observe`, `reset`.
 */
export class LocalHistogram<T extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly labelNames: readonly T[];
  private readonly bounds: readonly number[];
  private readonly series = new Map<string, HistogramSeries>();

  constructor(config: HistogramConfig<T>) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames;
    this.bounds = [...config.buckets].sort((a, b) => a - b);
    for (const registry of config.registers) registry.registerMetric(this as unknown as Metric);
  }

  /** The series of these label values (in labelNames order); keep it, it is the cheap handle. */
  labels(...values: string[]): HistogramSeries {
    if (values.length !== this.labelNames.length) throw new Error(`${this.name}: expected ${this.labelNames.length} label values`);
    const key = values.join('\0');
    let series = this.series.get(key);
    if (!series) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i] as string));
      series = new HistogramSeries(this.bounds, labels);
      this.series.set(key, series);
    }
    return series;
  }

  reset(): void {
    for (const series of this.series.values()) {
      series.counts.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }

  /** What prom-client's Histogram.getForPromString returns: the registry formats it. */
  getForPromString(): { name: string; help: string; type: string; aggregator: string; values: PromValue[] } {
    const values: PromValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const series of this.series.values()) {
      // As in prom-client, a series exists from its first observation (labels() alone makes none).
      if (series.count === 0) continue;
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += series.counts[i] as number;
        values.push({ labels: { le: bound }, sharedLabels: series.labels, value: cumulative, metricName: bucket });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: series.labels, value: series.count, metricName: bucket });
      values.push({ labels: {}, sharedLabels: series.labels, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: series.labels, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** The JSON form (`registry.getMetricsAsJSON`): labels merged, as prom-client's `get()`. */
  get(): { name: string; help: string; type: string; aggregator: string; values: PromValue[] } {
    const data = this.getForPromString();
    data.values = data.values.map(({ sharedLabels, labels, ...rest }) => ({ ...rest, labels: { ...sharedLabels, ...labels } }));
    return data;
  }
}

interface PromValue {
  labels: Record<string, string | number>;
  sharedLabels?: Readonly<Record<string, string>>;
  value: number;
  metricName: string;
}
