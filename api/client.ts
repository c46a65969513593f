// Typed access to one kind of ipcontroller.ext custom resource. Every object read from the
// apiserver goes through the kind's parser, so callers only ever see typed resources.
import { ApiException, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { parseIpClaim, parseIpClaimPool, parseIpNode } from './parse.js';
import type { ParseResult } from '../lib/json.js';
import { GROUP, PLURAL, VERSION, type IpClaim, type IpClaimPool, type IpNode, type IpResource } from './types.js';

export interface Invalid {
  name: string;
  reason: string;
}

export interface Listed<T> {
  items: T[];
  /** Objects the parser refused, so callers can report them instead of crashing. */
  invalid: Invalid[];
  resourceVersion: string;
}

/** A status-code test for errors from @kubernetes/client-node. */
export function hasStatus(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}
export const isNotFound = (err: unknown): boolean => hasStatus(err, 404);
export const isConflict = (err: unknown): boolean => hasStatus(err, 409);
export const isAlreadyExists = (err: unknown): boolean => hasStatus(err, 409);

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class ResourceClient<T extends IpResource> {
  readonly plural: string;
  constructor(
    private readonly api: CustomObjectsApi,
    plural: string,
    readonly parse: (obj: unknown) => ParseResult<T>,
  ) {
    this.plural = plural;
  }

  private get where() {
    return { group: GROUP, version: VERSION, plural: this.plural };
  }

  /** The object parsed as this kind, or the parser's reason thrown (also for answers fetched elsewhere). */
  parsed(obj: unknown): T {
    const result = this.parse(obj);
    if (!result.ok) throw new Error(result.reason);
    return result.value;
  }

  async list(labelSelector?: string): Promise<Listed<T>> {
    const body = (await this.api.listClusterCustomObject({ ...this.where, ...(labelSelector ? { labelSelector } : {}) })) as {
      items?: unknown[];
      metadata?: { resourceVersion?: string };
    };
    const out: Listed<T> = { items: [], invalid: [], resourceVersion: body.metadata?.resourceVersion ?? '' };
    for (const raw of body.items ?? []) {
      const result = this.parse(raw);
      if (result.ok) out.items.push(result.value);
      else out.invalid.push({ name: nameOf(raw), reason: result.reason });
    }
    return out;
  }

  /** The object, or null when it does not exist. */
  async get(name: string): Promise<T | null> {
    try {
      return this.parsed(await this.api.getClusterCustomObject({ ...this.where, name }));
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async create(obj: T): Promise<T> {
    return this.parsed(await this.api.createClusterCustomObject({ ...this.where, body: obj }));
  }

  /** Replaces the object; with metadata.resourceVersion set, a concurrent change fails with 409. */
  async replace(obj: T): Promise<T> {
    const name = obj.metadata.name ?? '';
    return this.parsed(await this.api.replaceClusterCustomObject({ ...this.where, name, body: obj }));
  }

  /** Replaces the status subresource; same optimistic concurrency as replace. */
  async replaceStatus(obj: T): Promise<T> {
    const name = obj.metadata.name ?? '';
    return this.parsed(await this.api.replaceClusterCustomObjectStatus({ ...this.where, name, body: obj }));
  }

  async patch(name: string, patch: object): Promise<T> {
    return this.parsed(await this.api.patchClusterCustomObject({ ...this.where, name, body: patch }, mergePatch));
  }

  async patchStatus(name: string, patch: object): Promise<T> {
    return this.parsed(await this.api.patchClusterCustomObjectStatus({ ...this.where, name, body: patch }, mergePatch));
  }

  /**
   * Deletes the object; false when it was already gone. With preconditions, an object whose
   * uid or resourceVersion differs is not deleted (409), as a controller that may have lost
   * its leadership needs.
   */
  async delete(name: string, preconditions?: { uid?: string; resourceVersion?: string }): Promise<boolean> {
    try {
      const pre = preconditions
        ? {
            ...(preconditions.uid ? { uid: preconditions.uid } : {}),
            ...(preconditions.resourceVersion ? { resourceVersion: preconditions.resourceVersion } : {}),
          }
        : undefined;
      await this.api.deleteClusterCustomObject({ ...this.where, name, ...(pre ? { body: { preconditions: pre } } : {}) });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Path for watches and informers. */
  get watchPath(): string {
    return `/apis/${GROUP}/${VERSION}/${this.plural}`;
  }
}

function nameOf(raw: unknown): string {
  const meta = (raw as { metadata?: { name?: unknown } } | null)?.metadata;
  return typeof meta?.name === 'string' ? meta.name : '<unnamed>';
}

export interface IpClients {
  claims: ResourceClient<IpClaim>;
  nodes: ResourceClient<IpNode>;
  pools: ResourceClient<IpClaimPool>;
}

export function ipClients(kc: KubeConfig): IpClients {
  const api = kc.makeApiClient(CustomObjectsApi);
  return {
    claims: new ResourceClient<IpClaim>(api, PLURAL.IpClaim, parseIpClaim),
    nodes: new ResourceClient<IpNode>(api, PLURAL.IpNode, parseIpNode),
    pools: new ResourceClient<IpClaimPool>(api, PLURAL.IpClaimPool, parseIpClaimPool),
  };
}
