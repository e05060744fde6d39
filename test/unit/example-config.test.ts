import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { DEFAULT_CONFIG, parseConfig } from '../../src/config.ts';

it('the shipped example config parses to exactly the defaults', () => {
  const file = 'docs/moshwall.example.toml';
  assert.deepEqual(parseConfig(readFileSync(file, 'utf8'), file), { ...DEFAULT_CONFIG, source: file });
});
