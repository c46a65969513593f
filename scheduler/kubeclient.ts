// API clients that reuse connections. client-node 1.4's makeApiClient builds a new
// http(s).Agent for every request, so every call pays a TCP and TLS handshake; at thousands
// of writes (cold start with 5,000 Services) that handshake is most of the cost. Here the
// kubeconfig still authenticates each request (token headers, so rotated tokens keep
// working), but the agent it builds is replaced by one keep-alive agent with the same TLS
// options. Proxy agents are left alone.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { createConfiguration, ServerConfiguration, type Configuration, type KubeConfig, type RequestContext, type SecurityAuthentication } from '@kubernetes/client-node';

export type ApiFactory = <T>(api: new (config: Configuration) => T) => T;

export function keepAliveApis(kc: KubeConfig, maxSockets = 32): ApiFactory {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  let shared: HttpAgent | undefined;
  const auth: SecurityAuthentication = {
    getName: () => 'default',
    async applySecurityAuthentication(context: RequestContext): Promise<void> {
      await kc.applySecurityAuthentication(context);
      const built = context.getAgent();
      if (built && built.constructor !== HttpsAgent && built.constructor !== HttpAgent) return; // a proxy agent
      if (!shared) {
        shared =
          built instanceof HttpsAgent
            ? new HttpsAgent({ ...(built as HttpsAgent & { options: object }).options, keepAlive: true, maxSockets })
            : new HttpAgent({ keepAlive: true, maxSockets });
      }
      context.setAgent(shared);
    },
  };
  return (api) => new api(createConfiguration({ baseServer: new ServerConfiguration(cluster.server, {}), authMethods: { default: auth } }));
}
