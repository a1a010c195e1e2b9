// Bench-only preload (node --expose-gc --import): SIGUSR2 runs a full garbage collection, so a
// bench can tell memory still held from garbage V8 has not yet had a reason to collect.
process.on('SIGUSR2', () => {
  globalThis.gc?.();
});
