/**
 * RFC 9162 section 2.1 Merkle tree: roots, inclusion proofs and consistency proofs, both made
 * (from a NodeReader, which holds every complete subtree's hash) and verified (from nothing but
 * the proof). Tree sizes and indices are JavaScript numbers, exact up to 2^53.
 *
 * Verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 and the transparency-dev vectors:
 * a consistency proof from size 0 is an error (it proves nothing), and so is an empty hash.
 */
import { RefusedError } from '../errors.js';
import { HASH_SIZE, emptyRoot, nodeHash } from './hash.js';

/** A Merkle proof that does not verify: the named check fails, exit code 1. */
export class MerkleProofError extends RefusedError {
  constructor(message: string) {
    super(message, undefined, 'E_TLOG_PROOF');
  }
}

/** Reads the hash of a complete subtree: level L, index N covers leaves [N*2^L, (N+1)*2^L). */
export interface NodeReader {
  readonly size: number;
  node(level: number, index: number): Uint8Array;
}

function checkSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new MerkleProofError(`${what} ${n} is not a tree size`);
}

/** The largest power of two strictly less than n (n >= 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPow2(n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n)) && 2 ** Math.log2(n) === n;
}

/** MTH(D[start:end]) where the recursion of RFC 9162 only ever asks for such ranges. */
export function subtreeRoot(r: NodeReader, start: number, end: number): Uint8Array {
  const n = end - start;
  if (n <= 0) throw new RangeError('empty subtree');
  if (isPow2(n) && start % n === 0) return r.node(Math.log2(n), start / n);
  const k = splitPoint(n);
  return nodeHash(subtreeRoot(r, start, start + k), subtreeRoot(r, start + k, end));
}

/** The root of the tree of the first `size` leaves of the reader (size <= r.size). */
export function treeRoot(r: NodeReader, size = r.size): Uint8Array {
  checkSize(size, 'tree size');
  if (size > r.size) throw new RangeError(`tree size ${size} exceeds the log's ${r.size}`);
  return size === 0 ? emptyRoot() : subtreeRoot(r, 0, size);
}

/** RFC 9162 2.1.3.1 PATH(index, D[0:size]), leaf to root. */
export function inclusionProof(r: NodeReader, index: number, size = r.size): Uint8Array[] {
  checkSize(size, 'tree size');
  if (size > r.size) throw new RangeError(`tree size ${size} exceeds the log's ${r.size}`);
  if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
    throw new RangeError(`leaf index ${index} is not in a tree of size ${size}`);
  }
  const out: Uint8Array[] = [];
  const path = (m: number, start: number, end: number): void => {
    const n = end - start;
    if (n === 1) return;
    const k = splitPoint(n);
    if (m < k) {
      path(m, start, start + k);
      out.push(subtreeRoot(r, start + k, end));
    } else {
      path(m - k, start + k, end);
      out.push(subtreeRoot(r, start, start + k));
    }
  };
  path(index, 0, size);
  return out;
}

/** RFC 9162 2.1.4.1 PROOF(size1, D[0:size2]). */
export function consistencyProof(r: NodeReader, size1: number, size2 = r.size): Uint8Array[] {
  checkSize(size1, 'old size');
  checkSize(size2, 'new size');
  if (size2 > r.size) throw new RangeError(`tree size ${size2} exceeds the log's ${r.size}`);
  if (size1 === 0 || size1 > size2) throw new RangeError(`no consistency proof from size ${size1} to ${size2}`);
  const out: Uint8Array[] = [];
  const sub = (m: number, start: number, end: number, b: boolean): void => {
    const n = end - start;
    if (m === n) {
      if (!b) out.push(subtreeRoot(r, start, end));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      sub(m, start, start + k, b);
      out.push(subtreeRoot(r, start + k, end));
    } else {
      sub(m - k, start + k, end, false);
      out.push(subtreeRoot(r, start, start + k));
    }
  };
  if (size1 < size2) sub(size1, 0, size2, true);
  return out;
}

function checkHash(h: Uint8Array, what: string): void {
  if (h.length !== HASH_SIZE) {
    throw new MerkleProofError(`${what} is ${h.length} bytes, not a ${HASH_SIZE}-byte SHA-256 hash`);
  }
}

const equal = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;
const odd = (n: number) => n % 2 === 1;
const half = (n: number) => Math.floor(n / 2);

/** The root an inclusion proof leads to (RFC 9162 2.1.3.2), or an error if it cannot lead anywhere. */
export function rootFromInclusionProof(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[]): Uint8Array {
  checkSize(size, 'tree size');
  if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
    throw new MerkleProofError(`leaf index ${index} is not in a tree of size ${size}`);
  }
  checkHash(leaf, 'leaf hash');
  let fn = index;
  let sn = size - 1;
  let r: Uint8Array = leaf;
  for (const [i, p] of proof.entries()) {
    checkHash(p, `proof[${i}]`);
    if (sn === 0) throw new MerkleProofError(`inclusion proof has ${proof.length} hashes, too many for index ${index} in size ${size}`);
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!odd(fn)) while (!odd(fn) && fn !== 0) { fn = half(fn); sn = half(sn); }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new MerkleProofError(`inclusion proof has ${proof.length} hashes, too few for index ${index} in size ${size}`);
  return r;
}

