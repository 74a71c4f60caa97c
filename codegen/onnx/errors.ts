/**
 * The one error every ONNX reading step throws: a model we cannot analyse
 * (malformed, truncated, hostile, or using something shape inference cannot
 * follow). `subject` names the node or tensor, `problem` says what is wrong.
 */
export class OnnxModelError extends Error {
  readonly subject: string;
  readonly problem: string;

  constructor(subject: string, problem: string, options?: { cause?: unknown }) {
    super(`${subject}: ${problem}`, options);
    this.name = 'OnnxModelError';
    this.subject = subject;
    this.problem = problem;
  }
}
