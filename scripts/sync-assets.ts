// Writes the installed files' repo copies (deploy/moshwall.service, docs/moshwall.example.toml)
// from src/install/assets.ts, their single source. A unit test fails when they drift apart.
import { writeFileSync } from 'node:fs';
import { EXAMPLE_CONFIG, systemdUnit } from '../src/install/assets.ts';

writeFileSync('deploy/moshwall.service', systemdUnit('/usr/bin/node', '/usr/lib/moshwall/moshwall.js'));
writeFileSync('docs/moshwall.example.toml', EXAMPLE_CONFIG);
