// Preloaded into `sched-ctl` by the e2e helpers (NODE_OPTIONS=--import): appends every HTTP
// response the command receives from a master to the JSON-lines file SCHED_TEST_API_RECORD
// ({ method, path, status, contentType, body }), so the test can check each one against the
// OpenAPI document. It copies the body as the parser pushes it and consumes nothing.
import { appendFileSync } from 'node:fs';
import { IncomingMessage } from 'node:http';

const file = process.env.SCHED_TEST_API_RECORD;
if (file) {
  const push = IncomingMessage.prototype.push;
  IncomingMessage.prototype.push = function record(chunk, encoding) {
    const req = this.req;
    if (req && typeof req.path === 'string') {
      this.recorded ??= [];
      if (chunk !== null) this.recorded.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, encoding));
      else {
        appendFileSync(
          file,
          `${JSON.stringify({
            method: req.method,
            path: req.path,
            status: this.statusCode,
            contentType: this.headers['content-type'] ?? null,
            body: Buffer.concat(this.recorded).toString('utf8'),
          })}\n`,
        );
      }
    }
    return push.call(this, chunk, encoding);
  };
}
