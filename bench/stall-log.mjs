// Bench-only preload (node --import), with `--profile` or `--trace`: a timer that should fire
// every 5 ms logs each turn that held the loop over 40 ms, with the monotonic time (µs, the clock
// of a --cpu-prof profile) at which it ended, so the stall can be found in the profile, and where
// the main thread spent it (Linux /proc/thread-self/schedstat, to a scheduler tick): on a CPU,
// runnable but waiting for one (the box's cores are busy elsewhere: the bench's clients, other
// processes), or neither (blocked: a lock, a wait for GC helper threads, synchronous I/O). Only
// the first is the server's own work.
import { readFileSync } from 'node:fs';

const sched = () => {
  try {
    const [onCpu, waiting] = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ');
    return { onCpu: Number(onCpu) / 1e6, waiting: Number(waiting) / 1e6 };
  } catch {
    return { onCpu: Number.NaN, waiting: Number.NaN };
  }
};
let last = process.hrtime.bigint();
let lastSched = sched();
setInterval(() => {
  const now = process.hrtime.bigint();
  const s = sched();
  const late = Number(now - last) / 1e6 - 5;
  if (late > 40)
    process.stderr.write(
      `stall ${late.toFixed(0)} ms (${(s.onCpu - lastSched.onCpu).toFixed(0)} ms on CPU, ${(s.waiting - lastSched.waiting).toFixed(0)} ms waiting for one) ending at ${now / 1000n} us\n`,
    );
  last = now;
  lastSched = s;
}, 5).unref();
