/** `grpc://host:port` (plaintext) or `grpcs://host:port` (TLS). */
export interface ControllerUrl {
  secure: boolean;
  /** `host:port` as grpc-js wants it (IPv6 in brackets). */
  target: string;
}

export function parseControllerUrl(text: string): ControllerUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`"${text}" is not a URL; use grpc://host:port or grpcs://host:port`);
  }
  if (url.protocol !== 'grpc:' && url.protocol !== 'grpcs:') throw new Error(`"${text}" must start with grpc:// (plaintext) or grpcs:// (TLS)`);
  if (!url.hostname) throw new Error(`"${text}" has no host`);
  if (!url.port) throw new Error(`"${text}" has no port; use ${url.protocol}//${url.hostname}:PORT`);
  if ((url.pathname && url.pathname !== '/') || url.search || url.hash || url.username) throw new Error(`"${text}" must be only scheme, host and port`);
  return { secure: url.protocol === 'grpcs:', target: `${url.hostname}:${url.port}` };
}
