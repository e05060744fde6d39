import { testBackendContract } from '../../backends/contract.ts';
import { createMemoryBackend } from './memory-backend.ts';

testBackendContract('memory', async () => {
  const backend = createMemoryBackend();
  return {
    backend,
    addForeignRule: async (spec, comment) => backend.addForeignRule(spec, comment),
    cleanup: async () => {},
  };
});

testBackendContract('memory without IPv6', async () => {
  const backend = createMemoryBackend({ ipv6: false });
  return {
    backend,
    addForeignRule: async (spec, comment) => backend.addForeignRule(spec, comment),
    cleanup: async () => {},
  };
});
