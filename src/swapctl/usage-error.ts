/** A mistake in how swapctl was called (a flag, an argument, a file); exits 2, no call made. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
