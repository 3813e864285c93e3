// The statistics the benchmark pages (in the browser) and scripts (in Node.js) share.

/** The median of `values` (the upper middle one of an even count). */
export const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * The median of the paired ratios `ours[i] / theirs[i]` (each pair measured one after the
 * other), with the middle half of them (`low`, `high`) to show their spread.
 */
export function pairedRatio(ours, theirs) {
  const ratios = ours.map((x, i) => x / theirs[i]).sort((a, b) => a - b);
  const quarter = Math.floor(ratios.length / 4);
  return { ratio: median(ratios), low: ratios[quarter], high: ratios[ratios.length - 1 - quarter] };
}
