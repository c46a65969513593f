// Claim status writes the apiserver refused because the claim had already moved to another node
// (examples/agent-policy.yaml lets an agent write only the status of claims on its own node).
// The agent wrote because its copy of the claim, at some resourceVersion, still named this node;
// until its copy changes, writing again would only be refused again, so the write is not sent.

/**
 * A claim status write refused because the claim is on another node now: the scheduler moved it
 * after the agent's last look, and examples/agent-policy.yaml lets an agent write only the status
 * of claims on its own node. Expected during a move; the watch brings the new spec next.
 */
export class ClaimNotOnThisNode extends Error {
  constructor(
    readonly claim: string,
    /** Where the claim is now ('' for no node). */
    readonly nodeName: string,
    options?: ErrorOptions,
  ) {
    super(`IpClaim ${claim} is on ${nodeName || 'no node'} now; its status is not this node's to write`, options);
    this.name = 'ClaimNotOnThisNode';
  }
}

export interface Refusal {
  /** The resourceVersion of the agent's copy of the claim when the write was refused. */
  resourceVersion: string;
  /** The node the claim was on by then, as read after the refusal ('' for none). */
  nodeName: string;
}

export class RefusedStatusWrites {
  private readonly byClaim = new Map<string, Refusal>();

  /**
   * The earlier refusal when the agent's copy of claim is still the one that was refused (the
   * write is then not sent again); undefined when there was none or the claim has changed since.
   */
  refused(claim: string, resourceVersion: string | undefined): Refusal | undefined {
    const refusal = this.byClaim.get(claim);
    if (!refusal) return undefined;
    if (resourceVersion !== undefined && refusal.resourceVersion === resourceVersion) return refusal;
    this.byClaim.delete(claim);
    return undefined;
  }

  /** Records a refusal; forgets those of claims the agent no longer knows (deleted meanwhile). */
  remember(claim: string, refusal: Refusal, known: (claim: string) => boolean): void {
    for (const name of this.byClaim.keys()) if (!known(name)) this.byClaim.delete(name);
    this.byClaim.set(claim, refusal);
  }

  get size(): number {
    return this.byClaim.size;
  }
}
