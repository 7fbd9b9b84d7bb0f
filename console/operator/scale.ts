// The scale of a chart (chart.ts), apart from the DOM so that Node tests it.

/** 1, 2 or 5 times a power of ten, at least `n`: a scale that does not jitter with every value. */
export function niceCeiling(n: number): number {
  if (!(n > 0)) return 0;
  const power = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * power >= n) return m * power;
  return 10 * power;
}
