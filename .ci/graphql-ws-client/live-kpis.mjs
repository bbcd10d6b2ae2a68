// The protocol docs/CLIENTS.md tells a frontend to use, checked with the reference client:
// `graphql-ws` (as Apollo Client's GraphQLWsLink and urql's subscriptionExchange use it) over
// the `ws` package, with the token in `connectionParams`.
//
// 1. subscribes to `liveKpis` and requires a first `next` with the tiles and no errors, then
//    unsubscribes (the client sends `complete`) and requires the socket to close normally (1000);
// 2. with a token the server does not accept, requires the socket to be closed 4403.
//
// Usage: node live-kpis.mjs http://127.0.0.1:8080/graphql <access token or ovx_ API key>
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [endpoint, token] = process.argv.slice(2);
if (!endpoint || !token) {
  console.error('usage: node live-kpis.mjs <graphql endpoint URL> <token>');
  process.exit(2);
}
// The same path serves HTTP and the WebSocket upgrade.
const url = endpoint.replace(/^http/, 'ws');
const WAIT_MS = 15_000;

const LIVE_KPIS = `subscription WallboardTiles {
  liveKpis {
    computedAt timezone callsWaiting longestCurrentWait
    today { offered answered abandoned serviceLevel averageSpeedOfAnswer abandonRate }
  }
}`;

function fail(message) {
  console.error(`FAIL ${message}`);
  process.exit(1);
}

function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/// Resolves with the close event of the client's socket.
function closedPromise(client) {
  return new Promise((resolve) => client.on('closed', resolve));
}

async function firstLiveKpis() {
  let acknowledged = false;
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { token },
    retryAttempts: 0,
    on: {
      connected: () => {
        acknowledged = true;
      },
    },
  });
  const closed = closedPromise(client);
  const subscription = client.iterate({ query: LIVE_KPIS, operationName: 'WallboardTiles' });
  let first;
  try {
    first = await within(WAIT_MS, 'first `next` for liveKpis', subscription.next());
  } catch (error) {
    fail(`liveKpis: ${error instanceof Error ? error.message : JSON.stringify(error)}`);
  }
  if (!acknowledged) fail('a `next` before `connection_ack`');
  if (first.done) fail('the subscription completed before its first `next`');
  const result = first.value;
  if (result.errors) fail(`liveKpis answered errors: ${JSON.stringify(result.errors)}`);
  const kpis = result.data?.liveKpis;
  if (!kpis || typeof kpis.callsWaiting !== 'number' || typeof kpis.today?.offered !== 'number') {
    fail(`liveKpis without its tiles: ${JSON.stringify(result)}`);
  }
  console.log(
    `ok   first next: ${kpis.timezone}, today offered ${kpis.today.offered}, ` +
      `answered ${kpis.today.answered}, abandoned ${kpis.today.abandoned}, waiting ${kpis.callsWaiting}`,
  );

  // Unsubscribing sends `complete`; the lazy client then closes its idle socket normally.
  await subscription.return(undefined);
  let event;
  try {
    event = await within(WAIT_MS, 'socket close after `complete`', closed);
  } catch (error) {
    fail(error.message);
  }
  if (event.code !== 1000) fail(`the socket closed ${event.code} ${event.reason}, not 1000`);
  await client.dispose();
  console.log('ok   complete sent, socket closed 1000');
}

async function refusedToken() {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { token: 'not-a-token' },
    retryAttempts: 0,
  });
  const closed = closedPromise(client);
  const subscription = client.iterate({ query: LIVE_KPIS });
  // The iterator rejects with the close event; the `closed` listener sees it too.
  subscription.next().catch(() => {});
  let event;
  try {
    event = await within(WAIT_MS, 'close for a refused token', closed);
  } catch (error) {
    fail(error.message);
  }
  if (event.code !== 4403) fail(`a refused token closed ${event.code} ${event.reason}, not 4403`);
  await client.dispose();
  console.log('ok   a refused token is closed 4403');
}

await firstLiveKpis();
await refusedToken();
console.log(`graphql-ws client against ${url}: every check passed`);
