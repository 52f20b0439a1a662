// The SPA's view of the API, in a real browser: a page served from
// http://localhost:5173 calls the API on port 8000 the way the SPA does, through the
// typed client, while headless Chromium records every console error and failed request.
//
//   npm run e2e     (builds nothing: run `cargo build -p memlayer-server` first)
//
// Environment: MEMLAYER_BIN (the service binary, default target/debug/memlayer),
// MEMLAYER_E2E_DATABASE_URL (default: a fresh SQLite file), CHROMIUM (default
// /usr/bin/chromium), MEMLAYER_E2E_API_PORT (8000), MEMLAYER_E2E_PAGE_PORT (5173),
// MEMLAYER_E2E_MODEL_URL (an OpenAI-compatible base URL, e.g. a llama-server's
// http://127.0.0.1:8089/v1: the assistant then answers with that model instead of
// "Message received").
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const apiPort = Number(process.env.MEMLAYER_E2E_API_PORT ?? 8000);
const pagePort = Number(process.env.MEMLAYER_E2E_PAGE_PORT ?? 5173);
const API = `http://localhost:${apiPort}`;
const PAGE = `http://localhost:${pagePort}`;
// An origin the service does not allow: same page, another port.
const FOREIGN_PAGE = `http://localhost:${pagePort + 1}`;
const SECRET = "browser-test-secret-of-at-least-32-bytes";
const MODEL_URL = process.env.MEMLAYER_E2E_MODEL_URL;
const assistantSettings = MODEL_URL ? { ASSISTANT_URL: MODEL_URL, ASSISTANT_MODEL: "e2e-model" } : {};

const consoleErrors = [];
const failedRequests = [];
let service;
let serviceLog = "";
let dataDir;
let databaseUrl;
let pageServers = [];
let browser;
let page;

async function startPageServer(port, bundle) {
  const html = readFileSync(join(here, "index.html"));
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://localhost").pathname;
    if (path === "/page.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
    } else if (path === "/" || path === "/index.html") {
      res.writeHead(200, { "content-type": "text/html" }).end(html);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok, fail) => server.once("error", fail).listen(port, "localhost", ok));
  pageServers.push(server);
}

/** Whether something already listens on 127.0.0.1:`port`. */
function portTaken(port) {
  return new Promise((answer) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => (socket.destroy(), answer(true)));
    socket.once("error", () => answer(false));
  });
}

async function startService() {
  const bin = process.env.MEMLAYER_BIN ?? join(root, "target/debug/memlayer");
  assert.ok(existsSync(bin), `${bin} is missing: run \`cargo build -p memlayer-server\` first`);
  // Never test (and write accounts into) a service that is already running there.
  if (await portTaken(apiPort)) {
    assert.fail(
      `port ${apiPort} is already in use (is \`cargo run\` serving?): stop it, or set MEMLAYER_E2E_API_PORT to a free port`,
    );
  }
  dataDir = mkdtempSync(join(tmpdir(), "memlayer-e2e-"));
  databaseUrl = process.env.MEMLAYER_E2E_DATABASE_URL ?? `sqlite://${dataDir}/memlayer.db`;
  service = spawn(bin, [], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      JWT_SECRET: SECRET,
      HOST: "127.0.0.1",
      PORT: String(apiPort),
      CORS_ORIGINS: PAGE,
      BCRYPT_COST: "4",
      // The ready line (INFO, from the binary) tells this service, not another, is up.
      RUST_LOG: "warn,memlayer=info",
      ...assistantSettings,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  service.stdout.on("data", (chunk) => (serviceLog += chunk));
  service.stderr.on("data", (chunk) => (serviceLog += chunk));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    assert.equal(service.exitCode, null, `the service exited:\n${serviceLog}`);
    if (serviceLog.includes("MemLayer is ready")) return;
    await new Promise((ok) => setTimeout(ok, 50));
  }
  assert.fail(`the service did not become ready:\n${serviceLog}`);
}