export function verifyInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): void {
  checkHash(root, 'root');
  const got = rootFromInclusionProof(index, size, leaf, proof);
  if (!equal(got, root)) throw new MerkleProofError(`inclusion proof for leaf ${index} does not lead to the root of size ${size}`);
}

/** RFC 9162 2.1.4.2: root1 (size1) is a prefix of root2 (size2). */
export function verifyConsistency(size1: number, size2: number, proof: readonly Uint8Array[], root1: Uint8Array, root2: Uint8Array): void {
  checkSize(size1, 'old size');
  checkSize(size2, 'new size');
  if (size2 < size1) throw new MerkleProofError(`the tree shrank from size ${size1} to ${size2}`);
  if (size1 === 0) throw new MerkleProofError('a consistency proof from size 0 proves nothing');
  if (root1.length === 0 || root2.length === 0) throw new MerkleProofError('a root is empty');
  if (size1 === size2) {
    if (proof.length !== 0) throw new MerkleProofError(`a consistency proof between equal sizes must be empty, got ${proof.length} hashes`);
    if (!equal(root1, root2)) throw new MerkleProofError(`two different roots for size ${size1}: the log forked`);
    return;
  }
  checkHash(root1, 'old root');
  checkHash(root2, 'new root');
  if (proof.length === 0) throw new MerkleProofError(`an empty consistency proof cannot link size ${size1} to ${size2}`);
  proof.forEach((p, i) => checkHash(p, `proof[${i}]`));
  const path = isPow2(size1) ? [root1, ...proof] : [...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (odd(fn)) { fn = half(fn); sn = half(sn); }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) throw new MerkleProofError(`consistency proof from ${size1} to ${size2} has too many hashes`);
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!odd(fn)) while (!odd(fn) && fn !== 0) { fn = half(fn); sn = half(sn); }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new MerkleProofError(`consistency proof from ${size1} to ${size2} has too few hashes`);
  if (!equal(fr, root1)) throw new MerkleProofError(`consistency proof does not lead to the old root of size ${size1}: the log forked`);
  if (!equal(sr, root2)) throw new MerkleProofError(`consistency proof does not lead to the new root of size ${size2}: the log forked`);
}

/**
 * Every complete subtree hash in memory, one growable buffer per level: appends are O(log n)
 * amortised and the 1M-leaf tree takes ~64 MB.
 */
export class MemoryTree implements NodeReader {
  private levels: Buffer[] = [];
  private counts: number[] = [];

  get size(): number {
    return this.counts[0] ?? 0;
  }

  node(level: number, index: number): Uint8Array {
    const count = this.counts[level] ?? 0;
    if (index < 0 || index >= count) throw new RangeError(`no complete subtree at level ${level} index ${index}`);
    return this.levels[level]!.subarray(index * HASH_SIZE, (index + 1) * HASH_SIZE);
  }

  private push(level: number, h: Uint8Array): void {
    if (h.length !== HASH_SIZE) throw new RangeError('a tree node is 32 bytes');
    const count = this.counts[level] ?? 0;
    let buf = this.levels[level];
    if (!buf || buf.length < (count + 1) * HASH_SIZE) {
      const grown = Buffer.alloc(Math.max(64, count * 2) * HASH_SIZE);
      if (buf) buf.copy(grown, 0, 0, count * HASH_SIZE);
      buf = grown;
      this.levels[level] = buf;
    }
    buf.set(h, count * HASH_SIZE);
    this.counts[level] = count + 1;
  }

  /**
   * Forgets every leaf from `size` on (a batch whose commit failed). The node at level L, index N
   * is complete and final once leaf (N+1)*2^L - 1 is in, so the first floor(size / 2^L) nodes of
   * each level are exactly those of a tree of `size` leaves.
   */
  truncate(size: number): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) throw new RangeError(`cannot truncate a tree of ${this.size} leaves to ${size}`);
    for (let level = 0; level < this.counts.length; level++) this.counts[level] = Math.floor(size / 2 ** level);
  }

  /** Appends one leaf hash; returns its index. */
  append(leaf: Uint8Array): number {
    const index = this.size;
    this.push(0, leaf);
    let level = 0;
    while ((this.counts[level] ?? 0) % 2 === 0) {
      const c = this.counts[level]!;
      this.push(level + 1, nodeHash(this.node(level, c - 2), this.node(level, c - 1)));
      level++;
    }
    return index;
  }
}
