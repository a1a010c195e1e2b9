import { parseSearchQuery } from './src/domain/search/query.js';

for (const q of [
  'a b',
  'a AND b OR c',
  'a OR b c',
  'NOT x y',
  '-x y',
  'name:churn',
  '"a b"~5',
  'qukka~1 zz',
  'qukka~',
  'te?t',
  '(a OR b) AND NOT c',
  'foo:bar',
  '"x',
  '(a',
  '^',
  'NEAR(a b)',
  'a^2',
  '*',
  'a || b && c',
]) {
  try {
    console.log(
      q,
      '=>',
      JSON.stringify(parseSearchQuery(q), (k, v) => (k === 'loc' ? undefined : v)),
    );
  } catch (e: any) {
    console.log(q, 'ERR', e.code, e.message);
  }
}
