// Preloaded into the service by the memory figure only (node --expose-gc --import
// bench/mem-probe.js dist/src/server.js). Idle until SIGUSR2; then it prints one line to
// stderr: the process's memory as it is, then after a full garbage collection, so the
// benchmark can tell live memory from garbage V8 has not collected yet. Plain JavaScript,
// like hello-server.js, so it runs under node exactly as the built service does.
process.on('SIGUSR2', () => {
  const before = process.memoryUsage();
  globalThis.gc?.();
  const after = process.memoryUsage();
  process.stderr.write(`MEMPROBE ${JSON.stringify({ before, after })}\n`);
});
