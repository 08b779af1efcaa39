// Colour for what we write on stderr. picocolors decides from stdout (and turns colour on under CI),
// so `w4a8 ... 2>log` would put ANSI codes in the log: decide from stderr itself, and honour NO_COLOR.
import pc from 'picocolors';

export function stderrWantsColor(env: NodeJS.ProcessEnv = process.env, isTTY = process.stderr.isTTY === true): boolean {
  if ('NO_COLOR' in env) return false;
  if ('FORCE_COLOR' in env && env.FORCE_COLOR !== '0') return true;
  return isTTY && env.TERM !== 'dumb';
}

/** picocolors' functions, active only when stderr is a colour terminal. */
export const stderrColors = pc.createColors(stderrWantsColor());