/** Runs `memlayer admin ...args` on the service's database, `input` on its standard input: its output. */
function runAdmin(args, input) {
  const bin = process.env.MEMLAYER_BIN ?? join(root, "target/debug/memlayer");
  const child = spawn(bin, ["admin", ...args], {
    env: { ...process.env, DATABASE_URL: databaseUrl, JWT_SECRET: SECRET, BCRYPT_COST: "4", RUST_LOG: "warn" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  child.stdin.end(input);
  return new Promise((ok, fail) =>
    child.once("exit", (code) => (code === 0 ? ok(output) : fail(new Error(`memlayer admin ${args[0]}: ${output}`)))),
  );
}

/** Runs `window.memlayer[action](...args)` in the page and returns what it received. */
function call(action, ...args) {
  return page.evaluate(([action, args]) => window.memlayer[action](...args), [action, args]);
}

/** A token signed with the service's secret that expired an hour ago. */
function expiredToken(sub) {
  const now = Math.floor(Date.now() / 1000);
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const unsigned = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({ sub, iat: now - 7200, exp: now - 3600 })}`;
  return `${unsigned}.${createHmac("sha256", SECRET).update(unsigned).digest("base64url")}`;
}

function watch(target) {
  target.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  target.on("pageerror", (error) => consoleErrors.push(String(error)));
  target.on("requestfailed", (request) => failedRequests.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText}`));
}

const corsErrors = () => consoleErrors.filter((text) => /CORS|Access-Control|blocked/i.test(text));

before(async () => {
  const bundle = await build({
    entryPoints: [join(here, "page.ts")],
    bundle: true,
    format: "esm",
    target: "es2022",
    write: false,
  });
  const code = bundle.outputFiles[0].text;
  await startPageServer(pagePort, code);
  await startPageServer(pagePort + 1, code);
  await startService();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
  });
  page = await (await browser.newContext()).newPage();
  watch(page);
  await page.goto(`${PAGE}/?api=${encodeURIComponent(API)}`);
  await page.waitForSelector("body[data-ready=true]");
});

