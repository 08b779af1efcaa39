// Error classes the CLI maps to exit codes: UsageError -> 2, W4A8Error (and anything else) -> 1.

/** A problem with the user's input or environment; its message is printed as one line, no stack. */
export class W4A8Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'W4A8Error';
  }
}

/** A bad command line: unknown value, missing option. Exit code 2. */
export class UsageError extends W4A8Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The user pressed Ctrl-C; long work stops at the next safe point. */
export class CancelledError extends W4A8Error {
  /** 128 + the signal number: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP. */
  readonly exitCode: number;
  constructor(message = 'cancelled', exitCode = 130) {
    super(message);
    this.exitCode = exitCode;
    this.name = 'CancelledError';
  }
}
