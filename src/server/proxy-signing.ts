/**
 * Proxy signing (claims 10-11, patent figure 2): the server signs as party A for manager X (or,
 * in the reverse case, for a delegating customer) with a key S that X's warrant certifies, and
 * only for the customers the warrant names. Patent block 303 finds the warrant; the key is
 * looked up again, and the warrant checked again, right before each signature, so a warrant
 * revoked in between is never used.
 */
import type { X509Certificate } from 'node:crypto';
import type { SigningKey } from '../crypto/signer.js';
import type { ClientIdentity } from './client-auth.js';
import { ServiceError } from './service-error.js';
import type { StoredWarrant, WarrantRegistry } from '../warrant/registry.js';
import { warrantProblems } from '../warrant/warrant.js';

export interface ProxyOptions {
  readonly registry: WarrantRegistry;
  /** X's certificate first, then intermediates. */
  readonly manager: readonly X509Certificate[];
  /** To find the CA that issued a customer's card (warrants may name customers by CA). */
  readonly trustAnchors: readonly X509Certificate[];
}

const nameOf = (c: X509Certificate) => c.subject.replace(/\n/g, ', ');

export class ProxySigning {
  constructor(
    private readonly o: ProxyOptions,
    private readonly now: () => Date,
  ) {}

  /** Block 303: the warrant of X that lets the server sign with this customer, or a refusal naming X and Y. */
  warrantFor(client: ClientIdentity): StoredWarrant {
    const manager = this.o.manager[0]!;
    const customer = client.certificates[0]!;
    const found = this.o.registry.find(manager, customer, this.customerIssuer(client), this.now());
    if ('found' in found) return found.found;
    throw new ServiceError('E_NO_WARRANT', `no warrant from "${nameOf(manager)}" lets this server sign with "${nameOf(customer)}"${found.problems.length ? `: ${found.problems.join('; ')}` : ' (none names this customer)'}`);
  }

  /** S for a prepared proxy transaction, checked again now: a revoked warrant is never used. */
  keyFor(client: ClientIdentity, serial: string): SigningKey {
    this.o.registry.reloadIfChanged();
    const stored = this.o.registry.get(serial);
    if (!stored?.key) throw new ServiceError('E_WARRANT_GONE', `warrant ${serial} of this transaction is no longer on this server`);
    // X's own signed revocation list (a CRL), checked against what the server saw before.
    const checked = this.o.registry.revocationList(stored.issuerChain[0]!, this.now());
    const problems = 'problem' in checked ? [checked.problem] : warrantProblems(stored.warrant, {
      manager: stored.issuerChain[0]!, customer: client.certificates[0]!, customerIssuer: this.customerIssuer(client), at: this.now(), revocations: checked.list,
    });
    if (problems.length) throw new ServiceError('E_NO_WARRANT', `cannot sign by proxy: ${problems.join('; ')}`);
    return stored.key;
  }

  private customerIssuer(client: ClientIdentity): X509Certificate | undefined {
    const customer = client.certificates[0]!;
    return [...client.certificates.slice(1), ...this.o.trustAnchors].find((c) => customer.checkIssued(c) && customer.verify(c.publicKey));
  }
}