after(async () => {
  await browser?.close();
  service?.kill("SIGTERM");
  for (const server of pageServers) server.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe("the SPA's calls, from http://localhost:5173", () => {
  const email = `ada-${Date.now()}@example.com`;
  let chatId;

  test("registers, which stores a bearer token", async () => {
    const registered = await call("register", email, "correct horse");
    assert.equal(registered.status, 201);
    assert.equal(registered.data.token_type, "bearer");
    assert.equal(await page.evaluate(() => localStorage.getItem("memlayer.access_token")), registered.data.access_token);
  });

  test("logs in and reads the current user with the token from localStorage", async () => {
    const login = await call("login", email.toUpperCase(), "correct horse");
    assert.equal(login.status, 200);
    const me = await call("me");
    assert.equal(me.status, 200);
    assert.equal(me.data.email, email);
    assert.match(me.data.created_at, /Z$/);
  });

  test("creates chats with and without a title, and lists them newest first", async () => {
    const titled = await call("createChat", "Trip to Lisbon");
    assert.equal(titled.status, 201);
    assert.equal(titled.data.title, "Trip to Lisbon");
    const untitled = await call("createChat");
    assert.equal(untitled.status, 201);
    assert.match(untitled.data.title, /^Chat \d{4}-\d{2}-\d{2} \d{2}:\d{2}$/);
    const nullTitle = await call("createChat", null);
    assert.equal(nullTitle.status, 201);
    chatId = titled.data.id;

    const listed = await call("listChats");
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.data.map((chat) => chat.id), [nullTitle.data.id, untitled.data.id, titled.data.id]);
  });

  test("renames a chat", async () => {
    const renamed = await call("renameChat", chatId, "Lisbon, day 2");
    assert.equal(renamed.status, 200);
    assert.equal((await call("getChat", chatId)).data.title, "Lisbon, day 2");
  });

  test("sends messages and reads them back in order", async () => {
    const replies = [];
    for (const content of ["first", "second", "third"]) {
      const reply = await call("postMessage", chatId, content);
      assert.equal(reply.status, 201);
      assert.equal(reply.data.role, "assistant");
      if (!MODEL_URL) assert.equal(reply.data.content, "Message received");
      assert.notEqual(reply.data.content.trim(), "");
      replies.push(reply.data.content);
    }
    const listed = await call("listMessages", chatId);
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.data.map((message) => `${message.role}:${message.content}`),
      ["first", "second", "third"].flatMap((content, i) => [`user:${content}`, `assistant:${replies[i]}`]),
    );
  });

  test("streams a reply: the question, then the deltas as they are written, then the stored reply", async () => {
    const streamed = await call("streamMessage", chatId, "Tell me about Lisbon in one sentence.");
    assert.equal(streamed.status, 200);
    const names = streamed.events.map(({ event }) => event);
    assert.equal(names[0], "message");
    assert.equal(names.at(-1), "done");
    const deltas = streamed.events.filter(({ event }) => event === "delta");
    assert.deepEqual(names, ["message", "reply", ...deltas.map(() => "delta"), "done"]);
    assert.equal(streamed.replyId, streamed.reply.id);
    assert.equal(streamed.reply.content, deltas.map(({ data }) => data.content).join(""));
    assert.equal(streamed.question.content, "Tell me about Lisbon in one sentence.");
    if (MODEL_URL) {
      // A real model writes piece by piece: the first piece reaches the page before the end.
      assert.ok(deltas.length >= 2, JSON.stringify(names));
      assert.ok(deltas[0].at < streamed.events.at(-1).at, JSON.stringify(streamed.events.map(({ event, at }) => [event, at])));
    } else {
      assert.deepEqual(deltas.map(({ data }) => data.content), ["Message received"]);
    }
    const listed = await call("listMessages", chatId);
    assert.deepEqual(listed.data.slice(-2), [streamed.question, streamed.reply]);
  });

  const LONG = "Write a long story about a lighthouse keeper and a storm, in at least ten paragraphs.";
  const noModel = MODEL_URL ? false : "needs a model (MEMLAYER_E2E_MODEL_URL): the fixed reply ends at once";

  test("a reply outlives a reload: the page resumes it after the last event it saw", { skip: noModel }, async () => {
    const chat = (await call("createChat", "Resumed")).data.id;
    const started = await call("startReply", chat, LONG);
    assert.ok(started.replyId && started.lastEventId >= 1, JSON.stringify(started));

    await page.reload();
    await page.waitForSelector("body[data-ready=true]");
    // The reload cut the page's stream: the browser reports it aborted, as it should.
    for (let i = failedRequests.length - 1; i >= 0; i--) {
      if (failedRequests[i].includes(`/chats/${chat}/messages`) && failedRequests[i].includes("ERR_ABORTED")) {
        failedRequests.splice(i, 1);
      }
    }
    const resumed = await call("resumeReply", chat, started.replyId, started.lastEventId);

    assert.equal(resumed.status, 200);
    const deltas = resumed.events.filter(({ event }) => event === "delta");
    deltas.forEach(({ id }, i) => assert.equal(id, started.lastEventId + 1 + i));
    assert.equal(resumed.events.at(-1).event, "done");
    const stored = resumed.reply;
    assert.equal(stored.id, started.replyId);
    assert.ok(stored.content.startsWith(started.text), JSON.stringify([started.text, stored.content]));
    // Still generating at the reload (a long answer): every piece after the cursor came.
    if (deltas.length > 0) assert.equal(stored.content, started.text + deltas.map(({ data }) => data.content).join(""));
    const listed = await call("listMessages", chat);
    assert.deepEqual(listed.data.at(-1), stored);
  });

  test("stops a reply from the page: it keeps its text, and its open stream ends with done", { skip: noModel }, async () => {
    const chat = (await call("createChat", "Stopped")).data.id;
    const started = await call("startReply", chat, LONG);

    const stopped = await call("stopReply", chat, started.replyId);

    assert.equal(stopped.status, 200, JSON.stringify(stopped));
    assert.equal(stopped.reply.status, "stopped");
    assert.ok(stopped.reply.content.startsWith(started.text));
    const stream = await call("pendingReply");
    assert.equal(stream.events.at(-1).event, "done");
    assert.deepEqual(stream.reply, stopped.reply);
  });

  test("searches from the page, shows the matches, and opens a hit", async () => {
    const found = await call("search", "LISB");
    assert.equal(found.status, 200);
    const question = found.data.find((hit) => hit.snippet === "Tell me about Lisbon in one sentence.");
    assert.ok(question, JSON.stringify(found.data));
    assert.equal(question.role, "user");
    assert.equal(question.chat_id, chatId);
    assert.equal(question.chat_title, "Lisbon, day 2");
    const title = found.data.find((hit) => hit.message_id === null);
    assert.equal(title.snippet, "Lisbon, day 2");
    // The page shows each match in <mark>, cut with the code-point offsets.
    const marks = await page.$$eval("#hits li mark", (nodes) => nodes.map((node) => node.textContent));
    assert.ok(marks.length >= 2 && marks.every((text) => text === "Lisb"), JSON.stringify(marks));

    // Opening a hit (a click): its chat, with the message found marked.
    await page.click(`#hits li[data-message-id="${question.message_id}"]`);
    await page.waitForSelector(`#opened[data-chat-id="${chatId}"]`);
    assert.equal(await page.textContent("#opened h2"), "Lisbon, day 2");
    assert.equal(await page.textContent("#opened p.hit"), "user: Tell me about Lisbon in one sentence.");

    const punctuation = await call("search", "lisbon & (one | !sentence)");
    assert.equal(punctuation.status, 200);
    const blank = await call("search", "   ");
    assert.equal(blank.status, 422);
  });

  test("pins, archives and files a chat in a folder", async () => {
    const other = await call("createChat", "Groceries");
    const trips = await call("createFolder", "Trips");
    assert.equal(trips.status, 201);
    assert.equal(trips.data.name, "Trips");

    const pinned = await call("updateChat", chatId, { pinned: true, folder_id: trips.data.id });
    assert.equal(pinned.status, 200);
    assert.deepEqual([pinned.data.pinned, pinned.data.folder_id], [true, trips.data.id]);
    const listed = await call("listChats");
    assert.equal(listed.data[0].id, chatId, "pinned first");
    assert.deepEqual((await call("listChats", { folder_id: trips.data.id })).data.map((chat) => chat.id), [chatId]);

    const archived = await call("updateChat", other.data.id, { archived: true });
    assert.equal(archived.data.archived, true);
    assert.ok(!(await call("listChats")).data.some((chat) => chat.id === other.data.id));
    assert.deepEqual((await call("listChats", { archived: true })).data.map((chat) => chat.id), [other.data.id]);
    // Archived chats are still found.
    assert.ok((await call("search", "grocer")).data.some((hit) => hit.chat_id === other.data.id));

    const foreign = await call("updateChat", chatId, { folder_id: "0194f4c2-0000-7000-8000-000000000000" });
    assert.equal(foreign.status, 422);
    assert.match(foreign.detail, /folder_id/);

    assert.deepEqual((await call("listFolders")).data.map((folder) => folder.name), ["Trips"]);
    const deleted = await call("deleteFolder", trips.data.id);
    assert.equal(deleted.status, 204);
    assert.equal((await call("getChat", chatId)).data.folder_id, null);
  });

  test("regenerates an answer, edits a question, steps between the branches and reads the list each time", async () => {
    const list = async () => (await call("listMessages", chatId)).data;
    const before = await list();
    const [question, answer] = before.slice(-2);

    const regenerated = await call("regenerate", chatId, answer.id);
    assert.equal(regenerated.status, 201);
    assert.deepEqual(regenerated.data.sibling_ids, [answer.id, regenerated.data.id]);
    assert.deepEqual((await list()).map(({ id }) => id), [...before.slice(0, -1).map(({ id }) => id), regenerated.data.id]);

    const streamed = await call("streamRegenerate", chatId, answer.id);
    assert.equal(streamed.status, 200);
    assert.deepEqual(streamed.events.map(({ event }) => event).filter((name) => name !== "delta"), ["reply", "done"]);
    assert.deepEqual(streamed.reply.sibling_ids, [answer.id, regenerated.data.id, streamed.reply.id]);

    const edited = await call("edit", chatId, question.id, "Tell me about Porto instead.");
    assert.equal(edited.status, 201);
    const afterEdit = await list();
    assert.equal(afterEdit.at(-2).content, "Tell me about Porto instead.");
    assert.deepEqual(afterEdit.at(-2).sibling_ids, [question.id, afterEdit.at(-2).id]);
    assert.equal(afterEdit.at(-1).id, edited.data.id);

    // Back to the original question's branch: its newest answer is the streamed one.
    const back = await call("setActive", chatId, question.id);
    assert.equal(back.status, 200);
    assert.equal(back.data.active_message_id, streamed.reply.id);
    assert.deepEqual((await list()).slice(-2).map(({ id }) => id), [question.id, streamed.reply.id]);
    // And to the first answer, "‹ 1/3 ›".
    await call("setActive", chatId, answer.id);
    const onFirst = await list();
    assert.deepEqual(onFirst.map(({ id }) => id), before.map(({ id }) => id));
    assert.deepEqual(onFirst.at(-1).sibling_ids, [answer.id, regenerated.data.id, streamed.reply.id]);

    const tree = await call("tree", chatId);
    assert.equal(tree.status, 200);
    assert.equal(tree.data.length, before.length + 4);

    const pruned = await call("deleteMessage", chatId, question.id);
    assert.equal(pruned.status, 204);
    const left = await list();
    assert.equal(left.at(-1).id, edited.data.id);
    assert.equal((await call("tree", chatId)).data.length, before.length);
  });

  test("deletes a chat (204, no body) and it is gone", async () => {
    const deleted = await call("deleteChat", chatId);
    assert.equal(deleted.status, 204);
    assert.equal(deleted.data, undefined);
    const gone = await call("getChat", chatId);
    assert.equal(gone.status, 404);
    assert.equal(gone.detail, "Chat not found");
  });

  test("shows the server's detail for each error", async () => {
    const badLogin = await call("login", email, "wrong password");
    assert.deepEqual([badLogin.status, badLogin.detail], [401, "Incorrect email or password"]);

    const duplicate = await call("register", email, "another password");
    assert.deepEqual([duplicate.status, duplicate.detail], [409, "Email already registered"]);

    await call("login", email, "correct horse");
    const missing = await call("getChat", "0194f4c2-0000-7000-8000-000000000000");
    assert.deepEqual([missing.status, missing.detail], [404, "Chat not found"]);

    const invalid = await call("postMessage", (await call("createChat", "x")).data.id, "   ");
    assert.equal(invalid.status, 422);
    assert.equal(JSON.parse(invalid.detail)[0].loc.join("."), "body.content");

    const theirs = (await call("createChat", "private")).data.id;
    await call("register", `bob-${Date.now()}@example.com`, "password1");
    const forbidden = await call("listMessages", theirs);
    assert.deepEqual([forbidden.status, forbidden.detail], [403, "Not allowed to access this chat"]);
  });

  test("exports the account, changes the password, logs out everywhere and deletes the account", async () => {
    const owner = `carol-${Date.now()}@example.com`;
    await call("register", owner, "correct horse");
    const kept = (await call("createChat", "Keep this")).data.id;
    const reply = await call("postMessage", kept, "remember me");
    const exported = await call("exportAccount");
    assert.equal(exported.status, 200);
    assert.equal(exported.data.account.email, owner);
    assert.deepEqual(
      exported.data.chats[0].messages.map((message) => message.content),
      ["remember me", reply.data.content],
    );

    const before = await page.evaluate(() => localStorage.getItem("memlayer.access_token"));
    const wrong = await call("changePassword", "not my password", "new horse battery");
    assert.deepEqual([wrong.status, wrong.detail], [403, "Incorrect password"]);
    const changed = await call("changePassword", "correct horse", "new horse battery");
    assert.equal(changed.status, 200);
    assert.equal((await call("me")).status, 200, "the fresh token was stored and works");
    await call("useToken", before);
    const revoked = await call("me");
    assert.deepEqual([revoked.status, revoked.detail], [401, "Could not validate credentials"]);

    await call("login", owner, "new horse battery");
    const loggedOut = await call("logoutAll");
    assert.equal(loggedOut.status, 204);
    assert.equal((await call("me")).status, 401);

    await call("login", owner, "new horse battery");
    const refused = await call("deleteAccount", "correct horse");
    assert.deepEqual([refused.status, refused.detail], [403, "Incorrect password"]);
    const deleted = await call("deleteAccount", "new horse battery");
    assert.equal(deleted.status, 204);
    assert.equal((await call("me")).status, 401);
    const again = await call("register", owner, "correct horse");
    assert.equal(again.status, 201, "the email is free again");
  });

  test("shows today's usage, and an admin disables a user whose next request is refused", async () => {
    // The operator makes the first admin from the server's shell.
    const admin = `admin-${Date.now()}@example.com`;
    const made = await runAdmin(["create", admin], "admin password\n");
    assert.match(made, /is a new admin/);

    const user = `dave-${Date.now()}@example.com`;
    await call("register", user, "correct horse");
    const chatId = (await call("createChat", "Costs")).data.id;
    const posted = await call("postMessage", chatId, "How much does this cost?");
    assert.equal(posted.status, 201);
    const usage = await call("usage");
    assert.equal(usage.status, 200);
    const shown = await page.textContent("#usage");
    assert.equal(shown, `${usage.data.tokens_used.toLocaleString("en")} tokens used today`);
    if (MODEL_URL) {
      // The model's usage: on the reply, and on the day's total.
      const spent = posted.data.usage.prompt_tokens + posted.data.usage.completion_tokens;
      assert.ok(spent > 0 && usage.data.tokens_used >= spent, JSON.stringify([posted.data.usage, usage.data]));
    } else {
      assert.equal(posted.data.usage, null, "the default assistant costs nothing");
    }
    const userToken = await page.evaluate(() => localStorage.getItem("memlayer.access_token"));

    assert.equal((await call("login", admin, "admin password")).status, 200);
    assert.equal((await call("me")).data.role, "admin");
    const found = await call("adminListUsers", user.toUpperCase());
    assert.equal(found.status, 200);
    assert.deepEqual(
      found.data.map((item) => [item.email, item.chats, item.disabled]),
      [[user, 1, false]],
    );
    const disabled = await call("adminUpdateUser", found.data[0].id, { disabled: true });
    assert.deepEqual([disabled.status, disabled.data.disabled], [200, true]);

    await call("useToken", userToken);
    const refused = await call("listChats");
    assert.deepEqual([refused.status, refused.detail], [401, "Could not validate credentials"]);
    const login = await call("login", user, "correct horse");
    assert.deepEqual([login.status, login.detail], [403, "This account is disabled"]);
    // The tests after this one start logged in.
    assert.equal((await call("login", admin, "admin password")).status, 200);
  });

  test("an expired session is a 401 the page can read", async () => {
    const me = await call("me");
    await call("useToken", expiredToken(me.data.id));
    const expired = await call("me");
    assert.deepEqual([expired.status, expired.detail], [401, "Could not validate credentials"]);
    await call("useToken", null);
    const anonymous = await call("listChats");
    assert.deepEqual([anonymous.status, anonymous.detail], [401, "Not authenticated"]);
  });
});

