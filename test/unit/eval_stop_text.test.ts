// StopTextScanner: text is released as soon as it cannot begin a stop string, a stop string split
// across pieces is caught before any of it is released, the earliest of several wins, and what is
// held back comes out on flush.
import { checkStopStrings, StopTextScanner } from '../../lib/eval/stop_text';

/** Feeds the pieces; returns everything released, the match, and the flushed rest. */
function feed(stops: string[], pieces: string[]): { released: string[]; matched?: string; rest: string } {
  const s = new StopTextScanner(stops);
  const released: string[] = [];
  for (const p of pieces) {
    const r = s.push(p);
    released.push(r.release);
    if (r.matched !== undefined) return { released, matched: r.matched, rest: s.flush() };
  }
  return { released, rest: s.flush() };
}

describe('StopTextScanner', () => {
  it('catches a stop string split across pieces without releasing any of it', () => {
    const r = feed(['the park'], ['in', ' the', ' pa', 'rk.', ' More']);
    expect(r.released).toEqual(['in', ' ', '', '']);
    expect(r.matched).toBe('the park');
  });

  it('releases held text once it stops matching a stop string', () => {
    const r = feed(['the park'], ['in', ' the', ' pa', 'nts']);
    expect(r.released.join('')).toBe('in the pants');
    expect(r.released).toEqual(['in', ' ', '', 'the pants']);
    expect(r.matched).toBeUndefined();
    expect(r.rest).toBe('');
  });

  it('takes the earliest of several stop strings, and text before it in the same piece', () => {
    const r = feed(['ball', 'red'], ['a big, red ball']);
    expect(r.released).toEqual(['a big, ']);
    expect(r.matched).toBe('red');
  });

  it('hands back what is held when generation ends for another reason', () => {
    const r = feed(['Lily said'], ['Then Lily', ' sa']);
    expect(r.released).toEqual(['Then ', '']);
    expect(r.rest).toBe('Lily sa');
  });

  it('checks the list', () => {
    expect(checkStopStrings(undefined)).toEqual([]);
    expect(checkStopStrings(['.', '\n'])).toEqual(['.', '\n']);
    expect(() => checkStopStrings('x')).toThrow(TypeError);
    expect(() => checkStopStrings([1])).toThrow(TypeError);
    expect(() => checkStopStrings([''])).toThrow(/stop\[0\] is empty/);
  });
});
