// Validates Teams Workflows bodies with Microsoft's own Adaptive Cards library (docs/testbed.md#npmcheck).
// Input: a JSON file of [{"name", "body"}]. Each body must be the message envelope with one Adaptive Card 1.4
// attachment, and the card must parse with no event and validate with no event, read as version 1.4 (so an
// element from a later version, or an unknown one, is reported). Prints one line per problem; exits 1 if any.
'use strict';
const fs = require('fs');
// The package's `lib/` is ES modules without file extensions, which Node cannot load; its UMD bundle can.
const AC = require('adaptivecards/dist/adaptivecards.js');

function envelope(body) {
  const problems = [];
  const keys = (o) => Object.keys(o || {}).sort().join(',');
  if (body?.type !== 'message') problems.push('envelope: "type" is not "message"');
  if (keys(body) !== 'attachments,type') problems.push(`envelope: keys are ${keys(body)}, not attachments,type`);
  const attachments = Array.isArray(body?.attachments) ? body.attachments : [];
  if (attachments.length !== 1) problems.push(`envelope: ${attachments.length} attachments, not 1`);
  const a = attachments[0] || {};
  if (a.contentType !== 'application/vnd.microsoft.card.adaptive') problems.push(`envelope: contentType ${a.contentType}`);
  if (a.contentUrl !== null) problems.push('envelope: contentUrl is not null');
  const card = a.content || {};
  if (card.type !== 'AdaptiveCard') problems.push(`card: type ${card.type}`);
  if (card.version !== '1.4') problems.push(`card: version ${card.version}, not 1.4`);
  if (card.$schema !== 'http://adaptivecards.io/schemas/adaptive-card.json') problems.push('card: $schema');
  return { problems, card };
}

function check(body) {
  const { problems, card } = envelope(body);
  const context = new AC.SerializationContext(AC.Versions.v1_4);
  const parsed = new AC.AdaptiveCard();
  parsed.parse(card, context);
  for (let i = 0; i < context.eventCount; i++) problems.push(`parse: ${context.getEventAt(i).message}`);
  for (const event of parsed.validateProperties().validationEvents) problems.push(`validate: ${event.message}`);
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
console.log(`teams: ${payloads.length} bodies checked with adaptivecards ${require('adaptivecards/package.json').version}, ${failed} problems`);
process.exit(failed ? 1 : 0);
