// Validates Discord webhook bodies with discord.js's own builders, validators on (docs/testbed.md#npmcheck).
// Input: a JSON file of [{"name", "body"}]. Each body must be {"embeds":[one embed]}; the embed is rebuilt
// through EmbedBuilder's setters (each checks its limit: title 256, description 4096, field name 256 and value
// 1024, 25 fields, footer 2048, colour range, timestamp), must come out equal to what was sent, and its
// embedLength must be at most 6000. Prints one line per problem; exits 1 if any.
'use strict';
const fs = require('fs');
const isDeepStrictEqual = require('util').isDeepStrictEqual;
const { EmbedBuilder, enableValidators, embedLength } = require('@discordjs/builders');

enableValidators();

function detail(error) {
  const inner = Array.isArray(error?.errors) ? error.errors.map((e) => (Array.isArray(e) ? e[1] : e)) : [];
  const messages = inner.map((e) => e?.message || String(e)).filter(Boolean);
  return messages.length ? messages.join('; ') : error?.message || String(error);
}

function check(body) {
  const problems = [];
  const keys = Object.keys(body || {});
  if (keys.join(',') !== 'embeds') problems.push(`body: keys are ${keys.join(',')}, not embeds`);
  const embeds = Array.isArray(body?.embeds) ? body.embeds : [];
  if (embeds.length !== 1) problems.push(`body: ${embeds.length} embeds, not 1`);
  const sent = embeds[0] || {};
  const rebuilt = new EmbedBuilder();
  const steps = [
    ['title', () => sent.title !== undefined && rebuilt.setTitle(sent.title)],
    ['description', () => sent.description !== undefined && rebuilt.setDescription(sent.description)],
    ['color', () => sent.color !== undefined && rebuilt.setColor(sent.color)],
    ['fields', () => sent.fields !== undefined && rebuilt.addFields(...sent.fields)],
    ['footer', () => sent.footer !== undefined && rebuilt.setFooter(sent.footer)],
    ['timestamp', () => {
      const at = new Date(sent.timestamp);
      if (typeof sent.timestamp !== 'string' || Number.isNaN(at.getTime())) throw new Error(`not ISO 8601: ${sent.timestamp}`);
      rebuilt.setTimestamp(at);
    }],
  ];
  for (const [what, step] of steps) {
    try {
      step();
    } catch (error) {
      problems.push(`${what}: ${detail(error)}`);
    }
  }
  // Through JSON, as the request would carry it: setters leave unset optional keys as `undefined`.
  const json = JSON.parse(JSON.stringify(rebuilt.toJSON()));
  const comparable = { ...json, timestamp: sent.timestamp };
  if (problems.length === 0 && !isDeepStrictEqual(comparable, sent)) {
    problems.push(`the builders did not keep the embed as sent: ${JSON.stringify(json)}`);
  }
  const length = embedLength(json);
  if (length > 6000) problems.push(`embedLength ${length} > 6000`);
  return problems;
}

let failed = 0;
const payloads = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
for (const { name, body } of payloads) {
  for (const problem of check(body)) {
    failed++;
    console.log(`${name}: ${problem}`);
  }
}
const version = JSON.parse(fs.readFileSync(require.resolve('@discordjs/builders').replace(/dist\/.*$/, 'package.json'))).version;
console.log(`discord: ${payloads.length} bodies checked with @discordjs/builders ${version}, ${failed} problems`);
process.exit(failed ? 1 : 0);
