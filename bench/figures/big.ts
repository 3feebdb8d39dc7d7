/**
 * Figure — big file: one 200-row upload (MAX_ROWS=1000, so ten directory batches of 20) with
 * UPSTREAM_CONCURRENCY=20, against the simulator's real limits (30 creates, 50 for any other
 * path, 100 for GET / per window) with the window shortened to W = 3 s on both sides
 * (simulator and UPSTREAM_RATE_WINDOW_MS; under the transport's 4 s idle-socket timeout, so
 * no create meets a keep-alive connection the simulator is closing), D = 100 ms. The
 * directory must see no 429 and the upload must take close to the floor the limiter imposes.
 * Run on both engines: on PostgreSQL the service paces with the limiter every instance
 * shares (src/db/postgres/pacing.ts), on SQLite with the in-process one; both follow one rule.
 *
 * The rule (src/directory/limiter.ts): a create takes one of 30 slots before it is sent and
 * holds it until its answer plus one window W; the service sends at most 20 creates at once
 * (a pool of 20 workers, src/bulk/createRows.ts), in file order. Replaying that rule on this
 * run's create durations, as if the service spent no time of its own, gives the floor:
 *
 *   floor = wake + creates + tail
 *     wake    = the simulator durations of the GET / before the first create,
 *     creates = the replay: the k-th create (in the order the simulator received them) is
 *               sent at max(the earliest free worker, the earliest free slot), takes its own
 *               simulator duration d_k, then frees its worker at once and its slot W later;
 *               `creates` is the replay's last answer. With every d_k = D it is 7·D + 6·W:
 *               200 = 6 × 30 + 20, each round sends 20 creates, then 10 more when the first
 *               20 answer (20 workers), and a slot carries one create per D + W;
 *     tail    = the time the simulator spent serving the requests received after the last
 *               create's answer (the ten activations, and any batch read), overlapping
 *               intervals counted once: sent one after another, their durations add up.
 * ratio = client time from sending the upload to having the report ÷ floor.
 *
 * The figure fails (throws) unless the report says completed with ten activated directory
 * batches (the first one's id is the upload's batch_id), the simulator saw exactly ten
 * creation_batch_ids of 20 creates each, and it holds 200 active hospitals in them.
 *
 * Before measuring, a 1-row warm-up upload, then a pause of W + 0.5 s so its create has
 * left both the simulator's window and the limiter.
 */
import type { RecordedRequest } from '../../simulator/simulator.js';
import {
  CREATES_PER_WINDOW,
  answeredAt,
  batchOf,
  createFailures,
  median,
  ms,
  pacedService,
  uploadsAtOnce,
  type BenchEngine,
  type FigureResult,
  type UploadResult,
} from '../lib.js';

const ROWS = 200;
const DIRECTORY_BATCH = 20;
const CONCURRENCY = 20;
const DELAY_MS = 100;
const WINDOW_MS = 3000;
const TARGET_RATIO = 1.1;

