// A pure function's answers kept by argument, for hot paths that ask about the same strings
// again and again (a reconcile pass parses each claim's address several times). Bounded: when
// full it starts over, so a churn of distinct arguments costs a refill, never unbounded memory.

/** fn with its answers kept for up to max distinct arguments. fn must be pure and its answers not mutated by callers. */
export function memoized<A, R>(fn: (arg: A) => R, max: number): (arg: A) => R {
  const answers = new Map<A, R>();
  return (arg) => {
    if (answers.has(arg)) return answers.get(arg) as R;
    const answer = fn(arg);
    if (answers.size >= max) answers.clear();
    answers.set(arg, answer);
    return answer;
  };
}
