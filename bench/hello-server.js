// The reference for the read-path and start-up figures: a bare express app (the same
// express 5 the service uses) with one route answering {"hello":"world"}. Plain JavaScript
// on purpose, so it runs under `node` exactly like the built service, not under tsx.
import express from 'express';

const app = express();
app.get('/', (_req, res) => {
  res.json({ hello: 'world' });
});
app.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1');
