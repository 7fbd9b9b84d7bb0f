/**
 * A benchmark's load in a thread of its own: the flooders' busy event loop is then
 * not the one of the clients timed beside them.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

/** Runs `file` (a module that calls `serveInThread`) in a thread with `data`; what it answers. */
export function runInThread<T>(file: string, data: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(file, { workerData: data });
    worker.once("message", (answer: T) => {
      resolve(answer);
      void worker.terminate();
    });
    worker.once("error", reject);
  });
}

/** In a thread started by `runInThread`: runs `work` with its data and answers with the result. */
export function serveInThread<D, T>(work: (data: D) => Promise<T>): void {
  if (isMainThread || parentPort === null) return;
  const port = parentPort;
  void work(workerData as D).then((answer) => port.postMessage(answer));
}
