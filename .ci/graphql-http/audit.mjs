// Runs the graphql-http audit suite (GraphQL over HTTP conformance) against a running server
// and exits non-zero on any failed MUST or SHOULD. MAY items that the server chose not to do
// are printed as notices and do not fail the run.
//
// Usage: node audit.mjs http://127.0.0.1:8080/graphql
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql endpoint URL>');
  process.exit(2);
}

const results = await auditServer({ url });
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const result of results) {
  counts[result.status] += 1;
  if (result.status === 'ok') continue;
  let body = '';
  try {
    body = await result.response.text();
  } catch {
    body = '(body not readable)';
  }
  console.log(`${result.status.toUpperCase()} ${result.id} ${result.name}`);
  console.log(`  reason: ${result.reason}`);
  console.log(`  response: ${result.response.status} ${result.response.headers.get('content-type')} ${body.slice(0, 300)}`);
}
console.log(
  `graphql-http audit of ${url}: ${results.length} audits, ${counts.ok} ok, ` +
    `${counts.notice} notices (MAY), ${counts.warn} warnings (SHOULD), ${counts.error} errors (MUST)`,
);
process.exit(counts.warn + counts.error > 0 ? 1 : 0);
