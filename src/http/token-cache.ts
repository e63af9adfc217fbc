import type { Role, TokenInfo, TokenStore } from '../runs/store';

/**
 * Every protected request verifies its token; a verified token is remembered for a few seconds
 * so that a busy client costs one Redis lookup per window instead of one per request. A token
 * revoked through this process is forgotten at once; through another API process it stops
 * working within the window.
 */
export class CachedTokens implements TokenStore {
  private readonly verified = new Map<string, { info: TokenInfo; until: number }>();

  constructor(
    private readonly tokens: TokenStore,
    private readonly ttlMs = 2000,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  async verify(token: string): Promise<TokenInfo | undefined> {
    const hit = this.verified.get(token);
    if (hit && hit.until > this.now()) return hit.info;
    this.verified.delete(token);
    const info = await this.tokens.verify(token);
    if (info) {
      if (this.verified.size >= this.maxEntries) this.verified.clear();
      this.verified.set(token, { info, until: this.now() + this.ttlMs });
    }
    return info;
  }

  async revoke(id: string): Promise<boolean> {
    const revoked = await this.tokens.revoke(id);
    for (const [token, entry] of this.verified) if (entry.info.id === id) this.verified.delete(token);
    return revoked;
  }

  create(name: string, role: Role): Promise<{ token: string; info: TokenInfo }> {
    return this.tokens.create(name, role);
  }

  ensure(token: string, name: string, role: Role): Promise<TokenInfo> {
    this.verified.delete(token);
    return this.tokens.ensure(token, name, role);
  }

  list(): Promise<TokenInfo[]> {
    return this.tokens.list();
  }
}
