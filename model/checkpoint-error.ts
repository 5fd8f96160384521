/**
 * The one error a bad checkpoint produces: it names the file and the problem, so a user can fix the
 * checkpoint instead of reading an ONNX Runtime stack trace.
 */
export class CheckpointError extends Error {
  readonly file: string;

  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'CheckpointError';
    this.file = file;
  }
}
