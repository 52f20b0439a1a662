/**
 * The MemLayer API client: openapi-fetch over the types generated from the service's
 * OpenAPI document (src/schema.d.ts; `npm run generate` regenerates them).
 *
 * It talks to the API the way the MemLayer SPA does: JSON on every call, the access
 * token from localStorage as `Authorization: Bearer`, and errors read from `detail`.
 */
import { createParser } from "eventsource-parser";
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./schema";

export type { components, paths } from "./schema";

type Schemas = components["schemas"];
export type TokenResponse = Schemas["TokenResponse"];
export type UserResponse = Schemas["UserResponse"];
export type ChatResponse = Schemas["ChatResponse"];
export type MessageResponse = Schemas["MessageResponse"];
export type Role = Schemas["Role"];
export type ErrorBody = Schemas["ErrorBody"];
export type ValidationErrorBody = Schemas["ValidationErrorBody"];
export type ChangePasswordRequest = Schemas["ChangePasswordRequest"];
export type DeleteAccountRequest = Schemas["DeleteAccountRequest"];
export type AccountExport = Schemas["AccountExport"];
export type ChatExport = Schemas["ChatExport"];
export type MessageStatus = Schemas["MessageStatus"];
export type SetActiveRequest = Schemas["SetActiveRequest"];
export type UpdateChatRequest = Schemas["UpdateChatRequest"];
export type FolderRequest = Schemas["FolderRequest"];
export type FolderResponse = Schemas["FolderResponse"];
export type SearchHitResponse = Schemas["SearchHitResponse"];
export type UsageResponse = Schemas["UsageResponse"];
export type UsageDto = Schemas["UsageDto"];
export type AccountRole = Schemas["AccountRole"];
export type AdminUserResponse = Schemas["AdminUserResponse"];
export type AdminUserChange = Schemas["AdminUserChange"];

/** Today's usage as a person reads it: "1,234 tokens used today of 50,000". */
export function usageFigure(usage: Pick<UsageResponse, "tokens_used" | "token_limit">): string {
  const used = `${usage.tokens_used.toLocaleString("en")} tokens used today`;
  return usage.token_limit === null || usage.token_limit === undefined
    ? used
    : `${used} of ${usage.token_limit.toLocaleString("en")}`;
}

/**
 * A search hit's snippet cut into plain and highlighted pieces, in order (the
 * `highlights` are `[start, end)` offsets in code points, not UTF-16 units, so a page
 * must not slice the string with them directly).
 */
export function highlightedPieces(hit: Pick<SearchHitResponse, "snippet" | "highlights">): { text: string; match: boolean }[] {
  const chars = Array.from(hit.snippet);
  const pieces: { text: string; match: boolean }[] = [];
  let at = 0;
  for (const [start, end] of hit.highlights) {
    if (start === undefined || end === undefined || start < at) continue;
    if (start > at) pieces.push({ text: chars.slice(at, start).join(""), match: false });
    pieces.push({ text: chars.slice(start, end).join(""), match: true });
    at = end;
  }
  if (at < chars.length) pieces.push({ text: chars.slice(at).join(""), match: false });
  return pieces;
}

/** The localStorage key the access token is kept under. */
export const TOKEN_KEY = "memlayer.access_token";

/** The typed client: `client.GET("/chats")`, `client.POST("/chats/{chat_id}/messages", …)`. */
export type MemLayerClient = Client<paths>;

/** Where the access token lives; `localStorage` in a browser. */
export interface TokenStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * A client for the API at `baseUrl` (e.g. `http://localhost:8000`) that sends
 * `Content-Type: application/json` on every call and the stored token, if any.
 */
export function createMemLayerClient(baseUrl: string, tokens: TokenStore = localStorage): MemLayerClient {
  const client = createClient<paths>({
    baseUrl,
    headers: { "Content-Type": "application/json" },
  });
  client.use({
    onRequest({ request }) {
      const token = tokens.getItem(TOKEN_KEY);
      if (token) request.headers.set("Authorization", `Bearer ${token}`);
      return request;
    },
  });
  return client;
}

/**
 * What to show a user for a failed call, as the SPA does: a string `detail` as is,
 * any other `detail` (a 422's list of problems) as JSON, and for a body that is not
 * JSON only the status.
 */
export function errorDetail(body: unknown, status: number): string {
  if (typeof body === "object" && body !== null && "detail" in body) {
    const detail = (body as { detail: unknown }).detail;
    return typeof detail === "string" ? detail : JSON.stringify(detail);
  }
  return `Request failed (${status})`;
}

/**
 * One event of a streamed reply (`POST /chats/{chat_id}/messages` with `Accept:
 * text/event-stream`, or a resumed stream). A reply's own events carry `id`: `0` on
 * `reply`, `1, 2, …` on its deltas, the next number on its ending; remember the last one
 * seen to resume after a reload ({@link resumeReply}).
 */
export type ReplyEvent =
  | { event: "message"; id?: undefined; data: MessageResponse }
  | { event: "reply"; id: number; data: MessageResponse }
  | { event: "delta"; id: number; data: Schemas["DeltaEvent"] }
  | { event: "title"; id?: undefined; data: ChatResponse }
  | { event: "done"; id: number; data: MessageResponse }
  | { event: "error"; id: number; data: ErrorBody };

/** How a streamed reply ended: the stored question and reply, or what to show the user. */
export interface StreamedReply {
  status: number;
  question?: MessageResponse;
  /** The reply's id, from its `reply` event (a resumed stream knows it already). */
  replyId?: string;
  /** The id of the last numbered event received: the cursor to resume from. */
  lastEventId?: number;
  reply?: MessageResponse;
  detail?: string;
}

