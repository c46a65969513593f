// The agent's identity as a cluster gives it: a Pod of the agent's ServiceAccount bound to a
// Node, and a token bound to that Pod (what the kubelet projects into the DaemonSet's Pod). Such a
// token carries the node as the user extra authentication.kubernetes.io/node-name, which
// examples/agent-policy.yaml confines the agent's writes with. The e2e lab and the RBAC tests
// make these by hand: there is no kubelet.
import { createSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  type KubernetesObject,
  type V1Pod,
} from '@kubernetes/client-node';
import { API_VERSION, GROUP, PLURAL, VERSION } from '../../api/types.js';
import { waitFor } from '../controlplane/harness.js';

export const AGENT_POLICY_MANIFEST = fileURLToPath(new URL('../../examples/agent-policy.yaml', import.meta.url));
export const AGENT_POLICY_NAME = 'ipcontroller-agent-own-node';

export interface Account {
  namespace: string;
  name: string;
}

/** Lab tokens outlive any run, the demo's too (it stays up until Ctrl-C). */
export const LAB_TOKEN_SECONDS = 24 * 3600;

/**
 * Creates (or re-creates) a Pod of account's ServiceAccount bound to nodeName (none: a Pod not
 * yet scheduled). It never runs: there is no kubelet. A Pod on a node needs a forced delete (grace 0) or it waits for a kubelet.
 */
export async function agentPod(
  core: CoreV1Api,
  account: Account,
  nodeName: string | undefined,
  name = `${account.name}-${nodeName ?? 'unscheduled'}`,
): Promise<V1Pod> {
  try {
    await core.deleteNamespacedPod({ name, namespace: account.namespace, gracePeriodSeconds: 0 });
  } catch (err) {
    if (!(err instanceof ApiException && err.code === 404)) throw err;
  }
  return core.createNamespacedPod({
    namespace: account.namespace,
    body: {
      metadata: { name, labels: { 'app.kubernetes.io/name': 'ipcontroller', 'app.kubernetes.io/component': 'agent' } },
      spec: {
        ...(nodeName ? { nodeName } : {}),
        serviceAccountName: account.name,
        containers: [{ name: 'agent', image: 'ipcontroller/ipcontroller:lab' }],
      },
    },
  });
}

/** Deletes a Pod made by agentPod(); its tokens stop working at once. */
export async function deleteAgentPod(core: CoreV1Api, namespace: string, name: string): Promise<void> {
  try {
    await core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 });
  } catch (err) {
    if (!(err instanceof ApiException && err.code === 404)) throw err;
  }
}

/** What a TokenRequest binds its token to: nothing, or one object. */
export type TokenBinding = { kind: 'Pod' | 'Node' | 'Secret'; name: string; uid: string } | undefined;

/** A token for account from the TokenRequest API, bound to binding when given. */
export async function serviceAccountTokenBound(
  core: CoreV1Api,
  account: Account,
  binding: TokenBinding,
  expirationSeconds = LAB_TOKEN_SECONDS,
): Promise<string> {
  const request = await core.createNamespacedServiceAccountToken({
    name: account.name,
    namespace: account.namespace,
    body: {
      spec: {
        audiences: [],
        expirationSeconds,
        ...(binding ? { boundObjectRef: { apiVersion: 'v1', kind: binding.kind, name: binding.name, uid: binding.uid } } : {}),
      },
    },
  });
  const token = request.status?.token;
  if (!token) throw new Error(`no token for ${account.namespace}/${account.name}`);
  return token;
}

/**
 * A legacy ServiceAccount token: a Secret of type kubernetes.io/service-account-token holding a JWT
 * with the legacy claims, signed with the apiserver's ServiceAccount key, as kube-controller-manager's
 * token controller made them before 1.24 (there is none here, so the test makes it). Such a
 * token authenticates as the account with no user extra at all.
 */
