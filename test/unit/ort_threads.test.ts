// Our ONNX Runtime sessions take as many intra-op threads as the kernel pool (all hardware threads,
// or --threads), not ONNX Runtime's own default, which ran one thread on a 2-vCPU VM.
import { intraOpThreads } from '../../lib/ort/session';
import { numThreads, setNumThreads } from '../../lib/native/kernels';

describe('intraOpThreads', () => {
  it('follows the kernel pool unless a count is asked for', () => {
    const before = numThreads();
    try {
      expect(intraOpThreads()).toBe(before);
      setNumThreads(1);
      expect(intraOpThreads()).toBe(1);
      expect(intraOpThreads(3)).toBe(3);
    } finally {
      setNumThreads(before);
    }
  });
});