export async function big(engine: BenchEngine): Promise<FigureResult> {
  const { sim, service, close } = await pacedService(engine, 'big', {
    delayMs: DELAY_MS,
    windowMs: WINDOW_MS,
    env: { MAX_ROWS: '1000', UPSTREAM_CONCURRENCY: String(CONCURRENCY) },
  });
  try {
    const { results, totalMs, count429, log, sentAt, doneAt, lastAnswer } = await uploadsAtOnce(sim, [service.url], ROWS, 'big');
    const batches = assertTenActiveBatches(results[0]!, log, sim.hospitals());

    const creates = log.filter((r) => r.route === 'create' && r.status === 200).sort((a, b) => a.receivedAt - b.receivedAt);
    if (creates.length !== ROWS) throw new Error(`big: expected ${ROWS} successful creates, the simulator served ${creates.length}`);
    const firstCreate = creates[0]!.receivedAt;
    const lastCreateAnswer = Math.max(...creates.map(answeredAt));
    const wake = log.filter((r) => r.route === 'health' && r.receivedAt < firstCreate).reduce((total, r) => total + r.durationMs!, 0);
    const replay = replayLimiter(creates.map((r) => r.durationMs!), { slots: CREATES_PER_WINDOW, workers: CONCURRENCY, windowMs: WINDOW_MS });
    const after = log.filter((r) => r.receivedAt >= lastCreateAnswer);
    const tail = servedMs(after);
    const floorMs = wake + replay.lastAnswer + tail;
    const ratio = totalMs / floorMs;

    // Where the time above the floor went, measured against the replay.
    const lateMs = creates.map((r, k) => r.receivedAt - firstCreate - replay.sentAt[k]!);
    const reaction = reactionTimes(creates, { slots: CREATES_PER_WINDOW, workers: CONCURRENCY, windowMs: WINDOW_MS });
    const beforeCreates = firstCreate - sentAt;
    const createsOver = lastCreateAnswer - firstCreate - replay.lastAnswer;
    const activationOver = lastAnswer - lastCreateAnswer - tail;
    const afterLast = doneAt - lastAnswer;
    // A slot carries ⌈200 / 30⌉ = 7 creates: six waits of W on the longest chain.
    const waits = Math.ceil(ROWS / CREATES_PER_WINDOW) - 1;
    const activations = after.filter((r) => r.route === 'activate').length;
    const reads = after.filter((r) => r.route === 'batch').length;
    const failedCreates = createFailures(service.output());
    return {
      rows: [
        {
          figure: `3e. big file: 429s seen by the simulator (${ROWS} rows, UPSTREAM_CONCURRENCY=${CONCURRENCY}, 30/W, W=${WINDOW_MS / 1000} s)`,
          measured: String(count429),
          reference: `${creates.length} creates sent in ${batches} directory batches`,
          ratio: '-',
          target: '= 0',
          pass: count429 === 0,
        },
        {
          figure: `3f. big file: total time ÷ the limiter's floor (D=${DELAY_MS} ms)`,
          measured: ms(totalMs),
          reference: `floor ${ms(floorMs)}`,
          ratio: ratio.toFixed(3),
          target: `≤ ${TARGET_RATIO}`,
          pass: ratio <= TARGET_RATIO,
        },
      ],
      formulas: [
        `big file: floor = wake + creates + tail = ${wake} + ${replay.lastAnswer} + ${tail} = ${floorMs} ms, where wake = the simulator durations of GET / before the first create, ` +
          `creates = the limiter's rule replayed on this run's ${ROWS} create durations (${CREATES_PER_WINDOW} slots, each held from a create's send until its answer + W = ${WINDOW_MS} ms; ${CONCURRENCY} workers; each create sent as soon as both a worker and a slot are free; 7·D + 6·W when every create takes D), ` +
          `tail = the simulator's busy time for the requests after the last create's answer (${activations} activations, ${reads} batch reads); ratio = client time from sending the upload to its report ÷ floor.`,
      ],
      notes: [
        `big file: ${creates.length} creates in ${batches} directory batches, all ${ROWS} hospitals active in the simulator; at most ${sim.stats().maxInFlightCreates} creates in flight; create durations ${Math.min(...creates.map((r) => r.durationMs!))}–${Math.max(...creates.map((r) => r.durationMs!))} ms; ` +
          `each create left median ${ms(median(lateMs))} (max ${ms(Math.max(...lateMs))}, the last one ${ms(lateMs.at(-1)!)}) later than the replay allows, counted from the first create; ` +
          `counted from this run's own answers instead, the ${reaction.slotBound.length} creates that waited for a slot left median ${ms(median(reaction.slotBound))} (max ${ms(Math.max(...reaction.slotBound))}) after "answer + W" freed it, ` +
          `the ${reaction.workerBound.length} that waited for a worker median ${ms(median(reaction.workerBound))} (max ${ms(Math.max(...reaction.workerBound))}) after the answer that freed it; ` +
          `${ms(beforeCreates)} from the client's send to the first create, ${ms(lastAnswer - lastCreateAnswer)} from the last create's answer to the last activation's answer, ${ms(afterLast)} from then to the report.`,
      ],
      analysis: [
        (failedCreates.length === 0 ? `big file: no create failed or was retried; ` : `big file: ${failedCreates.length} create(s) failed on their first attempt (${failedCreates.slice(0, 5).join('; ')}) and were settled and sent again; `) +
          `the ${ms(totalMs - floorMs)} above the floor: ${ms(beforeCreates - wake)} before the first create (the upload's parsing, recording and wake-up, less the simulator's ${ms(wake)}), ` +
          `${ms(createsOver)} in the creates (${ms(createsOver / waits)} for each of the ${waits} waits for a slot: the limiter (${engine.name === 'postgres' ? 'the shared one, src/db/postgres/pacing.ts' : 'in process, src/directory/limiter.ts'}) frees a slot W after the service has processed the answer, not after the simulator sent it, and the waiting create leaves once the service sees it: ` +
          `those that waited for a slot left median ${ms(median(reaction.slotBound))} after answer + W; those that waited for a worker, median ${ms(median(reaction.workerBound))} after the answer, as a worker first commits its row's outcome, src/bulk/createRows.ts), ` +
          `${ms(activationOver)} between the activations beyond the simulator's own ${ms(tail)}, and ${ms(afterLast)} for the report.`,
      ],
    };
  } finally {
    await close();
  }
}

