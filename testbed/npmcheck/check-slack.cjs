// Type-checks Slack incoming-webhook bodies against Slack's own Block Kit types with tsc
// (docs/testbed.md#npmcheck). Input: a JSON file of [{"name", "body"}]. Writes one TypeScript file declaring
// each body as `const p<i>: Payload = <body>;` with Payload = { text: string; blocks: KnownBlock[];
// username?: string } (the incoming webhook's fields this controller sends; KnownBlock from @slack/types), then
// runs `tsc --noEmit --strict` once over it: object literals get excess-property checks, so an unknown key, a
// wrong `type` or a missing field is an error. Prints tsc's messages with the body's name; exits 1 if any.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const here = __dirname;
const payloads = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'npmcheck-slack-'));
const lines = [
  "import type { KnownBlock } from '@slack/types';",
  'type Payload = { text: string; blocks: KnownBlock[]; username?: string };',
];
const owner = {};
payloads.forEach(({ name, body }, i) => {
  owner[lines.length + 1] = name;
  lines.push(`export const p${i}: Payload = ${JSON.stringify(body)};`);
});
fs.writeFileSync(path.join(work, 'payloads.ts'), lines.join('\n') + '\n');
fs.writeFileSync(path.join(work, 'tsconfig.json'), JSON.stringify({
  compilerOptions: {
    strict: true, noEmit: true, target: 'es2020', module: 'commonjs', moduleResolution: 'node',
    types: [], typeRoots: [], baseUrl: '.', paths: { '@slack/types': [path.join(here, 'node_modules/@slack/types')] },
  },
  files: ['payloads.ts'],
}));
const tsc = spawnSync(process.execPath, [path.join(here, 'node_modules/typescript/bin/tsc'), '-p', work], { encoding: 'utf8' });
fs.rmSync(work, { recursive: true, force: true });
const output = `${tsc.stdout}${tsc.stderr}`.trim();
let failed = 0;
for (const line of output.split('\n').filter(Boolean)) {
  failed++;
  const at = /payloads\.ts\((\d+),/.exec(line);
  console.log(at && owner[at[1]] ? `${owner[at[1]]}: ${line}` : line);
}
if (tsc.status !== 0 && failed === 0) { failed++; console.log(`tsc exited with ${tsc.status}`); }
const version = JSON.parse(fs.readFileSync(path.join(here, 'node_modules/@slack/types/package.json'))).version;
console.log(`slack: ${payloads.length} bodies type-checked against @slack/types ${version} with tsc --strict, ${failed} problems`);
process.exit(failed ? 1 : 0);