describe("the same page from an origin that is not allowed", () => {
  test("is blocked by the browser, and the check above would have seen it", async () => {
    const foreign = await (await browser.newContext()).newPage();
    const errors = [];
    foreign.on("console", (message) => message.type() === "error" && errors.push(message.text()));
    await foreign.goto(`${FOREIGN_PAGE}/?api=${encodeURIComponent(API)}`);
    await foreign.waitForSelector("body[data-ready=true]");

    const attempt = await foreign.evaluate(() => window.memlayer.listChats().then(() => "answered", (error) => String(error)));

    assert.match(attempt, /TypeError|Failed to fetch/);
    assert.ok(errors.some((text) => /CORS/i.test(text)), `no CORS error reported: ${JSON.stringify(errors)}`);
    await foreign.close();
  });
});

describe("Swagger UI at /docs", () => {
  test("lists every operation, authorizes with a token and executes a protected call", async () => {
    const docs = await (await browser.newContext()).newPage();
    watch(docs);
    const email = `swagger-${Date.now()}@example.com`;
    const registered = await fetch(`${API}/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password: "correct horse" }),
    }).then((response) => response.json());

    await docs.goto(`${API}/docs`);
    await docs.waitForSelector(".opblock");
    const operations = await docs.$$eval(".opblock", (blocks) =>
      blocks.map((block) => `${block.querySelector(".opblock-summary-method").textContent} ${block.querySelector(".opblock-summary-path").dataset.path}`),
    );
    assert.deepEqual(operations.sort(), [
      "DELETE /admin/users/{user_id}",
      "DELETE /auth/me",
      "DELETE /chats/{chat_id}",
      "DELETE /chats/{chat_id}/messages/{message_id}",
      "DELETE /folders/{folder_id}",
      "GET /admin/users",
      "GET /auth/me",
      "GET /auth/me/export",
      "GET /auth/me/usage",
      "GET /chats",
      "GET /chats/{chat_id}",
      "GET /chats/{chat_id}/messages",
      "GET /chats/{chat_id}/messages/{message_id}/stream",
      "GET /chats/{chat_id}/tree",
      "GET /folders",
      "GET /health",
      "GET /health/ready",
      "GET /search",
      "PATCH /admin/users/{user_id}",
      "PATCH /chats/{chat_id}",
      "PATCH /folders/{folder_id}",
      "POST /admin/users",
      "POST /auth/login",
      "POST /auth/logout-all",
      "POST /auth/password",
      "POST /auth/register",
      "POST /chats",
      "POST /chats/{chat_id}/messages",
      "POST /chats/{chat_id}/messages/{message_id}/edit",
      "POST /chats/{chat_id}/messages/{message_id}/regenerate",
      "POST /chats/{chat_id}/messages/{message_id}/stop",
      "POST /folders",
      "PUT /chats/{chat_id}/active",
    ]);

    await docs.click("button.authorize");
    await docs.fill(".modal-ux input", registered.access_token);
    await docs.click(".modal-ux button.modal-btn.auth.authorize");
    await docs.click(".modal-ux button.btn-done");

    await docs.click("#operations-auth-getCurrentUser .opblock-summary");
    await docs.click("#operations-auth-getCurrentUser .try-out__btn");
    // One document, served from the page's own origin: no "Explore" bar, no "Servers" box.
    assert.equal(await docs.locator(".topbar").count(), 0);
    assert.equal(await docs.getByText("Servers", { exact: true }).count(), 0);
    await docs.click("#operations-auth-getCurrentUser .execute");
    const response = "#operations-auth-getCurrentUser .live-responses-table tr.response";
    const status = await docs.textContent(`${response} .response-col_status`);
    assert.equal(status.trim(), "200");
    const body = await docs.textContent(`${response} .response-col_description .highlight-code pre`);
    assert.equal(JSON.parse(body).email, email);
    await docs.close();
  });
});

describe("the browser, after all of the above", () => {
  test("reported no CORS error and no failed request", () => {
    assert.deepEqual(corsErrors(), []);
    assert.deepEqual(failedRequests, []);
  });
});