/**
 * The limiter's rule replayed with no time of the service's own: `durations[k]` is the k-th
 * create's time in the directory; returns when each is sent and the last answer, in ms from
 * the first send.
 */
export function replayLimiter(durations: number[], { slots, workers, windowMs }: { slots: number; workers: number; windowMs: number }): { sentAt: number[]; lastAnswer: number } {
  const slotFree = new Array<number>(slots).fill(0);
  const workerFree = new Array<number>(workers).fill(0);
  const sentAt: number[] = [];
  let lastAnswer = 0;
  const earliest = (times: number[]) => times.indexOf(Math.min(...times));
  for (const duration of durations) {
    const slot = earliest(slotFree);
    const worker = earliest(workerFree);
    const sent = Math.max(slotFree[slot]!, workerFree[worker]!);
    const answer = sent + duration;
    sentAt.push(sent);
    workerFree[worker] = answer;
    slotFree[slot] = answer + windowMs;
    lastAnswer = Math.max(lastAnswer, answer);
  }
  return { sentAt, lastAnswer };
}

/**
 * How long the service took to send each create once the limiter's rule allowed it, on this
 * run's own times: the k-th create (0-based, in the order received) may go once k − 19 of
 * the creates before it have answered (a worker) and k − 29 of them have answered at least
 * W ago (a slot). Split by which of the two it waited for last; the first 20 are left out.
 */
function reactionTimes(creates: RecordedRequest[], { slots, workers, windowMs }: { slots: number; workers: number; windowMs: number }) {
  const slotBound: number[] = [];
  const workerBound: number[] = [];
  creates.forEach((r, k) => {
    if (k < workers) return;
    const answers = creates.slice(0, k).map(answeredAt).sort((a, b) => a - b);
    const worker = answers[k - workers]!;
    const slot = k < slots ? Number.NEGATIVE_INFINITY : answers[k - slots]! + windowMs;
    (slot > worker ? slotBound : workerBound).push(r.receivedAt - Math.max(slot, worker));
  });
  return { slotBound, workerBound };
}

/** How long the simulator was serving at least one of `requests`: their intervals merged. */
function servedMs(requests: RecordedRequest[]): number {
  const spans = requests.map((r) => [r.receivedAt, answeredAt(r)] as const).sort((a, b) => a[0] - b[0]);
  let total = 0;
  let end = Number.NEGATIVE_INFINITY;
  for (const [start, stop] of spans) {
    if (stop <= end) continue;
    total += stop - Math.max(start, end);
    end = stop;
  }
  return total;
}

/**
 * Throws unless the upload is ten activated directory batches of 20 in the report and in the
 * simulator (ten creation_batch_ids of 20 creates, 200 active hospitals). Returns the count.
 */
function assertTenActiveBatches(result: UploadResult, log: RecordedRequest[], hospitals: { creation_batch_id: string | null; active: boolean }[]): number {
  const expected = Math.ceil(ROWS / DIRECTORY_BATCH);
  const listed = result.report.directory_batches ?? [];
  if (listed.length !== expected || listed.some((b) => !b.activated) || listed[0]?.id !== result.report.batch_id) {
    throw new Error(`big: the report should list ${expected} activated directory batches, the first one the upload's batch_id; it says ${JSON.stringify(listed).slice(0, 800)}`);
  }
  const perBatch = new Map<string, number>();
  for (const r of log) if (r.route === 'create' && r.status === 200) perBatch.set(batchOf(r)!, (perBatch.get(batchOf(r)!) ?? 0) + 1);
  if (perBatch.size !== expected || [...perBatch.values()].some((n) => n !== DIRECTORY_BATCH)) {
    throw new Error(`big: the simulator should have seen ${expected} directory batches of ${DIRECTORY_BATCH} creates; it saw ${JSON.stringify([...perBatch.values()])}`);
  }
  const ours = hospitals.filter((h) => h.creation_batch_id !== null && perBatch.has(h.creation_batch_id.toLowerCase()));
  const active = ours.filter((h) => h.active).length;
  if (ours.length !== ROWS || active !== ROWS) throw new Error(`big: the simulator holds ${ours.length} hospitals of this upload, ${active} active; expected ${ROWS}, all active`);
  return perBatch.size;
}
