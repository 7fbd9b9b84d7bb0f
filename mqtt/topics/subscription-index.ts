/**
 * A trie of topic filters, one level per node, with the wildcards `+` and `#` as
 * their own children. Matching a topic walks its levels and the wildcard branches
 * beside them, so its cost grows with the topic's depth (and the number of
 * matches), not with the number of filters held.
 */

interface Node<V> {
  children: Map<string, Node<V>> | null;
  plus: Node<V> | null;
  hash: Node<V> | null;
  /** Subscribers of the filter that ends at this node, by key. */
  subs: Map<string, V> | null;
  filter: string;
}

function newNode<V>(filter: string): Node<V> {
  return { children: null, plus: null, hash: null, subs: null, filter };
}

export type MatchVisitor<V> = (value: V, key: string, filter: string) => void;

export class SubscriptionIndex<V> {
  private readonly root: Node<V> = newNode("");
  private count = 0;

  /** Number of (filter, key) entries. */
  get size(): number {
    return this.count;
  }

  /** Adds or replaces the entry for `key` under `filter`; true if it was new. */
  add(filter: string, key: string, value: V): boolean {
    let node = this.root;
    const levels = filter.split("/");
    for (const level of levels) {
      if (level === "+") {
        node.plus ??= newNode("");
        node = node.plus;
      } else if (level === "#") {
        node.hash ??= newNode("");
        node = node.hash;
      } else {
        node.children ??= new Map();
        let next = node.children.get(level);
        if (next === undefined) {
          next = newNode("");
          node.children.set(level, next);
        }
        node = next;
      }
    }
    node.filter = filter;
    node.subs ??= new Map();
    const isNew = !node.subs.has(key);
    node.subs.set(key, value);
    if (isNew) this.count++;
    return isNew;
  }

  /** Removes the entry for `key` under `filter`; true if there was one. */
  remove(filter: string, key: string): boolean {
    const levels = filter.split("/");
    const path: Array<[Node<V>, string]> = [];
    let node: Node<V> | null | undefined = this.root;
    for (const level of levels) {
      path.push([node, level]);
      node = level === "+" ? node.plus : level === "#" ? node.hash : node.children?.get(level);
      if (!node) return false;
    }
    if (!node.subs?.delete(key)) return false;
    this.count--;
    if (node.subs.size === 0) node.subs = null;
    // Prune the nodes left empty, deepest first.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, level] = path[i] as [Node<V>, string];
      const child = level === "+" ? parent.plus : level === "#" ? parent.hash : parent.children?.get(level);
      if (!child || child.subs || child.plus || child.hash || (child.children && child.children.size > 0))
        break;
      if (level === "+") parent.plus = null;
      else if (level === "#") parent.hash = null;
      else {
        parent.children?.delete(level);
        if (parent.children?.size === 0) parent.children = null;
      }
    }
    return true;
  }

  /** The value stored for `key` under exactly `filter`. */
  get(filter: string, key: string): V | undefined {
    let node: Node<V> | null | undefined = this.root;
    for (const level of filter.split("/")) {
      node = level === "+" ? node.plus : level === "#" ? node.hash : node.children?.get(level);
      if (!node) return undefined;
    }
    return node.subs?.get(key);
  }

  /** Calls `visit` once for every entry whose filter matches `topic`. */
  forEachMatch(topic: string, visit: MatchVisitor<V>): void {
    const levels = topic.split("/");
    // MQTT-4.7.2-1: wildcards at the first level do not match topics starting with '$'.
    const dollar = topic.charCodeAt(0) === 0x24;
    this.walk(this.root, levels, 0, visit, dollar);
  }

  /** Every matching entry, as a list. */
  match(topic: string): Array<{ filter: string; key: string; value: V }> {
    const out: Array<{ filter: string; key: string; value: V }> = [];
    this.forEachMatch(topic, (value, key, filter) => out.push({ filter, key, value }));
    return out;
  }

  /** Every entry, in no particular order. */
  *entries(): IterableIterator<{ filter: string; key: string; value: V }> {
    const stack: Node<V>[] = [this.root];
    while (stack.length > 0) {
      const node = stack.pop() as Node<V>;
      if (node.subs) for (const [key, value] of node.subs) yield { filter: node.filter, key, value };
      if (node.children) for (const child of node.children.values()) stack.push(child);
      if (node.plus) stack.push(node.plus);
      if (node.hash) stack.push(node.hash);
    }
  }

  private walk(
    node: Node<V>,
    levels: string[],
    i: number,
    visit: MatchVisitor<V>,
    noWildcard: boolean,
  ): void {
    // '#' matches the parent level and any number of levels below (4.7.1.2).
    if (node.hash?.subs && !noWildcard) emit(node.hash, visit);
    if (i === levels.length) {
      if (node.subs) emit(node, visit);
      return;
    }
    const next = node.children?.get(levels[i] as string);
    if (next) this.walk(next, levels, i + 1, visit, false);
    if (node.plus && !noWildcard) this.walk(node.plus, levels, i + 1, visit, false);
  }
}

function emit<V>(node: Node<V>, visit: MatchVisitor<V>): void {
  for (const [key, value] of node.subs as Map<string, V>) visit(value, key, node.filter);
}
