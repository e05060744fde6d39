import fc from 'fast-check';
import { formatIPv4, formatIPv6, parseCidr } from '../../../src/net.ts';
import type { RuleSpec } from '../../../src/rules.ts';

/** A CIDR network in canonical form (host bits clear), of either family. */
export const network = (family: 'v4' | 'v6'): fc.Arbitrary<string> =>
  fc
    .tuple(
      fc.array(fc.integer({ min: 0, max: 255 }), {
        minLength: family === 'v4' ? 4 : 16,
        maxLength: family === 'v4' ? 4 : 16,
      }),
      fc.integer({ min: 0, max: family === 'v4' ? 32 : 128 }),
    )
    .map(([bytes, prefix]) => {
      const text = `${family === 'v4' ? formatIPv4(bytes) : formatIPv6(bytes)}/${prefix}`;
      return parseCidr(text)?.network ?? text;
    });

/** Any rule spec moshwall may create: a port from 1 to 65535, from anywhere or from a network. */
export const anySpec: fc.Arbitrary<RuleSpec> = fc.constantFrom('v4' as const, 'v6' as const).chain((family) =>
  fc
    .record({
      port: fc.integer({ min: 1, max: 65535 }),
      family: fc.constant(family),
      source: fc.oneof(fc.constant(family === 'v4' ? '0.0.0.0/0' : '::/0'), network(family)),
    })
    .map((spec): RuleSpec => ({ ...spec })),
);