export async function legacySecretToken(
  core: CoreV1Api,
  account: Account,
  signingKeyPath: string,
  secretName: string,
): Promise<{ token: string; secretUid: string }> {
  const sa = await core.readNamespacedServiceAccount({ name: account.name, namespace: account.namespace });
  const saUid = sa.metadata?.uid ?? '';
  const part = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const unsigned = `${part({ alg: 'RS256', typ: 'JWT' })}.${part({
    iss: 'kubernetes/serviceaccount',
    'kubernetes.io/serviceaccount/namespace': account.namespace,
    'kubernetes.io/serviceaccount/secret.name': secretName,
    'kubernetes.io/serviceaccount/service-account.name': account.name,
    'kubernetes.io/serviceaccount/service-account.uid': saUid,
    sub: `system:serviceaccount:${account.namespace}:${account.name}`,
  })}`;
  const token = `${unsigned}.${createSign('RSA-SHA256').update(unsigned).sign(readFileSync(signingKeyPath)).toString('base64url')}`;
  const secret = await core.createNamespacedSecret({
    namespace: account.namespace,
    body: {
      metadata: {
        name: secretName,
        annotations: { 'kubernetes.io/service-account.name': account.name, 'kubernetes.io/service-account.uid': saUid },
      },
      type: 'kubernetes.io/service-account-token',
      data: { token: Buffer.from(token).toString('base64') },
    },
  });
  return { token, secretUid: secret.metadata?.uid ?? '' };
}

/** A token bound to pod, as the kubelet projects it into the Pod. */
export function podBoundToken(core: CoreV1Api, account: Account, pod: V1Pod): Promise<string> {
  const name = pod.metadata?.name;
  const uid = pod.metadata?.uid;
  if (!name || !uid) throw new Error('pod has no name or uid');
  return serviceAccountTokenBound(core, account, { kind: 'Pod', name, uid });
}

/** A KubeConfig for the cluster of admin that authenticates with token. */
export function kubeConfigForToken(admin: KubeConfig, token: string): KubeConfig {
  const kc = new KubeConfig();
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('admin kubeconfig has no cluster');
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'sa', token }],
    contexts: [{ name: 'sa', cluster: cluster.name, user: 'sa' }],
    currentContext: 'sa',
  });
  return kc;
}

/** Creates every object of a manifest, replacing those that exist (kubectl apply, roughly). */
export async function applyManifest(kc: KubeConfig, path: string): Promise<void> {
  const objects = YAML.parseAllDocuments(readFileSync(path, 'utf8'))
    .map((d) => d.toJS() as KubernetesObject | null)
    .filter((o): o is KubernetesObject => o !== null);
  const client = KubernetesObjectApi.makeApiClient(kc);
  for (const obj of objects) {
    try {
      await client.create(obj);
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 409)) throw err;
      const existing = await client.read({
        apiVersion: obj.apiVersion ?? '',
        kind: obj.kind ?? '',
        metadata: { name: obj.metadata?.name ?? '', ...(obj.metadata?.namespace ? { namespace: obj.metadata.namespace } : {}) },
      });
      await client.replace({
        ...obj,
        metadata: { ...obj.metadata, resourceVersion: existing.metadata?.resourceVersion ?? '' },
      } as KubernetesObject);
    }
  }
}

/** The status code of a dry-run IpNode create as agent: 403 once the policy refuses it. */
export async function dryRunIpNode(agent: KubeConfig, name: string): Promise<number> {
  try {
    await agent.makeApiClient(CustomObjectsApi).createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL.IpNode,
      dryRun: 'All',
      body: { apiVersion: API_VERSION, kind: 'IpNode', metadata: { name }, spec: { probeAddress: '192.0.2.1', probePort: 1 } },
    });
    return 201;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}

/**
 * Waits until the policy is in force (it takes effect a few hundred ms after it is created):
 * agent, holding a Pod-bound token for a node other than otherNode, is refused a dry-run create
 * of IpNode otherNode. Dry run: admission runs, nothing is stored.
 */
export async function agentPolicyInForce(agent: KubeConfig, otherNode: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    `ValidatingAdmissionPolicy ${AGENT_POLICY_NAME} in force`,
    async () => (await dryRunIpNode(agent, otherNode)) === 403,
    timeoutMs,
    100,
  );
}
