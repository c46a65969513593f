// Joins two sockets both ways; when either side fails, both are closed.
import type { Socket } from 'node:net';

export function splice(client: Socket, upstream: Socket): void {
  client.pipe(upstream).pipe(client);
  const close = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
}