/** Options of the streaming calls. */
export interface StreamOptions {
  tokens?: TokenStore;
  /**
   * Stops reading the stream (the reply itself goes on in the service: stop it with
   * {@link stopReply}, or resume it with {@link resumeReply}).
   */
  signal?: AbortSignal;
}

/**
 * Posts `content` to a chat and streams the assistant's answer: `onEvent` sees the stored
 * question (`message`), the reply as it starts (`reply`, with the id to resume or stop
 * it), each piece of text (`delta`) as the model writes it, then the stored reply
 * (`done`) or a failure (`error`). `EventSource` cannot send an `Authorization` header,
 * so this reads the response body of a `fetch` and parses it with eventsource-parser.
 * The reply belongs to the service: aborting `signal` (or reloading the page) does not
 * stop it.
 */
export function streamMessage(
  baseUrl: string,
  chatId: string,
  content: string,
  onEvent: (event: ReplyEvent) => void = () => {},
  options: StreamOptions = {},
): Promise<StreamedReply> {
  return streamReply(baseUrl, "POST", `/chats/${encodeURIComponent(chatId)}/messages`, { content }, onEvent, options);
}

/**
 * Asks for another answer to a message and streams it, as {@link streamMessage} does: on an
 * assistant's message a sibling answer, on a user's message an answer to it. No `message`
 * event: the question is stored already.
 */
export function streamRegenerate(
  baseUrl: string,
  chatId: string,
  messageId: string,
  onEvent: (event: ReplyEvent) => void = () => {},
  options: StreamOptions = {},
): Promise<StreamedReply> {
  const path = `/chats/${encodeURIComponent(chatId)}/messages/${encodeURIComponent(messageId)}/regenerate`;
  return streamReply(baseUrl, "POST", path, undefined, onEvent, options);
}

/**
 * Edits a user's message (a new sibling with `content`) and streams its answer, as
 * {@link streamMessage} does; `message` is the new user message.
 */
export function streamEdit(
  baseUrl: string,
  chatId: string,
  messageId: string,
  content: string,
  onEvent: (event: ReplyEvent) => void = () => {},
  options: StreamOptions = {},
): Promise<StreamedReply> {
  const path = `/chats/${encodeURIComponent(chatId)}/messages/${encodeURIComponent(messageId)}/edit`;
  return streamReply(baseUrl, "POST", path, { content }, onEvent, options);
}

/**
 * Resumes the stream of a reply (after a reload, in another tab, on any instance): every
 * `delta` numbered after `lastEventId` (from the first without one), then the live ones,
 * then `done` or `error`. A reply that has ended answers its ending at once.
 */
export function resumeReply(
  baseUrl: string,
  chatId: string,
  replyId: string,
  lastEventId?: number,
  onEvent: (event: ReplyEvent) => void = () => {},
  options: StreamOptions = {},
): Promise<StreamedReply> {
  const path = `/chats/${encodeURIComponent(chatId)}/messages/${encodeURIComponent(replyId)}/stream`;
  const headers = lastEventId === undefined ? {} : { "Last-Event-ID": String(lastEventId) };
  return streamReply(baseUrl, "GET", path, undefined, onEvent, options, headers).then((result) => ({
    replyId,
    ...result,
  }));
}

/**
 * Stops a reply, wherever it is generating: it keeps its text, `status: "stopped"`, and
 * every open stream of it ends with `done`. The reply as stored, or what to show.
 */
export async function stopReply(
  client: MemLayerClient,
  chatId: string,
  replyId: string,
): Promise<{ status: number; reply?: MessageResponse; detail?: string }> {
  const { data, error, response } = await client.POST("/chats/{chat_id}/messages/{message_id}/stop", {
    params: { path: { chat_id: chatId, message_id: replyId } },
  });
  return data ? { status: response.status, reply: data } : { status: response.status, detail: errorDetail(error, response.status) };
}

async function streamReply(
  baseUrl: string,
  method: "GET" | "POST",
  path: string,
  body: { content: string } | undefined,
  onEvent: (event: ReplyEvent) => void,
  options: StreamOptions,
  extraHeaders: Record<string, string> = {},
): Promise<StreamedReply> {
  const token = (options.tokens ?? localStorage).getItem(TOKEN_KEY);
  const headers: Record<string, string> = { Accept: "text/event-stream", ...extraHeaders };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = `Bearer ${token}`;
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = JSON.stringify(body);
  if (options.signal) init.signal = options.signal;
  const response = await fetch(`${baseUrl}${path}`, init);
  const result: StreamedReply = { status: response.status };
  if (!response.ok || !response.body) {
    const failure: unknown = await response.json().catch(() => undefined);
    result.detail = errorDetail(failure, response.status);
    return result;
  }
  const parser = createParser({
    onEvent({ event, id, data }) {
      const parsed = { event, id: id === undefined ? undefined : Number(id), data: JSON.parse(data) } as ReplyEvent;
      if (parsed.id !== undefined) result.lastEventId = parsed.id;
      if (parsed.event === "message") result.question = parsed.data;
      if (parsed.event === "reply") result.replyId = parsed.data.id;
      if (parsed.event === "done") result.reply = parsed.data;
      if (parsed.event === "error") result.detail = errorDetail(parsed.data, response.status);
      onEvent(parsed);
    },
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parser.feed(value);
  }
  return result;
}
