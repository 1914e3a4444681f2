import { connect, createServer, type Server, type Socket } from 'node:net';

/** One HTTP request that went through the proxy: its Range header and the response body bytes passed. */
export interface ProxiedRequest {
  path: string;
  range: string | null;
  status: number | null;
  /** Response body bytes the proxy passed to the client (after the header block). */
  bodyBytes: number;
  cut: boolean;
}

/**
 * A fault-injecting TCP proxy in front of the controller's REST port: it sees the plaintext
 * HTTP, so it records what each request asked for (`Range`) and how many body bytes it really
 * passed, can throttle the responses, and can cut the next response after N body bytes (an end
 * of the connection as a flaky link makes it). Responses say `Connection: close`, so each
 * request has its own connection and its own record.
 */
export class FaultProxy {
  readonly requests: ProxiedRequest[] = [];
  /** Response bytes per second per connection (0 = unlimited). */
  bytesPerSecond = 0;
  /** The next response is cut after this many body bytes. */
  cutNextAfter: number | undefined;
  port = 0;
  private server?: Server;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly target: { host: string; port: number },
    private readonly listenHost = '0.0.0.0',
  ) {}

  async start(): Promise<void> {
    this.server = createServer((client) => this.onClient(client));
    await new Promise<void>((ok) => this.server!.listen(0, this.listenHost, ok));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((ok) => this.server?.close(ok));
  }

  private onClient(client: Socket): void {
    const upstream = connect(this.target.port, this.target.host);
    this.sockets.add(client).add(upstream);
    const req: ProxiedRequest = { path: '', range: null, status: null, bodyBytes: 0, cut: false };
    let head = '';
    let recorded = false;
    client.on('data', (d: Buffer) => {
      if (!recorded) {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end >= 0) {
          recorded = true;
          const lines = head.slice(0, end).split('\r\n');
          req.path = lines[0]?.split(' ')[1] ?? '';
          req.range = lines.find((l) => /^range:/i.test(l))?.slice(6).trim() ?? null;
          this.requests.push(req);
        }
      }
      upstream.write(d);
    });
    let cutAt: number | undefined;
    let headerDone = false;
    let respHead = Buffer.alloc(0);
    let paused = Promise.resolve();
    upstream.on('data', (d: Buffer) => {
      upstream.pause();
      paused = paused.then(async () => {
        let chunk = d;
        if (!headerDone) {
          // Hold the response until its header block is complete.
          respHead = Buffer.concat([respHead, d]);
          const end = respHead.indexOf('\r\n\r\n');
          if (end < 0) return;
          headerDone = true;
          const lines = respHead.subarray(0, end).toString('latin1').split('\r\n');
          req.status = Number(lines[0]?.split(' ')[1]);
          // One request per connection, so every request is seen and counted on its own.
          const headText = lines.filter((l) => !/^(connection|keep-alive):/i.test(l)).concat('Connection: close').join('\r\n');
          client.write(Buffer.from(`${headText}\r\n\r\n`, 'latin1'));
          chunk = respHead.subarray(end + 4);
          if (this.cutNextAfter !== undefined && req.status >= 200 && req.status < 300) {
            cutAt = this.cutNextAfter;
            this.cutNextAfter = undefined;
          }
        }
        if (cutAt !== undefined && req.bodyBytes + chunk.length >= cutAt) {
          const rest = chunk.subarray(0, cutAt - req.bodyBytes);
          req.bodyBytes += rest.length;
          req.cut = true;
          // Everything up to the cut reaches the client, then the connection ends.
          client.end(rest);
          upstream.destroy();
          return;
        }
        req.bodyBytes += chunk.length;
        if (!client.write(chunk)) await new Promise((ok) => client.once('drain', ok));
        if (this.bytesPerSecond > 0) await new Promise((ok) => setTimeout(ok, (chunk.length / this.bytesPerSecond) * 1000));
      });
      void paused.then(() => !upstream.destroyed && upstream.resume());
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    upstream.on('end', () => void paused.then(() => client.end()));
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', () => void paused.then(() => client.end()));
  }
}
