// Bench-only preload (node --import), with `--profile`: a timer that should fire every 5 ms
// logs each turn that held the loop over 40 ms, with the monotonic time (µs, the clock of a
// --cpu-prof profile) at which it ended, so the stall can be found in the profile.
let last = process.hrtime.bigint();
setInterval(() => {
  const now = process.hrtime.bigint();
  const late = Number(now - last) / 1e6 - 5;
  if (late > 40) process.stderr.write(`stall ${late.toFixed(0)} ms ending at ${now / 1000n} us\n`);
  last = now;
}, 5).unref();
