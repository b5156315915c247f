/**
 * Captures what the process writes to stdout and stderr, where Powertools Logger prints
 * its JSON lines (INFO and DEBUG to stdout, WARN and ERROR to stderr; in Lambda both go
 * to CloudWatch Logs).
 */

/** A running capture: the text written so far, and a way to stop capturing. */
export interface OutputCapture {
  text(): string;
  restore(): void;
}

/** Starts capturing (nothing reaches the terminal until {@link OutputCapture.restore}). */
export function captureOutput(): OutputCapture {
  const chunks: string[] = [];
  const keep = (chunk: string | Uint8Array): boolean => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  };
  const spies = [jest.spyOn(process.stdout, 'write').mockImplementation(keep), jest.spyOn(process.stderr, 'write').mockImplementation(keep)];
  return {
    text: () => chunks.join(''),
    restore: () => {
      for (const spy of spies) spy.mockRestore();
    },
  };
}
